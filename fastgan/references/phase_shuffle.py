"""Reference phase shuffle (WaveGAN): shift each example by a few samples, reflecting at the edges."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reflect_index(positions: torch.Tensor, length: int) -> torch.Tensor:
    """Reflect ``positions`` into [0, length) without repeating the edge sample.

    Valid for positions in (-length, 2 * length - 1), which |shift| < length guarantees.
    """
    last = length - 1
    reflected = torch.where(positions < 0, -positions, positions)
    return torch.where(reflected > last, 2 * last - reflected, reflected)


def _source_index(shifts: torch.Tensor, length: int) -> torch.Tensor:
    """(B, T) int64: the input sample each output sample reads."""
    time = torch.arange(length, device=shifts.device, dtype=torch.int64)
    return reflect_index(time.unsqueeze(0) - shifts.unsqueeze(1), length)


def phase_shuffle_reference(x: torch.Tensor, shifts: torch.Tensor, negative_slope: float | None = None) -> torch.Tensor:
    """``out[b, c, t] = y[b, c, reflect(t - shifts[b])]``, ``y = leaky_relu(x)`` when a slope is given."""
    batch, channels, length = x.shape
    y = x if negative_slope is None else F.leaky_relu(x, negative_slope)
    index = _source_index(shifts, length).unsqueeze(1).expand(batch, channels, length)
    return torch.gather(y, 2, index)


def phase_shuffle_backward_reference(
    grad_out: torch.Tensor, x: torch.Tensor, shifts: torch.Tensor, negative_slope: float | None = None
) -> torch.Tensor:
    """The gradient of :func:`phase_shuffle_reference` with respect to ``x``.

    Output samples that read the same input sample (the reflected edges) add onto it.
    """
    batch, channels, length = x.shape
    index = _source_index(shifts, length).unsqueeze(1).expand(batch, channels, length)
    grad_y = torch.zeros(x.shape, dtype=grad_out.dtype, device=grad_out.device)
    grad_y.scatter_add_(2, index, grad_out)
    if negative_slope is None:
        return grad_y
    # One pass: grad where x > 0, grad * slope elsewhere (torch's own LeakyReLU derivative).
    return torch.ops.aten.leaky_relu_backward(grad_y, x, negative_slope, False)
