"""Functional forms of fastgan's hot paths; each calls its custom op in ``torch.ops.fastgan``."""

from __future__ import annotations

from collections.abc import Sequence

import torch

import fastgan.ops  # noqa: F401  (registers torch.ops.fastgan.*)
from fastgan._checks import autocast_inputs, without_autocast
from fastgan.references.upsample import BandedUpsampler


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
    from fastgan.ops import phase_shuffle as op

    slope = None if negative_slope is None else float(negative_slope)
    return op.phase_shuffle(x, shifts, slope, check_shift_range)


def leaky_dilated_residual(
    x: torch.Tensor,
    weight1: torch.Tensor,
    bias1: torch.Tensor | None = None,
    weight2: torch.Tensor | None = None,
    bias2: torch.Tensor | None = None,
    shortcut_weight: torch.Tensor | None = None,
    shortcut_bias: torch.Tensor | None = None,
    *,
    negative_slope: float = 0.2,
    dilation: int = 1,
    padding: str = "reflect",
    causal: bool = False,
) -> torch.Tensor:
    """One fused dilated residual step (MelGAN's residual stack, HiFi-GAN's ResBlock1/ResBlock2).

    ``z = conv_d(pad(leaky(x)), weight1) + bias1``; with ``weight2`` (C, C, k2):
    ``out = conv(leaky(z), weight2) + bias2 + residual`` (zero same/causal padding), else
    ``out = z + residual``; ``residual = shortcut_weight @ x + shortcut_bias`` (a (C, C, 1) 1x1
    conv, MelGAN) or ``x``. ``padding`` ("reflect", "replicate", "zeros") pads ``leaky(x)``
    for the dilated conv: both sides by (k - 1) * dilation / 2, or all on the left when ``causal``.
    ``x`` (B, C, T) and every weight share one float dtype (fp32/fp16/bf16) and device; under
    torch.autocast all are cast to the autocast dtype first, as for the convolutions it replaces.
    """
    from fastgan.ops import residual_block as op

    x, weight1, bias1, weight2, bias2, shortcut_weight, shortcut_bias = autocast_inputs(
        x, weight1, bias1, weight2, bias2, shortcut_weight, shortcut_bias
    )
    with without_autocast(x):
        return op.leaky_dilated_residual(
            x, weight1, bias1, weight2, bias2, shortcut_weight, shortcut_bias,
            float(negative_slope), int(dilation), padding, bool(causal),
        )  # fmt: skip


def conv_transpose1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
    negative_slope: float | None = None,
) -> torch.Tensor:
    """``conv_transpose1d(leaky_relu(x, negative_slope), weight, bias, stride, padding, output_padding)`` in one pass.

    ``x`` (B, C_in, L) fp32/fp16/bf16; ``weight`` (C_in, C_out, K) and ``bias`` (C_out,) of x's
    dtype; groups = 1, dilation = 1; ``negative_slope=None`` skips the LeakyReLU. Output
    (B, C_out, (L - 1) * stride - 2 * padding + K + output_padding), as torch's.
    """
    from fastgan.ops import conv_transpose as op  # eagerly on the reference path: the reference itself

    slope = None if negative_slope is None else float(negative_slope)
    x, weight, bias = autocast_inputs(x, weight, bias)
    with without_autocast(x):
        return op.conv_transpose1d(x, weight, bias, int(stride), int(padding), int(output_padding), slope)


def smoothing_to_taps(weight: torch.Tensor, scale: int, causal: bool = False) -> torch.Tensor:
    """Fold Parallel WaveGAN's (2s+1)-tap smoothing conv weight into the (s, 3) phase taps of :func:`stretch_conv1d`."""
    from fastgan.references.upsample import smoothing_to_taps as fold

    return fold(weight, int(scale), bool(causal))


def stretch_conv1d(
    c: torch.Tensor, taps: torch.Tensor, causal: bool = False, negative_slope: float | None = None
) -> torch.Tensor:
    """One scale of Parallel WaveGAN's upsampler: nearest stretch by s, smoothing conv, optional LeakyReLU.

    ``c`` (B, C, T); ``taps`` (s, 3) from :func:`smoothing_to_taps`. Output (B, C, T * s) with
    ``out[t*s + r] = leaky_relu(sum_m taps[r, m] * c[t + m - 1])`` (causal: ``c[t + m - 2]``),
    zero outside the signal. ``negative_slope`` must be >= 0 (ReLU is 0.0).
    """
    from fastgan.ops import upsample as op  # eager inference on the reference path: the reference itself

    slope = None if negative_slope is None else float(negative_slope)
    c, taps = autocast_inputs(c, taps)
    with without_autocast(c):
        return op.stretch_conv1d(c, taps, bool(causal), slope)


def wavenet_block(
    x: torch.Tensor,
    c: torch.Tensor | None,
    conv_weight: torch.Tensor,
    conv_bias: torch.Tensor | None,
    aux_weight: torch.Tensor | None,
    out_weight: torch.Tensor,
    out_bias: torch.Tensor | None,
    skip_weight: torch.Tensor,
    skip_bias: torch.Tensor | None,
    *,
    dilation: int = 1,
    causal: bool = False,
    skip_sum: torch.Tensor | None = None,
    aux_upsampler: BandedUpsampler | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Parallel WaveGAN's gated residual block (without dropout): ``(x_out, skip)``.

    ``z = conv1d(x, conv_weight, conv_bias, dilation, zero padding) + aux_weight @ c``;
    ``g = tanh(z[:, :G/2]) * sigmoid(z[:, G/2:])``; ``x_out = (out_weight @ g + out_bias + x) *
    sqrt(0.5)``; ``skip = skip_weight @ g + skip_bias``, plus ``skip_sum`` when given (returned as
    a new tensor; the gradient passes straight through to it). Padding is ``(K-1)//2 * dilation``
    each side, or ``(K-1) * dilation`` on the left when ``causal``. x (B, R, T), c (B, A, T) or
    None (then aux_weight must be None), conv_weight (G, R, K), 1x1 weights (out, in) or
    (out, in, 1); every tensor of x's dtype (fp32/fp16/bf16) and device. With ``aux_upsampler``
    (e.g. ``ConvInUpsampleNetwork.banded_upsampler``), ``c`` holds the frames (B, A, F) it upsamples to
    T = F * hop samples; eager CPU inference then applies ``aux_weight`` at frame rate.
    """
    x, c, conv_weight, conv_bias, aux_weight, out_weight, out_bias, skip_weight, skip_bias, skip_sum = autocast_inputs(
        x, c, conv_weight, conv_bias, aux_weight, out_weight, out_bias, skip_weight, skip_bias, skip_sum
    )
    from fastgan.ops import wavenet_block as op

    with without_autocast(x):
        return op.wavenet_block(
            x, c, conv_weight, conv_bias, aux_weight, out_weight, out_bias, skip_weight, skip_bias, skip_sum,
            int(dilation), bool(causal), aux_upsampler,
        )  # fmt: skip


def wavenet_takes_frame_rate_aux(x: torch.Tensor) -> bool:
    """True where :func:`wavenet_block` applies its aux conv at frame rate when given an ``aux_upsampler``
    (eager CPU inference); elsewhere it upsamples the frames itself, once per block."""
    from fastgan.ops import wavenet_block as op

    return op.takes_frame_rate_aux(x)


def stft_loss_terms(
    x: torch.Tensor,
    y: torch.Tensor,
    fft_size: int = 1024,
    hop_size: int = 120,
    win_length: int = 600,
    window: str | torch.Tensor = "hann_window",
    *,
    eps: float = 1e-7,
    mel_basis: torch.Tensor | None = None,
    grad_target: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One resolution's ``(spectral convergence, log-magnitude L1, linear-magnitude L1)``, fp32 scalars.

    Magnitudes ``m = sqrt(max(|STFT|^2, eps))`` (torch.stft, center=True, reflect padding, the
    window zero-padded to ``fft_size``), or ``mel_basis @ m`` with a (n_mels, fft_size // 2 + 1)
    ``mel_basis``. Spectral convergence is ``||my - mx||_F / ||my||_F``; the L1 terms are means over
    every (signal, bin, frame). ``x`` (prediction) and ``y`` (target) are (B, T) or (B, C, T) of any
    float dtype; the sums are computed in fp32 whatever the dtype or autocast state. Only ``x``
    gets a gradient unless ``grad_target=True``. ``window`` is a torch window function name or a
    (win_length,) tensor.
    """
    from fastgan.ops import stft_loss as op

    return op.stft_loss_terms(x, y, fft_size, hop_size, win_length, window, eps, mel_basis, grad_target)


def stft_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    fft_size: int = 1024,
    hop_size: int = 120,
    win_length: int = 600,
    window: str | torch.Tensor = "hann_window",
    *,
    eps: float = 1e-7,
    mel_basis: torch.Tensor | None = None,
    grad_target: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """parallel_wavegan's single-resolution STFT loss: ``(sc_loss, mag_loss)``; see :func:`stft_loss_terms`."""
    sc, log_mag, _ = stft_loss_terms(
        x, y, fft_size, hop_size, win_length, window, eps=eps, mel_basis=mel_basis, grad_target=grad_target
    )
    return sc, log_mag


def multi_resolution_stft_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    fft_sizes: Sequence[int] = (1024, 2048, 512),
    hop_sizes: Sequence[int] = (120, 240, 50),
    win_lengths: Sequence[int] = (600, 1200, 240),
    window: str = "hann_window",
    *,
    eps: float = 1e-7,
    grad_target: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """parallel_wavegan's multi-resolution STFT loss: ``(sc_loss, mag_loss)``, each the mean over resolutions of
    :func:`stft_loss`'s terms; the functional form of :class:`fastgan.nn.MultiResolutionSTFTLoss` (its default mode)."""
    resolutions = list(zip(fft_sizes, hop_sizes, win_lengths, strict=False))
    if not resolutions or not len(fft_sizes) == len(hop_sizes) == len(win_lengths):
        raise ValueError(
            "multi_resolution_stft_loss: fft_sizes, hop_sizes and win_lengths must be non-empty and of one length, "
            f"got {len(fft_sizes)}, {len(hop_sizes)}, {len(win_lengths)}"
        )
    sc_loss, mag_loss = 0.0, 0.0
    for fft_size, hop_size, win_length in resolutions:
        sc, log_mag = stft_loss(x, y, fft_size, hop_size, win_length, window, eps=eps, grad_target=grad_target)
        sc_loss, mag_loss = sc_loss + sc, mag_loss + log_mag
    return sc_loss / len(resolutions), mag_loss / len(resolutions)
