"""Phase shuffle with its fused LeakyReLU at WaveGAN discriminator sizes.

References: the vectorised gather (leaky_relu then torch.gather, fastgan's reference), the
per-example reflect-pad loop that PyTorch ports of WaveGAN use, and torch.compile of the gather.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.harness import Case
from fastgan.functional import phase_shuffle
from fastgan.references.phase_shuffle import phase_shuffle_reference

SLOPE = 0.2
# WaveGAN discriminator (d = 64, 16 384 samples): the output of each of its five conv layers.
WAVEGAN_LAYERS = [(64, 4096), (128, 1024), (256, 256), (512, 64), (1024, 16)]


def per_example_loop(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    y = F.leaky_relu(x, SLOPE)
    length = x.shape[2]
    out = []
    for example, shift in zip(y, shifts.tolist(), strict=True):
        example = example.unsqueeze(0)
        if shift >= 0:
            out.append(F.pad(example, (shift, 0), mode="reflect")[..., :length])
        else:
            out.append(F.pad(example, (0, -shift), mode="reflect")[..., -shift:])
    return torch.cat(out)


def fused(x, shifts):
    return phase_shuffle(x, shifts, SLOPE, check_shift_range=False)


def gather(x, shifts):
    return phase_shuffle_reference(x, shifts, SLOPE)


def _runner(fn, x, shifts, mode, grad):
    if mode == "fwd":
        return lambda: fn(x, shifts)

    def forward_backward():
        x.grad = None
        fn(x, shifts).backward(grad)

    return forward_backward


def cases(quick: bool, device: torch.device) -> list[Case]:
    batch = 16 if quick else 64
    layers = [WAVEGAN_LAYERS[i] for i in (0, 2, 4)] if quick else WAVEGAN_LAYERS
    dtypes = [torch.float32] if device.type == "cpu" else [torch.float32, torch.bfloat16]
    impls = {"fastgan": fused, "gather": gather, "per-example loop": per_example_loop}
    if not quick:
        impls["torch.compile"] = torch.compile(gather, dynamic=False)
    result = []
    for dtype in dtypes:
        for channels, length in layers:
            x = torch.randn(batch, channels, length, device=device, dtype=dtype)
            shifts = torch.randint(-2, 3, (batch,), device=device)
            grad = torch.randn_like(x)
            elements = x.numel() * x.element_size()
            for mode in ("fwd", "fwd+bwd"):
                x.requires_grad_(mode != "fwd")
                # fwd: read x, write out. bwd: read grad and x (the slope's mask), write grad_x.
                moved = 2 * elements if mode == "fwd" else 5 * elements
                runners = {name: _runner(fn, x, shifts, mode, grad) for name, fn in impls.items()}
                result.append(Case("phase_shuffle", f"b{batch} c{channels} t{length}", mode, dtype, runners, moved))
    return result
