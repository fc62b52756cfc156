"""The kernel launches real workloads make on a GPU, recorded on CPU without running a kernel.

On a GPU, Triton compiles each kernel once per *specialisation* of its arguments: pointers
16-byte aligned, integers divisible by 16, and integers equal to 1 (unit strides) become
compile-time facts, and the code it builds (vector widths, registers, spills) follows them.
``aot_specs()`` lists configurations with no such facts, so the sm_90 check of those says nothing
about the code a contiguous bf16 launch really gets. This module runs the vocoders and the hot
paths at their real sizes with the Triton backend on CPU tensors, but records each launch instead
of running it: the kernel, the specialisation Triton's own binder derives for the sm_90 target,
the options and the grid. Outputs are left uninitialised (nothing downstream reads them for a
decision). ``tests/aot_compile.py`` then compiles every distinct specialisation for sm_90 and
checks the grids against CUDA's launch limits.

    TRITON_INTERPRET=1 python tests/aot_launches.py OUT.pkl   (aot_compile.py runs it)
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import os
import pickle
import pkgutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator

import torch

TARGET_ARCH = 90
CUDA_GRID_LIMITS = (2**31 - 1, 65535, 65535)

warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)


@contextlib.contextmanager
def recording(records: list[dict], seen: dict, workload: list[str]) -> Iterator[None]:
    """Every kernel launch inside records its sm_90 specialisation instead of running."""
    import fastgan.kernels as kernels_package
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime import interpreter
    from triton.runtime.jit import JITFunction, create_function_from_signature

    backend = make_backend(GPUTarget("cuda", TARGET_ARCH, 32))
    binders: dict = {}

    def record(self, *args, grid, warmup, **kwargs):
        fn = self.fn
        key = (fn.__module__, fn.__name__)
        if key not in binders:
            jit = JITFunction(fn)
            binders[key] = (jit, create_function_from_signature(jit.signature, jit.params, backend))
        jit, binder = binders[key]
        kwargs = dict(kwargs, debug=False)
        bound_args, specialization, options = binder(*args, **kwargs)
        options, signature, constexprs, attrs = jit._pack_args(backend, kwargs, bound_args, specialization, options)
        if callable(grid):
            grid = grid(bound_args)
        grid = tuple(int(g) for g in grid)
        spec_key = (key, tuple(signature.items()), repr(sorted(constexprs.items())), repr(sorted(attrs.items())),
                    options.num_warps, options.num_stages)  # fmt: skip
        entry = seen.get(spec_key)
        if entry is None:
            entry = seen[spec_key] = {
                "module": fn.__module__, "kernel": fn.__name__, "signature": signature,
                "constexprs": {k: getattr(v, "value", v) for k, v in constexprs.items()}, "attrs": attrs,
                "num_warps": options.num_warps, "num_stages": options.num_stages,
                "workload": workload[0], "launches": 0, "max_grid": (0, 0, 0),
            }  # fmt: skip
            records.append(entry)
        entry["launches"] += 1
        padded = grid + (1,) * (3 - len(grid))
        entry["max_grid"] = tuple(max(a, b) for a, b in zip(entry["max_grid"], padded, strict=True))
        over = [axis for axis in range(3) if padded[axis] > CUDA_GRID_LIMITS[axis]]
        if over:
            entry.setdefault("grid_errors", []).append(f"{workload[0]}: grid {grid} over CUDA's limit on axis {over}")

    # The launchers' one GPU-dependent choice, answered as on the GPU (bf16 tensor-core dots too).
    names = [info.name for info in pkgutil.iter_modules(kernels_package.__path__) if not info.name.startswith("_")]
    modules = [importlib.import_module(f"{kernels_package.__name__}.{name}") for name in names]
    modules = [m for m in modules if hasattr(m, "half_precision_dots")]
    gpu_rule = _launch_rule_on_gpu
    saved_run = interpreter.InterpretedFunction.run
    saved_rules = {m: m.half_precision_dots for m in modules}
    interpreter.InterpretedFunction.run = record
    for module in modules:
        module.half_precision_dots = gpu_rule
    try:
        yield
    finally:
        interpreter.InterpretedFunction.run = saved_run
        for module, rule in saved_rules.items():
            module.half_precision_dots = rule


def _launch_rule_on_gpu(tensor: torch.Tensor) -> bool:
    return tensor.dtype != torch.float32


def _generators() -> dict[str, tuple[Callable[[], torch.nn.Module], int]]:
    import fastgan.models as models

    return {
        "melgan": (lambda: models.MelGANGenerator(), 256),
        "mb-melgan": (
            lambda: models.MelGANGenerator(out_channels=4, channels=384, upsample_scales=[5, 5, 3], stacks=4),
            300,
        ),  # fmt: skip
        "hifigan-v1": (lambda: models.HiFiGANGenerator(**copy.deepcopy(models.HIFIGAN_CONFIGS["v1"])), 256),
        "hifigan-v2": (lambda: models.HiFiGANGenerator(**copy.deepcopy(models.HIFIGAN_CONFIGS["v2"])), 256),
        "hifigan-v3": (lambda: models.HiFiGANGenerator(**copy.deepcopy(models.HIFIGAN_CONFIGS["v3"])), 256),
        "pwg": (lambda: models.ParallelWaveGANGenerator(), 256),
    }


def _inputs(name: str, batch: int, frames: int, hop: int, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    c = torch.randn(batch, 80, frames, dtype=dtype)
    if name == "pwg":
        return (torch.randn(batch, 1, frames * hop, dtype=dtype), torch.nn.functional.pad(c, (2, 2), mode="replicate"))
    return (c,)


def workloads() -> Iterator[tuple[str, Callable[[], None]]]:
    """(name, run) for what a GPU user runs: inference of every generator in fp32/bf16/fp16 (batch 1 at
    2 s and at an odd length, batch 16 at 1 s, one minute in bf16), generator training steps with the
    STFT loss (fp32 and bf16 autocast), the STFT loss's benchmark sizes and modes, WaveGAN."""
    import fastgan.models as models

    import fastgan.nn as fnn

    half = (torch.bfloat16, torch.float16)
    for name, (build, hop) in _generators().items():
        generator = build().eval()
        if hasattr(generator, "remove_weight_norm"):
            generator.remove_weight_norm()
        for dtype in (torch.float32, *half):
            generator = generator.to(dtype)
            shapes = [(1, 172), (1, 173), (16, 86)] + ([(1, 60 * 22050 // hop)] if dtype == torch.bfloat16 else [])
            for batch, frames in shapes:
                label = f"{name} inference {str(dtype)[6:]} b{batch} {frames} frames"

                def run(generator=generator, shape=(name, batch, frames, hop, dtype)):
                    with torch.inference_mode():
                        generator(*_inputs(*shape))

                yield label, run

    # Training steps: the generator, the STFT loss and, standing in for the discriminators (plain torch
    # convs, no kernel of ours, and most of the CPU time here), an adversarial term that reaches every output.
    for name, (build, hop) in _generators().items():
        generator = build()
        pqmf = fnn.PQMF(4) if name == "mb-melgan" else None
        stft_loss = fnn.MultiResolutionSTFTLoss()
        frames = 8192 // hop + 1
        for autocast in (None, torch.bfloat16):
            label = f"{name} training step b16 {frames} frames{' bf16 autocast' if autocast else ''}"

            def run(generator=generator, pqmf=pqmf, stft_loss=stft_loss, autocast=autocast,
                    shape=(name, 16, frames, hop, torch.float32)):  # fmt: skip
                with torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
                    fake = generator(*_inputs(*shape))
                    if pqmf is not None:
                        fake = pqmf.synthesis(fake)
                    sc, mag = stft_loss(fake.float().squeeze(1), torch.randn_like(fake).squeeze(1))
                (sc + mag + (fake * torch.randn_like(fake)).mean()).backward()

            yield label, run

    # The STFT loss benchmark's sizes; its auraloss, mel-bin and target-gradient modes.
    modes = [{}, {"mode": "auraloss", "w_lin_mag": 1.0}, {"scale": "mel", "sample_rate": 24000, "n_bins": 80},
             {"grad_target": True}]  # fmt: skip
    for batch, length, kwargs in [(16, 16384, m) for m in modes] + [(32, 24000, {}), (1, 16383, {})]:
        label = f"stft loss b{batch} x {length} {kwargs or ''}"

        def run(batch=batch, length=length, kwargs=kwargs):
            x = torch.randn(batch, length, requires_grad=True)
            y = torch.randn(batch, length, requires_grad=bool(kwargs.get("grad_target")))
            _sum_outputs(fnn.MultiResolutionSTFTLoss(**kwargs)(x, y)).backward()

        yield label, run

    # WaveGAN at the paper's batch 64: the generator's transposed convs, the discriminator's phase shuffles.
    for slice_len in (16384, 65536):
        label = f"wavegan training b64 {slice_len}"

        def run(slice_len=slice_len):
            generator = models.WaveGANGenerator(slice_len=slice_len)
            fake = generator(torch.rand(64, 100) * 2 - 1)
            (fake * torch.randn_like(fake)).mean().backward()
            body = models.WaveGANDiscriminator(slice_len=slice_len).body
            for i, (conv, shuffle) in enumerate(zip(body.convs, body.shuffles, strict=False)):
                x = torch.randn(64, conv.out_channels, slice_len // 4 ** (i + 1), requires_grad=True)
                shuffle(x).sum().backward()

        yield label, run


def _sum_outputs(outputs) -> torch.Tensor:
    if isinstance(outputs, torch.Tensor):
        return outputs.float().mean()
    return sum(_sum_outputs(o) for o in outputs)


def main(argv: list[str]) -> int:
    if os.environ.get("TRITON_INTERPRET") != "1" or os.environ.get("FASTGAN_BACKEND") != "triton":
        print("run with TRITON_INTERPRET=1 FASTGAN_BACKEND=triton (aot_compile.py does)", file=sys.stderr)
        return 2
    verbose = "-v" in argv
    argv = [a for a in argv if a != "-v"]
    torch.manual_seed(0)
    records: list[dict] = []
    seen: dict = {}
    current = [""]
    start = time.perf_counter()
    with recording(records, seen, current):
        for label, run in workloads():
            current[0] = label
            begun = time.perf_counter()
            run()
            if verbose:
                print(f"{time.perf_counter() - begun:6.1f} s  {label}", flush=True)
    with open(argv[0], "wb") as handle:
        pickle.dump(records, handle)
    launches = sum(r["launches"] for r in records)
    print(f"traced {launches} launches, {len(records)} distinct specialisations, {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
