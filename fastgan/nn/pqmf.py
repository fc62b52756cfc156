"""Pseudo-QMF filter bank (Nguyen 1994; Lin & Vaidyanathan 1998) for Multi-band MelGAN.

Same filters, buffers and results as parallel_wavegan 0.6.1's ``parallel_wavegan.layers.PQMF``,
computed with fewer passes:

* analysis: the band filters and the decimation are one strided convolution (parallel_wavegan
  filters at full rate, then picks every ``subbands``-th sample with a second conv);
* synthesis: interpolation and the band filters are one transposed convolution with the
  flipped, gain-scaled filters (parallel_wavegan zero-stuffs with a transposed conv, pads, and
  filters the ``subbands``-times longer signal).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def design_prototype_filter(taps: int = 62, cutoff_ratio: float = 0.142, beta: float = 9.0) -> np.ndarray:
    """The Kaiser-windowed sinc prototype low-pass filter, ``taps + 1`` coefficients."""
    if taps % 2 != 0:
        raise ValueError(f"PQMF: taps must be even, got {taps}")
    if not 0.0 < cutoff_ratio < 1.0:
        raise ValueError(f"PQMF: cutoff_ratio must be in (0, 1), got {cutoff_ratio}")
    n = np.arange(taps + 1) - 0.5 * taps
    omega_c = np.pi * cutoff_ratio
    ideal = np.empty(taps + 1)
    nonzero = n != 0
    ideal[nonzero] = np.sin(omega_c * n[nonzero]) / (np.pi * n[nonzero])
    ideal[~nonzero] = cutoff_ratio  # the limit of sin(w n) / (pi n) at n = 0
    return ideal * np.kaiser(taps + 1, beta)


def _check_floating(x: torch.Tensor, method: str) -> None:
    """The filters are cast to the input's dtype: an integer one would round them to zero."""
    if not x.is_floating_point():
        raise TypeError(f"PQMF.{method}: x must be floating-point, got dtype {x.dtype}")


class PQMF(nn.Module):
    """``analysis(x)``: (B, 1, T) -> (B, subbands, T // subbands); ``synthesis(y)``: back to (B, 1, T).

    Buffers ``analysis_filter`` (subbands, 1, taps + 1), ``synthesis_filter`` (1, subbands, taps + 1)
    and ``updown_filter`` keep parallel_wavegan's names and values, so a state dict holding them loads.
    """

    def __init__(self, subbands: int = 4, taps: int = 62, cutoff_ratio: float = 0.142, beta: float = 9.0):
        super().__init__()
        if subbands < 1:
            raise ValueError(f"PQMF: subbands must be >= 1, got {subbands}")
        prototype = design_prototype_filter(taps, cutoff_ratio, beta)
        n = np.arange(taps + 1) - taps / 2
        analysis = np.zeros((subbands, taps + 1))
        synthesis = np.zeros((subbands, taps + 1))
        for k in range(subbands):
            carrier = (2 * k + 1) * (np.pi / (2 * subbands)) * n
            phase = (-1) ** k * np.pi / 4
            analysis[k] = 2 * prototype * np.cos(carrier + phase)
            synthesis[k] = 2 * prototype * np.cos(carrier - phase)
        self.register_buffer("analysis_filter", torch.from_numpy(analysis).float().unsqueeze(1))
        self.register_buffer("synthesis_filter", torch.from_numpy(synthesis).float().unsqueeze(0))
        updown = torch.zeros(subbands, subbands, subbands)
        updown[range(subbands), range(subbands), 0] = 1.0  # parallel_wavegan keeps a (s, s, s) kernel
        self.register_buffer("updown_filter", updown)
        self.subbands = subbands
        self.taps = taps

    def extra_repr(self) -> str:
        return f"subbands={self.subbands}, taps={self.taps}"

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"PQMF.analysis: x must be (batch, 1, time), got shape {tuple(x.shape)}")
        _check_floating(x, "analysis")
        weight = self.analysis_filter.to(x.dtype)
        out = F.conv1d(x, weight, stride=self.subbands, padding=self.taps // 2)
        return out[..., : x.shape[2] // self.subbands]  # parallel_wavegan keeps floor(T / subbands) samples

    def synthesis(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.subbands:
            raise ValueError(f"PQMF.synthesis: x must be (batch, {self.subbands}, time), got shape {tuple(x.shape)}")
        _check_floating(x, "synthesis")
        # y[t] = s * sum_k sum_n x_k[n] h_k[s n + P - t]: a transposed conv with flipped, scaled filters.
        weight = (self.synthesis_filter.flip(2) * self.subbands).transpose(0, 1).to(x.dtype)
        return F.conv_transpose1d(
            x, weight, stride=self.subbands, padding=self.taps // 2, output_padding=self.subbands - 1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Analysis then synthesis: the filter bank's near-perfect reconstruction of ``x``."""
        return self.synthesis(self.analysis(x))
