"""WaveGAN's phase shuffle as a module."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastgan import functional

MODES = ("per_example", "shared")


class PhaseShuffle(nn.Module):
    """Shift each example by a random whole number of samples in [-n, n], reflecting at the edges.

    ``mode="per_example"`` draws one shift per example (what PyTorch ports of WaveGAN do);
    ``mode="shared"`` draws one for the whole batch (WaveGAN's TensorFlow code). Identity in eval
    mode and when ``n == 0``. ``negative_slope`` fuses a preceding LeakyReLU into the same pass
    (it still applies in eval mode). ``forward(x, generator=None)`` takes an optional
    ``torch.Generator`` on x's device for reproducible shifts.
    """

    def __init__(self, n: int = 2, mode: str = "per_example", negative_slope: float | None = None):
        super().__init__()
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"PhaseShuffle: n must be a non-negative int, got {n!r}")
        if mode not in MODES:
            raise ValueError(f"PhaseShuffle: mode must be one of {MODES}, got {mode!r}")
        self.n = n
        self.mode = mode
        self.negative_slope = negative_slope

    def extra_repr(self) -> str:
        slope = "" if self.negative_slope is None else f", negative_slope={self.negative_slope}"
        return f"n={self.n}, mode={self.mode!r}{slope}"

    def draw_shifts(self, batch: int, device: torch.device, generator: torch.Generator | None = None):
        count = batch if self.mode == "per_example" else 1
        shifts = torch.randint(-self.n, self.n + 1, (count,), generator=generator, device=device)
        return shifts if count == batch else shifts.expand(batch).contiguous()

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.training or self.n == 0:
            return x if self.negative_slope is None else F.leaky_relu(x, self.negative_slope)
        if x.dim() != 3:
            raise ValueError(f"PhaseShuffle: x must be (batch, channels, time), got shape {tuple(x.shape)}")
        if self.n >= x.shape[2]:
            raise ValueError(f"PhaseShuffle: n={self.n} must be < the signal length {x.shape[2]}")
        shifts = self.draw_shifts(x.shape[0], x.device, generator)
        # |shift| <= n < T holds by construction, so skip the sync that reads the values.
        return functional.phase_shuffle(x, shifts, self.negative_slope, check_shift_range=False)
