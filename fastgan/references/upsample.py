"""Reference of one scale of Parallel WaveGAN's conditioning upsampler, without the stretched signal.

parallel_wavegan stretches each row ``c`` (length T) by ``s`` with nearest-neighbour repetition,
``u[j] = c[j // s]``, then smooths with a (2s+1)-tap conv, zero-padded by s on each side (or by 2s
on the left, for the causal variant). Output sample ``j = t * s + r`` reads ``u[j + k - P]`` for
taps k = 0..2s (P = s, or 2s when causal), and ``(j + k - P) // s = t + d`` with d in
{-1, 0, 1} (causal: {-2, -1, 0}) because the stretch aligns the zero padding of u with that of c.
So each of the s output phases r is a 3-tap conv over c whose taps are sums of the smoothing taps:

    out[t * s + r] = sum_{m=0..2} taps[r, m] * c[t + first + m],   first = -1 (causal: -2)

computed as one (T, 3) x (3, s) matrix product per row; an optional LeakyReLU runs in place on the
fresh output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fastgan.references._precision import HALF_DTYPES


def first_offset(causal: bool) -> int:
    """The offset d of a phase's first tap: c[t - 1] (centred) or c[t - 2] (causal)."""
    return -2 if causal else -1


_ASSIGNMENTS: dict[tuple, torch.Tensor] = {}


def _assignment(scale: int, causal: bool, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(2s+1, 3s) 0/1 matrix: entry [k, 3r + m] is 1 when smoothing tap k lands in phase r's tap m.

    Cached per (scale, causal, device, dtype) in eager mode, so a forward pays one small matmul
    per scale and no host-to-device copy.
    """
    key = (scale, causal, device, dtype)
    cached = None if torch.compiler.is_compiling() else _ASSIGNMENTS.get(key)
    if cached is not None:
        return cached
    kernel = 2 * scale + 1
    pad = 2 * scale if causal else scale
    first = first_offset(causal)
    with torch.inference_mode(False):  # made in an inference_mode call, it still serves training calls
        r = torch.arange(scale, device=device).view(scale, 1)
        k = torch.arange(kernel, device=device).view(1, kernel)
        m = torch.div(r + k - pad, scale, rounding_mode="floor") - first  # (s, 2s+1), values in {0, 1, 2}
        assign = m.unsqueeze(-1) == torch.arange(3, device=device)  # (s, 2s+1, 3)
        assign = assign.permute(1, 0, 2).reshape(kernel, 3 * scale).to(dtype)
    if not torch.compiler.is_compiling():
        _ASSIGNMENTS[key] = assign
    return assign


def smoothing_to_taps(weight: torch.Tensor, scale: int, causal: bool) -> torch.Tensor:
    """Fold the (2s+1)-tap smoothing conv ``weight`` (any shape holding 2s+1 values) into (s, 3) phase taps.

    Differentiable (a product with a constant 0/1 matrix), so gradients reach the smoothing weight.
    The taps are fp32 whatever the weight's dtype: summing half-precision taps and rounding the sums
    back would add an error the stretched formulation does not have.
    """
    kernel = 2 * scale + 1
    compute = _compute_dtype(weight.dtype)
    weight = weight.reshape(1, kernel).to(compute)
    return torch.mm(weight, _assignment(scale, causal, weight.device, compute)).view(scale, 3)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in HALF_DTYPES else dtype


def _padded_windows(c: torch.Tensor, causal: bool) -> torch.Tensor:
    """(..., T) -> (..., T, 3): the three input samples each output phase reads, zero outside."""
    first = first_offset(causal)
    return F.pad(c, (-first, 2 + first)).unfold(-1, 3, 1)


def stretch_conv1d_reference(
    c: torch.Tensor, taps: torch.Tensor, causal: bool, negative_slope: float | None = None
) -> torch.Tensor:
    """``c`` (B, C, T), ``taps`` (s, 3) -> (B, C, T * s): stretch by s, smooth, optional LeakyReLU.

    Three broadcast multiply-adds of the shifted input frames against the phase taps, written
    straight into the (B, C, T, s) view of the output (fp32 arithmetic for fp16/bf16).
    """
    batch, channels, length = c.shape
    scale = taps.shape[0]
    compute = _compute_dtype(c.dtype)
    first = first_offset(causal)
    padded = F.pad(c.to(compute), (-first, 2 + first)).unsqueeze(-1)  # (B, C, T + 2, 1)
    taps = taps.to(compute)
    out = padded[..., 0:length, :] * taps[:, 0]  # (B, C, T, s)
    out.addcmul_(padded[..., 1 : length + 1, :], taps[:, 1])
    out.addcmul_(padded[..., 2 : length + 2, :], taps[:, 2])
    out = out.reshape(batch, channels, length * scale)
    if negative_slope is not None:
        F.leaky_relu_(out, negative_slope)  # out is ours: safe in place
    return out.to(c.dtype)


def stretch_conv1d_backward_reference(
    grad_out: torch.Tensor,
    c: torch.Tensor,
    taps: torch.Tensor,
    out: torch.Tensor | None,
    causal: bool,
    negative_slope: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients with respect to ``c`` and ``taps``.

    The LeakyReLU's derivative is read from the forward's output ``out`` (its sign equals its
    input's for a slope >= 0), so the pre-activation never has to be kept.
    """
    batch, channels, length = c.shape
    scale = taps.shape[0]
    compute = _compute_dtype(c.dtype)
    grad = grad_out.to(compute)
    if negative_slope is not None:
        grad = torch.where(out > 0, grad, grad * negative_slope)
    grad = grad.reshape(-1, scale)  # (B*C*T, s), contiguous
    grad_windows = torch.mm(grad, taps.to(compute)).view(batch, channels, length, 3)
    first = first_offset(causal)
    # c[t + first + m] received grad_windows[t, m]: add the three shifted columns.
    grad_padded = torch.zeros(batch, channels, length + 2, dtype=compute, device=grad.device)
    for m in range(3):
        grad_padded[..., m : m + length] += grad_windows[..., m]
    grad_c = grad_padded[..., -first : -first + length]
    windows = _padded_windows(c.to(compute), causal).reshape(-1, 3)  # (B*C*T, 3), a small copy
    grad_taps = torch.mm(grad.t(), windows)  # (s, 3)
    return grad_c.to(c.dtype).contiguous(), grad_taps.to(taps.dtype)


@dataclass(frozen=True)
class BandedUpsampler:
    """A linear upsampling shared by every channel, from F frames to F * hop samples, as a band matrix.

    ``out[..., j * hop + p] = sum_w frames[..., j + offset + w] * band_j[w, p]`` (frames zero outside
    [0, F)). Parallel WaveGAN's upsampler without activations is such a map (each scale is a per-phase
    3-tap filter over zero-padded input), so a channel mixing W applied after it equals the same mixing
    applied at frame rate before it: ``W @ U(c) == U(W @ c)``. The WaveNet block uses this on CPU to
    apply its aux 1x1 conv to the frames (hop times fewer products) and spread the result over time with
    a K = width GEMM (see ``wavenet_block_reference``).

    Every frame shares ``interior`` (width, hop) bit for bit except the few near either end, where the zero
    padding of each scale's input changes the pattern: ``edges`` holds those frames' own rows. The size
    does not grow with F.
    """

    frames: int
    offset: int  # the first frame a sample reads, relative to its own frame j = t // hop
    interior: torch.Tensor  # (width, hop), fp32
    edges: tuple[tuple[int, torch.Tensor], ...]  # (frame, its (width, hop) row) where it differs

    @property
    def width(self) -> int:
        return self.interior.shape[0]

    @property
    def hop(self) -> int:
        return self.interior.shape[1]

    @property
    def edge_frames(self) -> tuple[int, ...]:
        return tuple(j for j, _ in self.edges)

    @property
    def device(self) -> torch.device:
        return self.interior.device

    def windows(self, rows: torch.Tensor, first: int, stop: int) -> torch.Tensor:
        """``rows`` (..., F) -> (..., stop - first, width): the frames each of frames first..stop-1 reads."""
        lo, hi = first + self.offset, stop + self.offset + self.width - 1  # frames [lo, hi) are read
        piece = rows[..., max(lo, 0) : min(hi, self.frames)]
        piece = F.pad(piece, (max(0, -lo), max(0, hi - self.frames)))
        return piece.unfold(-1, self.width, 1)

    def apply_rows(
        self, rows: torch.Tensor, first: int, stop: int, row_bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``rows`` (C, F) -> a fresh contiguous (C, (stop - first) * hop): samples of frames first..stop-1,
        plus ``row_bias`` (C,) on every sample of its row when given (one more GEMM column, not another pass).

        One GEMM (K = width) with the interior row for all frames, then the edge frames redone with their own.
        """
        if stop <= first:
            return rows.new_empty((rows.shape[0], 0))
        windows = self.windows(rows, first, stop)  # (C, n, width), a strided view
        channels, count = windows.shape[0], windows.shape[1]
        interior = self.interior.to(rows.dtype)
        if row_bias is not None:
            windows = torch.cat([windows, row_bias.to(rows.dtype)[:, None, None].expand(-1, count, 1)], 2)
            interior = torch.cat([interior, interior.new_ones((1, self.hop))])
        out = torch.mm(windows.reshape(channels * count, -1), interior).view(channels, count, self.hop)
        for j, row in self.edges:
            if first <= j < stop:
                row = row.to(rows.dtype)
                if row_bias is not None:
                    row = torch.cat([row, row.new_ones((1, self.hop))])
                out[:, j - first] = windows[:, j - first] @ row
        return out.view(channels, count * self.hop)

    def apply(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, C, F) -> (B, C, F * hop), differentiable in ``frames``; fp16/bf16 compute in fp32 and round once."""
        batch, channels, count = frames.shape
        if count != self.frames:
            raise ValueError(f"BandedUpsampler: built for {self.frames} frames, got {count}")
        compute = _compute_dtype(frames.dtype)
        windows = self.windows(frames.to(compute), 0, count)  # (B, C, F, width)
        out = torch.matmul(windows, self.interior.to(compute))  # (B, C, F, hop)
        for j, row in self.edges:
            out[:, :, j] = windows[:, :, j] @ row.to(compute)
        return out.reshape(batch, channels, count * self.hop).to(frames.dtype)
