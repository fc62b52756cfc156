"""Whole vocoders: fastgan.models against the same models in parallel_wavegan 0.6.1, same device, same run.

* inference (``fwd``): every generator with weight norm folded on both sides, eval mode, under
  ``torch.no_grad``; batch 1 and 16 (quick: batch 1, 0.1 s), fp32 and bf16 (both models cast to
  bf16; on CPU only where it has native bf16 GEMMs, and not in quick mode). The case name carries the audio length, so
  kHz of audio per second = batch x samples / median and x real time = batch x seconds / median;
  ``python -m bench.models [--quick]`` prints those columns.
* training step (``fwd+bwd``): each generator with its discriminator and losses as parallel_wavegan
  trains them (multi-resolution STFT loss + least-squares adversarial loss, + feature matching for
  the feature-returning discriminators; then the discriminator's least-squares loss), forward and
  backward of both, fp32 (and bf16 autocast on GPU). The STFT loss is fastgan's on the fastgan side
  and parallel_wavegan's on the other; the adversarial and feature-matching losses are
  parallel_wavegan's on both (plain torch).

FLOPs (for TFLOP/s) are counted once per case with torch's FlopCounterMode on the parallel_wavegan
model (fastgan's custom ops are not visible to the counter), so a fastgan row's rate is that work over
fastgan's time: an effective rate. It can pass the matmul ceiling where fastgan does less arithmetic for the
same result (PWG's CPU inference applies the aux convs at frame rate: ~26 % fewer products).
"""

from __future__ import annotations

import copy
import importlib
import sys
import warnings

import torch

from bench.harness import Case

warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)

SAMPLE_RATE = 22050

# name -> (fastgan/parallel_wavegan class, kwargs, hop, discriminator class, discriminator kwargs, feature matching)
GENERATORS = {
    "melgan": ("MelGANGenerator", {}, 256, "MelGANMultiScaleDiscriminator", {}, True),
    "mb-melgan": ("MelGANGenerator", dict(out_channels=4, channels=384, upsample_scales=[5, 5, 3], stacks=4), 300,
                  "MelGANMultiScaleDiscriminator", {}, True),
    "hifigan-v1": ("HiFiGANGenerator", "v1", 256, "HiFiGANMultiScaleMultiPeriodDiscriminator", {}, True),
    "hifigan-v2": ("HiFiGANGenerator", "v2", 256, "HiFiGANMultiScaleMultiPeriodDiscriminator", {}, True),
    "hifigan-v3": ("HiFiGANGenerator", "v3", 256, "HiFiGANMultiScaleMultiPeriodDiscriminator", {}, True),
    "pwg": ("ParallelWaveGANGenerator", {}, 256, "ParallelWaveGANDiscriminator", {}, False),
}  # fmt: skip


def _parallel_wavegan(submodule: str):
    """parallel_wavegan's module, or None when the oracle is not installed."""
    try:
        import scipy.signal
        import scipy.signal.windows

        if not hasattr(scipy.signal, "kaiser"):
            scipy.signal.kaiser = scipy.signal.windows.kaiser
        return importlib.import_module(f"parallel_wavegan.{submodule}")
    except ImportError:
        return None


def _kwargs(spec) -> dict:
    import fastgan.models

    return copy.deepcopy(fastgan.models.HIFIGAN_CONFIGS[spec] if isinstance(spec, str) else spec)


def _pair(cls_name: str, kwargs: dict, device, dtype):
    """fastgan's model and parallel_wavegan's (or None) with the same weights."""
    import fastgan.models

    torch.manual_seed(0)
    ours = getattr(fastgan.models, cls_name)(**copy.deepcopy(kwargs))
    pwg = _parallel_wavegan("models")
    theirs = None
    if pwg is not None:
        theirs = getattr(pwg, cls_name)(**copy.deepcopy(kwargs))
        ours.load_state_dict(theirs.state_dict())
        theirs = theirs.to(device=device, dtype=dtype)
    return ours.to(device=device, dtype=dtype), theirs


def _generator_inputs(name: str, batch: int, frames: int, hop: int, device, dtype):
    c = torch.randn(batch, 80, frames, device=device, dtype=dtype)
    if name == "pwg":
        z = torch.randn(batch, 1, frames * hop, device=device, dtype=dtype)
        return (z, torch.nn.functional.pad(c.float(), (2, 2), mode="replicate").to(dtype))
    return (c,)


def _count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def _inference_cases(
    quick: bool, device, seconds: float | None = None, batches: list[int] | None = None, names: list[str] | None = None
) -> list[Case]:
    from fastgan._backend import native_bf16
    from fastgan.nn import PQMF

    cases = []
    seconds = seconds or (0.1 if quick else 2.0)
    batches = batches or ([1] if quick else [1, 16])
    dtypes = [torch.float32]
    if native_bf16(device) and not (quick and device.type == "cpu"):  # emulated bf16 is slower than fp32
        dtypes.append(torch.bfloat16)
    pqmf_cls = getattr(_parallel_wavegan("layers"), "PQMF", None)
    for name, (cls_name, spec, hop, *_rest) in GENERATORS.items():
        if names and name not in names:
            continue
        for dtype in dtypes:
            ours, theirs = _pair(cls_name, _kwargs(spec), device, dtype)
            for model in (ours, theirs):
                if model is not None:
                    model.remove_weight_norm()
                    model.eval()
            post_ours = post_theirs = None
            if name == "mb-melgan":
                post_ours = PQMF(4).to(device)
                post_theirs = pqmf_cls(4).to(device=device, dtype=dtype) if pqmf_cls else None
            for batch in batches:
                frames = max(1, round(seconds * SAMPLE_RATE / hop))
                inputs = _generator_inputs(name, batch, frames, hop, device, dtype)

                def runner(model, post, inputs=inputs):
                    def run():
                        with torch.no_grad():  # not inference_mode: its tensors must not land in caches
                            out = model(*inputs)
                            return post.synthesis(out) if post is not None else out

                    return run

                impls = {"fastgan": runner(ours, post_ours)}
                if theirs is not None:
                    impls["parallel_wavegan"] = runner(theirs, post_theirs)
                samples = frames * hop
                flops = _count_flops(impls["parallel_wavegan"]) if theirs is not None else 0
                cases.append(
                    Case(
                        op="models",
                        name=f"{name} infer b{batch} {samples / SAMPLE_RATE:.2f}s",
                        mode="fwd",
                        dtype=dtype,
                        impls=impls,
                        bytes_moved=sum(t.numel() * t.element_size() for t in inputs)
                        + batch * samples * torch.tensor([], dtype=dtype).element_size(),
                        flops=flops,
                    )
                )
    return cases


def _training_step(generator, discriminator, stft_loss, inputs, real, feature_matching, pqmf, autocast_dtype):
    """One generator + discriminator forward/backward as parallel_wavegan's trainer runs it."""
    losses = _parallel_wavegan("losses")
    adv_g = losses.GeneratorAdversarialLoss(loss_type="mse")
    adv_d = losses.DiscriminatorAdversarialLoss(loss_type="mse")
    feat_match = losses.FeatureMatchLoss()
    device = real.device

    def step():
        for p in list(generator.parameters()) + list(discriminator.parameters()):
            p.grad = None
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            fake = generator(*inputs)
            if pqmf is not None:
                fake = pqmf.synthesis(fake)
            sc, mag = stft_loss(fake.float().squeeze(1), real.squeeze(1))
            outputs = discriminator(fake)
            loss_g = sc + mag + 4.0 * adv_g(outputs)
            if feature_matching:
                with torch.no_grad():
                    real_outputs = discriminator(real)
                loss_g = loss_g + 2.0 * feat_match(outputs, real_outputs)
        loss_g.backward()
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            real_loss, fake_loss = adv_d(discriminator(fake.detach()), discriminator(real))
        (real_loss + fake_loss).backward()

    return step


def _training_cases(quick: bool, device) -> list[Case]:
    import fastgan.nn

    pwg_losses = _parallel_wavegan("losses")
    pwg_layers = _parallel_wavegan("layers")
    if pwg_losses is None:
        return []
    cases = []
    # quick: the MelGAN and PWG pairs on a short segment only (HiFi-GAN's discriminators exceed the CPU demo budget).
    names = ["melgan", "pwg"] if quick else list(GENERATORS)
    batch = 1 if quick else 16
    segment = 1024 if quick else 8192  # samples (parallel_wavegan trains on 8192..25600-sample segments)
    dtypes = [None] if device.type == "cpu" else [None, torch.bfloat16]
    for name in names:
        cls_name, spec, hop, d_name, d_kwargs, feature_matching = GENERATORS[name]
        frames = segment // hop
        samples = frames * hop
        for autocast_dtype in dtypes:
            generator_ours, generator_theirs = _pair(cls_name, _kwargs(spec), device, torch.float32)
            if quick and d_name == "MelGANMultiScaleDiscriminator":
                d_kwargs = dict(d_kwargs, max_downsample_channels=256)  # the CPU demo's budget
            discriminator_ours, discriminator_theirs = _pair(d_name, d_kwargs, device, torch.float32)
            inputs = _generator_inputs(name, batch, frames, hop, device, torch.float32)
            real = torch.randn(batch, 1, samples, device=device).clamp(-1, 1)
            small_stft = dict(fft_sizes=[256, 512, 128], hop_sizes=[30, 60, 12], win_lengths=[150, 300, 60])
            stft_kwargs = small_stft if quick else {}
            pqmf_ours = fastgan.nn.PQMF(4).to(device) if name == "mb-melgan" else None
            pqmf_theirs = pwg_layers.PQMF(4).to(device) if name == "mb-melgan" else None
            impls = {
                "fastgan": _training_step(generator_ours, discriminator_ours,
                                          fastgan.nn.MultiResolutionSTFTLoss(**stft_kwargs).to(device), inputs, real,
                                          feature_matching, pqmf_ours, autocast_dtype),
                "parallel_wavegan": _training_step(generator_theirs, discriminator_theirs,
                                                   pwg_losses.MultiResolutionSTFTLoss(**stft_kwargs).to(device),
                                                   inputs, real, feature_matching, pqmf_theirs, autocast_dtype),
            }  # fmt: skip
            small_d = " d256" if quick and d_name == "MelGANMultiScaleDiscriminator" else ""
            cases.append(
                Case(
                    op="models",
                    name=f"{name} train b{batch} {samples}{small_d}",
                    mode="fwd+bwd",
                    dtype=autocast_dtype or torch.float32,
                    impls=impls,
                )
            )
    return cases


def cases(quick: bool, device: torch.device) -> list[Case]:
    return _inference_cases(quick, device) + _training_cases(quick, device)


def main(argv: list[str] | None = None) -> int:
    """Run the cases and print kHz of audio per second and x real time beside the speed-ups."""
    import argparse
    import re

    from bench import harness

    parser = argparse.ArgumentParser(prog="python -m bench.models")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--only", default=None, help="substring of the case names to run")
    parser.add_argument("--models", nargs="+", choices=list(GENERATORS), help="generators to run (default: all)")
    parser.add_argument("--seconds", type=float, default=None, help="audio per inference case (default 2.0)")
    parser.add_argument("--batch", type=int, nargs="+", default=None, help="inference batch sizes (default 1 16)")
    parser.add_argument("--inference-only", action="store_true", help="skip the training-step cases")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    info = harness.device_info(device)
    print(f"# {info['device']}  torch {info['torch']}  threads {torch.get_num_threads()}")
    if harness.tensor_peak_tflops(info["device"], torch.float32) is None:
        print(
            f"# compute ceiling: measured fp32 matmul {harness.measure_matmul_tflops(device, torch.float32) * 1e3:.1f} GFLOP/s"
        )
    rows = []
    selected = _inference_cases(args.quick, device, args.seconds, args.batch, args.models)
    if not args.inference_only:
        selected += [
            c for c in _training_cases(args.quick, device) if not args.models or c.name.split()[0] in args.models
        ]
    for case in selected:
        if args.only and args.only not in case.name:
            continue
        case_rows = harness.run_case(case, device, 0.0, info["device"])
        rows += case_rows
        match = re.search(r"infer b(\d+) ([\d.]+)s", case.name)
        for row in case_rows:
            extra = ""
            if match:
                batch, seconds = int(match.group(1)), float(match.group(2))
                audio = batch * seconds / (row.median_ms * 1e-3)
                extra = f"{audio * SAMPLE_RATE / 1e3:9.1f} kHz/s {audio:7.1f}x real time"
            speedups = ", ".join(f"{v:.2f}x vs {k}" for k, v in row.speedup.items())
            rate = f"{row.tflops * 1e3:8.1f} GFLOP/s ({100 * row.fraction_of_peak:4.1f}% of {row.bound} peak)"
            print(
                f"{case.name:<34} {row.mode:<7} {row.dtype:<8} {row.impl:<16} {row.median_ms:10.2f} ms {extra} "
                f"{rate} {speedups}"
            )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
