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

WaveGAN and SpecGAN (Donahue et al. 2019; 16 kHz, 16 384-sample clips = 1.02 s) have no parallel_wavegan
counterpart. Their reference is the same model on fastgan's PyTorch fallback (``FASTGAN_BACKEND=torch``,
row "torch fallback"), timed only where fastgan's path differs from it (CUDA, or the Triton interpreter): on a
CPU without the interpreter the fallback is what fastgan runs, so those rows give absolute speed alone. SpecGAN
uses no fastgan op at all (plain torch convs): absolute speed everywhere.

* inference: WaveGAN's generator, z -> 16 384 samples; SpecGAN's generator, z -> 128 x 128 spectrogram, and its
  inversion to audio (16 iterations of Griffin-Lim, ``SpecGANTransform.invert``, fp32; ~15 % of the generator's
  time on CPU at batch 1), both in the timed call since audio is the output. Same batches and dtypes as above.
* training step: one critic update and one generator update as ``fastgan.train.Trainer._wgan_step`` runs them
  (WGAN-GP: critic loss ``D(fake) - D(real)`` + gradient penalty, lambda 10, from ``fastgan.losses``; generator
  loss ``-D(G(z))``; SpecGAN's real spectrograms made from the audio by its transform inside the step), forward
  and backward, no optimizer step, as for the vocoders. The trainer runs 5 critic updates per generator update.
  Quick: batch 1 at model size d = 16 (the paper's d = 64 takes 1-2 s a step on one CPU thread).

FLOPs (for TFLOP/s) are counted once per case with torch's FLOP formulas on the parallel_wavegan
model (fastgan's custom ops are not visible to the counter), so a fastgan row's rate is that work over
fastgan's time: an effective rate. It can pass the matmul ceiling where fastgan does less arithmetic for the
same result (PWG's CPU inference applies the aux convs at frame rate: ~26 % fewer products). WaveGAN's and
SpecGAN's are counted on the PyTorch fallback (plain aten ops); Griffin-Lim's FFTs are not counted.
"""

from __future__ import annotations

import copy
import importlib
import sys
import warnings

import torch

from bench.harness import Case, kernels_run, with_environ

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

# WGAN-GP models (no parallel_wavegan counterpart): name -> (generator class, discriminator class).
WGAN_MODELS = {"wavegan": ("WaveGANGenerator", "WaveGANDiscriminator"), "specgan": ("SpecGANGenerator", "SpecGANDiscriminator")}  # fmt: skip
WGAN_SAMPLE_RATE = 16000
WGAN_SAMPLES = 16384  # both models' clip: 1.02 s at 16 kHz
GRIFFIN_LIM_ITERATIONS = 16  # SpecGANTransform.invert's default
QUICK_WGAN_TRAIN_SIZE = 16  # model size d of the quick training steps (the paper's 64: 1-2 s a step on CPU)

# Inference case name -> (batch, samples per example, sample rate): main's kHz and x real time columns.
AUDIO: dict[str, tuple[int, int, int]] = {}


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
    """The FLOPs of every aten op ``fn`` runs, by torch's own per-op formulas (torch.utils.flop_counter's). Not
    FlopCounterMode itself: its module tracking's backward hooks make ``torch.autograd.grad`` raise (WaveGAN's
    gradient penalty is a double backward); the totals are the same (checked on MelGAN and HiFi-GAN, fwd and bwd)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Count(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                self.total += formula(*args, **kwargs, out_val=out)
            return out

    with Count() as counter:
        fn()
    return int(counter.total)


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
                case_name = f"{name} infer b{batch} {samples / SAMPLE_RATE:.2f}s"
                AUDIO[case_name] = (batch, samples, SAMPLE_RATE)
                cases.append(
                    Case(
                        op="models",
                        name=case_name,
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


def _torch_fallback(fn):
    """``fn`` with ``FASTGAN_BACKEND=torch``: every fastgan op on its PyTorch fallback (read at every call)."""
    return with_environ(fn, FASTGAN_BACKEND="torch")


def _wgan_impls(run, device) -> dict:
    impls = {"fastgan": run}
    if kernels_run(device):  # else the fallback is what "fastgan" runs
        impls["torch fallback"] = _torch_fallback(run)
    return impls


def _wgan_inference_cases(quick: bool, device, batches: list[int] | None = None, names=None) -> list[Case]:
    """WaveGAN's generator, and SpecGAN's with its Griffin-Lim inversion: z -> 16 384 samples (module docstring)."""
    import fastgan.models

    from fastgan._backend import native_bf16

    batches = batches or ([1] if quick else [1, 16])
    dtypes = [torch.float32]
    if native_bf16(device) and not (quick and device.type == "cpu"):  # emulated bf16 is slower than fp32
        dtypes.append(torch.bfloat16)
    cases = []
    for name, (g_name, _) in WGAN_MODELS.items():
        if names and name not in names:
            continue
        for dtype in dtypes:
            torch.manual_seed(0)
            generator = getattr(fastgan.models, g_name)().to(device=device, dtype=dtype).eval()
            # Unfitted statistics (0 and 1): Griffin-Lim's cost does not depend on them. fp32: torch.stft takes no bf16.
            transform = fastgan.models.SpecGANTransform().to(device) if name == "specgan" else None
            for batch in batches:
                z = generator.sample_latent(batch, device).to(dtype)

                def run(generator=generator, transform=transform, z=z):
                    with torch.no_grad():
                        out = generator(z)
                        return out if transform is None else transform.invert(out.float(), GRIFFIN_LIM_ITERATIONS)

                label = f"{name}+griffin-lim{GRIFFIN_LIM_ITERATIONS}" if transform is not None else name
                case_name = f"{label} infer b{batch} {WGAN_SAMPLES / WGAN_SAMPLE_RATE:.2f}s 16kHz"
                AUDIO[case_name] = (batch, WGAN_SAMPLES, WGAN_SAMPLE_RATE)
                out_size = 4 if transform is not None else dtype.itemsize  # Griffin-Lim's audio is fp32
                cases.append(
                    Case(
                        op="models",
                        name=case_name,
                        mode="fwd",
                        dtype=dtype,
                        impls=_wgan_impls(run, device),
                        bytes_moved=z.numel() * z.element_size() + batch * WGAN_SAMPLES * out_size,
                        flops=_count_flops(_torch_fallback(run)),  # the fallback's aten ops: visible to it
                    )
                )
    return cases


def _wgan_training_step(generator, discriminator, real_fn, batch: int, autocast_dtype):
    """One critic update and one generator update, forward and backward, as fastgan.train's _wgan_step runs them."""
    from fastgan import losses

    device = next(generator.parameters()).device
    parameters = list(generator.parameters()) + list(discriminator.parameters())

    def autocast():
        return torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)

    def step():
        for p in parameters:
            p.grad = None
        real = real_fn()
        with torch.no_grad(), autocast():
            fake = generator(generator.sample_latent(batch, device)).float()
        with autocast():
            d_real, d_fake = discriminator(real).float(), discriminator(fake).float()
        real_loss, fake_loss = losses.discriminator_adversarial_loss(d_fake, d_real, "wgan")
        penalty = losses.gradient_penalty(discriminator, real, fake, losses.WGAN_GP_WEIGHT)  # fp32, as the trainer
        (real_loss + fake_loss + penalty).backward()
        with autocast():
            d_fake = discriminator(generator(generator.sample_latent(batch, device)).float()).float()
        losses.generator_adversarial_loss(d_fake, "wgan").backward()

    return step


def _wgan_training_cases(quick: bool, device, names=None) -> list[Case]:
    import fastgan.models

    batch = 1 if quick else 16
    size = QUICK_WGAN_TRAIN_SIZE if quick else 64
    dtypes = [None] if device.type == "cpu" else [None, torch.bfloat16]
    cases = []
    for name, (g_name, d_name) in WGAN_MODELS.items():
        if names and name not in names:
            continue
        for autocast_dtype in dtypes:
            torch.manual_seed(0)
            generator = getattr(fastgan.models, g_name)(model_size=size).to(device)
            discriminator = getattr(fastgan.models, d_name)(model_size=size).to(device)
            wave = torch.randn(batch, 1, WGAN_SAMPLES, device=device).clamp(-1, 1)
            if name == "specgan":  # the trainer makes the real spectrograms from the audio, inside its step
                transform = fastgan.models.SpecGANTransform().to(device)

                def real_fn(transform=transform, wave=wave):
                    with torch.no_grad():
                        return transform(wave[:, 0])
            else:

                def real_fn(wave=wave):
                    return wave

            step = _wgan_training_step(generator, discriminator, real_fn, batch, autocast_dtype)
            cases.append(
                Case(
                    op="models",
                    name=f"{name} train b{batch} {WGAN_SAMPLES} d{size}",
                    mode="fwd+bwd",
                    dtype=autocast_dtype or torch.float32,
                    impls=_wgan_impls(step, device),
                    flops=_count_flops(_torch_fallback(step)),  # with the gradient penalty's double backward
                )
            )
    return cases


def cases(quick: bool, device: torch.device) -> list[Case]:
    return (
        _inference_cases(quick, device)
        + _wgan_inference_cases(quick, device)
        + _training_cases(quick, device)
        + _wgan_training_cases(quick, device)
    )


def main(argv: list[str] | None = None) -> int:
    """Run the cases and print kHz of audio per second and x real time beside the speed-ups."""
    from bench import harness
    from fastgan._checks import one_line, usable_device

    models = list(GENERATORS) + list(WGAN_MODELS)
    parser = harness.OneLineArgumentParser(prog="python -m bench.models")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--only", default=None, help="substring of the case names to run")
    parser.add_argument("--models", nargs="+", choices=models, help="generators to run (default: all)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="audio per vocoder inference case (default 2.0; WaveGAN/SpecGAN: 1.02)",
    )
    parser.add_argument("--batch", type=int, nargs="+", default=None, help="inference batch sizes (default 1 16)")
    parser.add_argument("--inference-only", action="store_true", help="skip the training-step cases")
    args = parser.parse_args(argv)
    if args.seconds is not None and not 0 < args.seconds < float("inf"):
        parser.error(f"--seconds must be a positive number of seconds, got {args.seconds}")
    if args.batch and min(args.batch) < 1:
        parser.error(f"--batch sizes must be >= 1, got {min(args.batch)}")
    try:
        device = usable_device(args.device)
    except ValueError as error:
        parser.error(one_line(error))
    info = harness.device_info(device)
    print(f"# {info['device']}  torch {info['torch']}  threads {torch.get_num_threads()}")
    if harness.tensor_peak_tflops(info["device"], torch.float32) is None:
        print(
            f"# compute ceiling: measured fp32 matmul {harness.measure_matmul_tflops(device, torch.float32) * 1e3:.1f} GFLOP/s"
        )
    if not kernels_run(device):
        print("# wavegan/specgan: fastgan runs its PyTorch fallback on this device, so no reference: absolute speed")
    selected = _inference_cases(args.quick, device, args.seconds, args.batch, args.models)
    selected += _wgan_inference_cases(args.quick, device, args.batch, args.models)
    if not args.inference_only:
        selected += [
            c for c in _training_cases(args.quick, device) if not args.models or c.name.split()[0] in args.models
        ]
        selected += _wgan_training_cases(args.quick, device, args.models)
    selected = [c for c in selected if not args.only or args.only in c.name]
    widths = harness.case_column_widths(selected)
    for case in selected:
        for row in harness.run_case(case, device, 0.0, info["device"]):
            extra = ""
            if case.name in AUDIO:
                batch, samples, rate = AUDIO[case.name]
                audio = batch * samples / rate / (row.median_ms * 1e-3)  # seconds of audio per second
                extra = f"{audio * rate / 1e3:9.1f} kHz/s {audio:7.1f}x real time"
            speedups = ", ".join(f"{v:.2f}x vs {k}" for k, v in row.speedup.items())
            rate_text = f"{row.tflops * 1e3:8.1f} GFLOP/s ({100 * row.fraction_of_peak:4.1f}% of {row.bound} peak)"
            print(
                f"{case.name:<{widths['case']}} {row.mode:<7} {row.dtype:<8} {row.impl:<{widths['impl']}} "
                f"{row.median_ms:10.2f} ms {extra} {rate_text} {speedups}"
            )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
