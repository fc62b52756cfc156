"""Functional forms of fastgan's hot paths; each calls its custom op in ``torch.ops.fastgan``."""

from __future__ import annotations

import torch

import fastgan.ops  # noqa: F401  (registers torch.ops.fastgan.*)


def phase_shuffle(
    x: torch.Tensor,
    shifts: torch.Tensor,
    negative_slope: float | None = None,
    *,
    check_shift_range: bool = True,
) -> torch.Tensor:
    """WaveGAN's phase shuffle with an optional fused LeakyReLU.

    ``out[b, c, t] = y[b, c, reflect(t - shifts[b])]`` where ``y = leaky_relu(x, negative_slope)``
    when a slope is given and ``y = x`` otherwise; ``reflect`` mirrors without repeating the edge
    sample. ``x`` is (B, C, T) fp32/fp16/bf16, ``shifts`` (B,) int64 on x's device, |shift| < T.

    ``check_shift_range=False`` skips reading the shifts' values (a device sync on CUDA) for a
    caller that already guarantees |shift| < T, as :class:`fastgan.nn.PhaseShuffle` does.
    """
    slope = None if negative_slope is None else float(negative_slope)
    return torch.ops.fastgan.phase_shuffle(x, shifts, slope, check_shift_range)
