"""STFT loss sums (one resolution) as a DFT GEMM on tensor cores: forward and backward.

Why a DFT GEMM and not cuFFT between fused pre/post kernels
-----------------------------------------------------------
Chosen by counting, not by measurement (no GPU was available when this was written; `make
gpu-check` measures it). A real DFT of an N-point frame costs ~2·N·N flops as a GEMM against a
cos/sin basis (N/2 columns each) against ~2.5·N·log2(N) by FFT: 40x more arithmetic at N = 1024.
At batch 16 × 16384 with the default resolutions, both signals, the basis trimmed to the window's
non-zero rows (600/1024, 1200/2048, 240/512): 5.4 + 10.9 + 2.6 = 18.8 GFLOP forward; the backward
recomputes both spectra (18.8) and runs the transposed GEMM for x (9.4). With ``tf32x3`` (three
TF32 tensor-core passes, ≈ fp32 accuracy; one TF32 pass's 10-bit mantissa would miss the 1e-5
parity this loss promises) that is 3 × 47 GFLOP of TF32 work: ~0.3 ms at the H100's 494 dense
TF32 TFLOP/s, ~0.6 ms at a realistic 50 %.
The cuFFT route does almost no arithmetic but must write windowed frames (frames × N fp32) and
the complex spectrum (frames × (N//2+1) × 8 B) and read both back: ≈ 230 MB per forward at these
sizes (~80 µs at 3 TB/s), as much again in the backward, plus ~5 launches per resolution and
pass. By time the two are within a small factor of each other, cuFFT likely ahead; the GEMM
route is taken for memory and fusion: its forward writes 16 bytes per program and holds nothing
of size frames × bins (this issue's requirement, and what its ≤ 1/3 peak-memory goal needs),
both signals' magnitudes meet in registers, and the backward reuses the same basis. If the GPU
numbers show the tensor-core work dominating, the cheaper levers are one TF32 pass where 1e-3
accuracy is enough, or the cuFFT route for the backward only.

Layout
------
The window is folded into the basis (``basis[0] = w[n] cos``, ``basis[1] = w[n] sin``), whose rows
are only the window's non-zero support (win_length rows of the n_fft-sample frame), so frames are
read straight from the signal -- reflect padding by index arithmetic, no unfold copy -- and no
FLOP is spent on the zero padding. The N // 2 + 1 bins of a real N-point frame carry N real
numbers (DC and, for an even N, Nyquist are real), packed into ceil(N / 2) columns of a cos and a
sin part. For an even N the Nyquist bin's cosine replaces the DC bin's (identically zero) sine, so
N/2 columns carry all N/2 + 1 bins: column 0 holds DC in its real part and Nyquist in its
imaginary part (``HAS_NYQUIST``). An odd N has no Nyquist bin: (N + 1) / 2 columns, one per bin,
and column 0's sine stays zero (not a bin: ``HAS_NYQUIST=False`` leaves it out of the sums and
the gradients; the mel forward needs no flag, its Nyquist filterbank column is then zero).

Forward: program (frame block, bin block) computes both signals' spectra tile, their magnitudes
and the four loss sums of the tile, and writes 4 fp32 partial sums; a second stage sums the
partials in a fixed order (deterministic, no atomics).

Backward: (1) recompute the spectra tile and write d(loss)/d(real, imag) per bin (frames × bins,
fp32 -- the only large buffer, backward only); (2) a GEMM against the transposed basis gives the
gradient of every windowed frame sample; (3) each signal sample gathers the frame samples that
read it, directly or through the reflect padding, in a fixed order (deterministic, no atomics).

Mel bins (``stft_mel_*``): one program per block of frames walks every bin block, multiplying the
magnitude tiles by fb^T in registers, and writes only the (frames × n_mels) mel magnitudes; the
loss terms on those are plain torch. Its backward step (1) turns d(loss)/d(mel) into
d(loss)/d(magnitude) with one more GEMM against fb, then shares steps (2) and (3).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from fastgan.kernels._launch import TRITON_DTYPE_NAMES, KernelSpec, next_power_of_2

BLOCK_M = 64  # frames per program
BLOCK_F = 64  # packed bins per program (forward, backward step 1)
BLOCK_K = 16  # window samples per reduction step (forward, backward step 1)
BLOCK_N = 64  # window samples per program in backward step 2
BLOCK_R = 32  # packed bins per reduction step in backward step 2
BLOCK_S = 256  # signal samples per program in backward step 3
FFT_BLOCK_M, FFT_BLOCK_N = 32, 128  # the cuFFT route's pre/post kernels (element-wise tiles)
FFT_GRAD_BLOCK_M = 16  # its d/dspectrum kernel holds more per element
MEL_BLOCK_M = 16  # frames per program of the mel forward (one program covers every bin)
MEL_NUM_WARPS = 8
# Frames per program of the mel backward step 1, by BLOCK_MEL: its d/dmel and fb tiles take registers.
MEL_GRAD_TILES = {32: (32, 64), 64: (32, 64), 128: (16, 64)}  # BLOCK_MEL -> (BLOCK_M, BLOCK_F)
MEL_GRAD_NUM_WARPS = 8
MIN_BLOCK_MEL, MAX_BLOCK_MEL = 32, 128  # mel bases with more rows take the reference
NUM_WARPS = 8
NUM_STAGES = 2
# Three TF32 passes on the tensor cores: ~fp32 accuracy. The interpreter multiplies in fp32.
PRECISION = "tf32x3"


@triton.jit
def _magnitude(power, eps):
    """sqrt(max(power, eps)) with a NaN power kept NaN, as torch.clamp_min keeps it: the default
    tl.maximum lowers to maxnum on GPUs, which returns eps for a NaN and would hide a non-finite
    input behind a finite loss."""
    return tl.sqrt(tl.maximum(power, eps, propagate_nan=tl.PropagateNan.ALL))


@triton.jit
def _reflect(position, length):
    last = length - 1
    position = tl.where(position < 0, -position, position)
    return tl.where(position > last, 2 * last - position, position)


@triton.jit
def _spectra_tile(
    x_ptr, y_ptr, basis_ptr, pid_m, pid_f, total_frames, length, n_frames, hop, offset0, win_length, f_pad,
    stride_xr, stride_xt, stride_yr, stride_yt,
    BLOCK_M: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """Real and imaginary parts of both signals' packed spectra for BLOCK_M frames × BLOCK_F bins."""
    m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = m < total_frames
    row = (m // n_frames).to(tl.int64)
    frame = m % n_frames
    start = frame * hop + offset0
    cols = pid_f * BLOCK_F + tl.arange(0, BLOCK_F)
    x_row = x_ptr + row * stride_xr
    y_row = y_ptr + row * stride_yr
    k_pad = tl.cdiv(win_length, BLOCK_K) * BLOCK_K
    sin_ptr = basis_ptr + k_pad * f_pad
    xr = tl.zeros((BLOCK_M, BLOCK_F), dtype=tl.float32)
    xi = tl.zeros((BLOCK_M, BLOCK_F), dtype=tl.float32)
    yr = tl.zeros((BLOCK_M, BLOCK_F), dtype=tl.float32)
    yi = tl.zeros((BLOCK_M, BLOCK_F), dtype=tl.float32)
    for k0 in range(0, win_length, BLOCK_K):
        n = k0 + tl.arange(0, BLOCK_K)
        position = _reflect(start[:, None] + n[None, :], length).to(tl.int64)
        mask = m_ok[:, None] & (n < win_length)[None, :]
        xt = tl.load(x_row[:, None] + position * stride_xt, mask=mask, other=0.0).to(tl.float32)
        yt = tl.load(y_row[:, None] + position * stride_yt, mask=mask, other=0.0).to(tl.float32)
        basis_offsets = n[:, None] * f_pad + cols[None, :]  # the basis is zero-padded: no mask
        cos_tile = tl.load(basis_ptr + basis_offsets)
        sin_tile = tl.load(sin_ptr + basis_offsets)
        xr = tl.dot(xt, cos_tile, xr, input_precision=PRECISION)
        xi = tl.dot(xt, sin_tile, xi, input_precision=PRECISION)
        yr = tl.dot(yt, cos_tile, yr, input_precision=PRECISION)
        yi = tl.dot(yt, sin_tile, yi, input_precision=PRECISION)
    return xr, xi, yr, yi, m_ok, cols


@triton.jit
def _sum_terms(px, py, valid, eps):
    """The four loss sums over the valid bins whose powers are px (prediction) and py (target)."""
    mx = _magnitude(px, eps)
    my = _magnitude(py, eps)
    diff = my - mx
    zero = tl.zeros_like(diff)
    s0 = tl.sum(tl.sum(tl.where(valid, diff * diff, zero), axis=1), axis=0)
    s1 = tl.sum(tl.sum(tl.where(valid, my * my, zero), axis=1), axis=0)
    s2 = tl.sum(tl.sum(tl.where(valid, tl.abs(tl.log(my) - tl.log(mx)), zero), axis=1), axis=0)
    s3 = tl.sum(tl.sum(tl.where(valid, tl.abs(diff), zero), axis=1), axis=0)
    return s0, s1, s2, s3


@triton.jit
def _stft_loss_forward_kernel(
    x_ptr, y_ptr, basis_ptr, partial_ptr, total_frames, length, n_frames, hop, offset0, win_length, f_pad,
    half_bins, eps, stride_xr, stride_xt, stride_yr, stride_yt,
    HAS_NYQUIST: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_K: tl.constexpr,
    PRECISION: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_f = tl.program_id(1)
    eps = tl.cast(eps, tl.float32)
    xr, xi, yr, yi, m_ok, cols = _spectra_tile(
        x_ptr, y_ptr, basis_ptr, pid_m, pid_f, total_frames, length, n_frames, hop, offset0, win_length, f_pad,
        stride_xr, stride_xt, stride_yr, stride_yt, BLOCK_M, BLOCK_F, BLOCK_K, PRECISION,
    )  # fmt: skip
    is_dc = (cols == 0)[None, :]
    # Column 0 packs DC (real part) and, for an even n_fft, Nyquist (imaginary part); every other column is one bin.
    px = tl.where(is_dc, xr * xr, xr * xr + xi * xi)
    py = tl.where(is_dc, yr * yr, yr * yr + yi * yi)
    valid = m_ok[:, None] & (cols < half_bins)[None, :]
    s0, s1, s2, s3 = _sum_terms(px, py, valid, eps)
    if HAS_NYQUIST:
        n0, n1, n2, n3 = _sum_terms(xi * xi, yi * yi, valid & is_dc, eps)
        s0, s1, s2, s3 = s0 + n0, s1 + n1, s2 + n2, s3 + n3
    out = partial_ptr + (pid_m * tl.num_programs(1) + pid_f) * 4
    tl.store(out + 0, s0)
    tl.store(out + 1, s1)
    tl.store(out + 2, s2)
    tl.store(out + 3, s3)


@triton.jit
def _power_grads(px, py, g0, g1, g2, g3, eps):
    """Per-bin coefficients c such that d(loss)/dr = c · r for the real or imaginary part r of a bin."""
    mx = _magnitude(px, eps)
    my = _magnitude(py, eps)
    diff = my - mx
    log_diff = tl.log(my) - tl.log(mx)
    one = tl.full(diff.shape, 1.0, tl.float32)
    zero = tl.zeros_like(diff)
    sign_log = tl.where(log_diff > 0, one, tl.where(log_diff < 0, -one, zero))
    sign_diff = tl.where(diff > 0, one, tl.where(diff < 0, -one, zero))
    d_mx = -2.0 * g0 * diff - g2 * sign_log / mx - g3 * sign_diff
    d_my = 2.0 * g0 * diff + 2.0 * g1 * my + g2 * sign_log / my + g3 * sign_diff
    # m = sqrt(clamp(p, eps)): dm/dp = 1 / (2 m) where p >= eps (clamp passes the gradient there), and
    # dp/dr = 2 r, so d(loss)/dr = r · d(loss)/dm / m.
    coef_x = tl.where(px >= eps, d_mx / mx, zero)
    coef_y = tl.where(py >= eps, d_my / my, zero)
    return coef_x, coef_y


@triton.jit
def _stft_loss_spectrum_grad_kernel(
    x_ptr, y_ptr, basis_ptr, grad_sums_ptr, spec_grad_ptr, target_grad_ptr, total_frames, length, n_frames, hop, offset0,
    win_length, f_pad, half_bins, eps, stride_xr, stride_xt, stride_yr, stride_yt,
    GRAD_TARGET: tl.constexpr, HAS_NYQUIST: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_F: tl.constexpr,
    BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_f = tl.program_id(1)
    eps = tl.cast(eps, tl.float32)
    g0 = tl.load(grad_sums_ptr + 0).to(tl.float32)
    g1 = tl.load(grad_sums_ptr + 1).to(tl.float32)
    g2 = tl.load(grad_sums_ptr + 2).to(tl.float32)
    g3 = tl.load(grad_sums_ptr + 3).to(tl.float32)
    xr, xi, yr, yi, m_ok, cols = _spectra_tile(
        x_ptr, y_ptr, basis_ptr, pid_m, pid_f, total_frames, length, n_frames, hop, offset0, win_length, f_pad,
        stride_xr, stride_xt, stride_yr, stride_yt, BLOCK_M, BLOCK_F, BLOCK_K, PRECISION,
    )  # fmt: skip
    is_dc = (cols == 0)[None, :]
    px = tl.where(is_dc, xr * xr, xr * xr + xi * xi)
    py = tl.where(is_dc, yr * yr, yr * yr + yi * yi)
    cx, cy = _power_grads(px, py, g0, g1, g2, g3, eps)
    if HAS_NYQUIST:  # the Nyquist bin, in column 0's imaginary part
        nx, ny = _power_grads(xi * xi, yi * yi, g0, g1, g2, g3, eps)
        cx_im, cy_im = tl.where(is_dc, nx, cx), tl.where(is_dc, ny, cy)
    else:  # column 0's imaginary part is no bin (its sine is zero): no gradient
        cx_im, cy_im = tl.where(is_dc, 0.0, cx), tl.where(is_dc, 0.0, cy)
    live = (cols < half_bins)[None, :]
    zero = tl.zeros_like(cx)
    m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offsets = m[:, None].to(tl.int64) * (2 * f_pad) + cols[None, :]
    mask = m_ok[:, None] & (cols < f_pad)[None, :]
    tl.store(spec_grad_ptr + offsets, tl.where(live, cx * xr, zero), mask=mask)
    tl.store(spec_grad_ptr + offsets + f_pad, tl.where(live, cx_im * xi, zero), mask=mask)
    if GRAD_TARGET:
        tl.store(target_grad_ptr + offsets, tl.where(live, cy * yr, zero), mask=mask)
        tl.store(target_grad_ptr + offsets + f_pad, tl.where(live, cy_im * yi, zero), mask=mask)


@triton.jit
def _stft_loss_frame_grad_kernel(
    spec_grad_ptr, basis_ptr, frame_grad_ptr, total_rows, k_pad, f_pad,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_F: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """frame_grad[m, n] = sum_k dRe[m, k] · cos_w[n, k] + dIm[m, k] · sin_w[n, k]."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = m < total_rows
    n_ok = n < k_pad
    row = spec_grad_ptr + m[:, None].to(tl.int64) * (2 * f_pad)
    sin_ptr = basis_ptr + k_pad * f_pad
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, f_pad, BLOCK_F):
        k = k0 + tl.arange(0, BLOCK_F)
        grad_re = tl.load(row + k[None, :], mask=m_ok[:, None], other=0.0)
        grad_im = tl.load(row + f_pad + k[None, :], mask=m_ok[:, None], other=0.0)
        basis_offsets = n[None, :] * f_pad + k[:, None]  # the transposed basis tile (BLOCK_F, BLOCK_N)
        cos_t = tl.load(basis_ptr + basis_offsets, mask=n_ok[None, :], other=0.0)
        sin_t = tl.load(sin_ptr + basis_offsets, mask=n_ok[None, :], other=0.0)
        acc = tl.dot(grad_re, cos_t, acc, input_precision=PRECISION)
        acc = tl.dot(grad_im, sin_t, acc, input_precision=PRECISION)
    out = frame_grad_ptr + m[:, None].to(tl.int64) * k_pad + n[None, :]
    tl.store(out, acc, mask=m_ok[:, None] & n_ok[None, :])


@triton.jit
def _stft_loss_overlap_add_kernel(
    frame_grad_ptr, grad_ptr, length, n_frames, hop, offset0, win_length, k_pad, max_cover,
    BLOCK_S: tl.constexpr,
):  # fmt: skip
    """grad[row, s] = the sum of every frame sample that read s, directly or through the reflect padding."""
    row = tl.program_id(0).to(tl.int64)  # (signal index, row) flattened
    s = tl.program_id(1) * BLOCK_S + tl.arange(0, BLOCK_S)
    s_ok = s < length
    frames = frame_grad_ptr + row * n_frames * k_pad
    acc = tl.zeros((BLOCK_S,), dtype=tl.float32)
    for side in tl.static_range(3):
        if side == 0:
            position = s
            ok = s_ok
        elif side == 1:  # read as padded position -s by the left reflection
            position = -s
            ok = s_ok & (s > 0)
        else:  # read as padded position 2 (T - 1) - s by the right reflection
            position = 2 * (length - 1) - s
            ok = s_ok & (s < length - 1)
        base = position - offset0  # = frame · hop + n
        last_frame = base // hop
        for j in range(0, max_cover):
            frame = last_frame - j
            n = base - frame * hop
            valid = ok & (frame >= 0) & (frame < n_frames) & (n >= 0) & (n < win_length)
            acc += tl.load(frames + frame.to(tl.int64) * k_pad + n, mask=valid, other=0.0)
    tl.store(grad_ptr + row * length + s, acc.to(grad_ptr.dtype.element_ty), mask=s_ok)


@triton.jit
def _stft_mel_forward_kernel(
    x_ptr, y_ptr, basis_ptr, fbt_ptr, fb_nyquist_ptr, mel_ptr, total_frames, length, n_frames, hop, offset0,
    win_length, f_pad, n_mels, eps, stride_xr, stride_xt, stride_yr, stride_yt,
    BLOCK_M: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_MEL: tl.constexpr,
    PRECISION: tl.constexpr,
):  # fmt: skip
    """Mel magnitudes of BLOCK_M frames of both signals: every bin block in turn, magnitudes · fb^T
    accumulated in registers; only frames × n_mels is written.

    No HAS_NYQUIST flag: for an odd n_fft the Nyquist column of fb is zero (packed_mel_basis), so the
    Nyquist term adds sqrt(max(0, eps)) · 0 = 0 exactly. (A flag would cost no accuracy but its odd
    variant spills on sm_90 at BLOCK_MEL 32 and 64.)"""
    pid_m = tl.program_id(0)
    eps = tl.cast(eps, tl.float32)
    mels = tl.arange(0, BLOCK_MEL)
    mel_x = tl.zeros((BLOCK_M, BLOCK_MEL), dtype=tl.float32)
    mel_y = tl.zeros((BLOCK_M, BLOCK_MEL), dtype=tl.float32)
    nyquist_px = tl.zeros((BLOCK_M,), dtype=tl.float32)
    nyquist_py = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for f0 in range(0, f_pad, BLOCK_F):
        xr, xi, yr, yi, m_ok, cols = _spectra_tile(
            x_ptr, y_ptr, basis_ptr, pid_m, f0 // BLOCK_F, total_frames, length, n_frames, hop, offset0, win_length,
            f_pad, stride_xr, stride_xt, stride_yr, stride_yt, BLOCK_M, BLOCK_F, BLOCK_K, PRECISION,
        )  # fmt: skip
        is_dc = (cols == 0)[None, :]
        mx = _magnitude(tl.where(is_dc, xr * xr, xr * xr + xi * xi), eps)
        my = _magnitude(tl.where(is_dc, yr * yr, yr * yr + yi * yi), eps)
        fbt = tl.load(fbt_ptr + cols[:, None] * BLOCK_MEL + mels[None, :])  # zero rows past the last bin
        mel_x = tl.dot(mx, fbt, mel_x, input_precision=PRECISION)
        mel_y = tl.dot(my, fbt, mel_y, input_precision=PRECISION)
        nyquist_px += tl.sum(tl.where(is_dc, xi * xi, 0.0), axis=1)
        nyquist_py += tl.sum(tl.where(is_dc, yi * yi, 0.0), axis=1)
    fb_nyquist = tl.load(fb_nyquist_ptr + mels)[None, :]
    mel_x += _magnitude(nyquist_px, eps)[:, None] * fb_nyquist
    mel_y += _magnitude(nyquist_py, eps)[:, None] * fb_nyquist
    m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    mask = (m < total_frames)[:, None] & (mels < n_mels)[None, :]
    offsets = m[:, None].to(tl.int64) * n_mels + mels[None, :]
    tl.store(mel_ptr + offsets, mel_x, mask=mask)
    tl.store(mel_ptr + total_frames.to(tl.int64) * n_mels + offsets, mel_y, mask=mask)


@triton.jit
def _mel_bin_grads(grad_mel_ptr, fbt_ptr, fb_nyquist_ptr, m, m_ok, cols, n_mels,
                   BLOCK_MEL: tl.constexpr, PRECISION: tl.constexpr):  # fmt: skip
    """d(loss)/d(magnitude) of a bin tile and of the Nyquist bin from d(loss)/d(mel)."""
    mels = tl.arange(0, BLOCK_MEL)
    grad_mel = tl.load(
        grad_mel_ptr + m[:, None].to(tl.int64) * n_mels + mels[None, :],
        mask=m_ok[:, None] & (mels < n_mels)[None, :], other=0.0,
    )  # fmt: skip
    fb = tl.load(fbt_ptr + cols[None, :] * BLOCK_MEL + mels[:, None])  # (BLOCK_MEL, BLOCK_F)
    grad_mag = tl.dot(grad_mel, fb, input_precision=PRECISION)
    grad_nyquist = tl.sum(grad_mel * tl.load(fb_nyquist_ptr + mels)[None, :], axis=1)
    return grad_mag, grad_nyquist


@triton.jit
def _mag_coef(power, grad_mag, eps):
    """c with d(loss)/dr = c · r for a part r of a bin, from d(loss)/d(magnitude)."""
    mag = _magnitude(power, eps)
    return tl.where(power >= eps, grad_mag / mag, 0.0)


@triton.jit
def _stft_mel_spectrum_grad_kernel(
    x_ptr, y_ptr, basis_ptr, fbt_ptr, fb_nyquist_ptr, grad_mel_ptr, spec_grad_ptr, target_grad_ptr, total_frames,
    length, n_frames, hop, offset0, win_length, f_pad, half_bins, n_mels, eps,
    stride_xr, stride_xt, stride_yr, stride_yt,
    GRAD_TARGET: tl.constexpr, HAS_NYQUIST: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_F: tl.constexpr,
    BLOCK_K: tl.constexpr, BLOCK_MEL: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_f = tl.program_id(1)
    eps = tl.cast(eps, tl.float32)
    m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = m < total_frames
    cols = pid_f * BLOCK_F + tl.arange(0, BLOCK_F)
    # d/d(magnitude) first: its d/dmel and fb tiles are dead before the spectra's accumulators live.
    grad_mag_x, grad_nyquist_x = _mel_bin_grads(
        grad_mel_ptr, fbt_ptr, fb_nyquist_ptr, m, m_ok, cols, n_mels, BLOCK_MEL, PRECISION
    )  # fmt: skip
    if GRAD_TARGET:
        grad_mag_y, grad_nyquist_y = _mel_bin_grads(
            grad_mel_ptr + total_frames.to(tl.int64) * n_mels, fbt_ptr, fb_nyquist_ptr, m, m_ok, cols, n_mels,
            BLOCK_MEL, PRECISION,
        )  # fmt: skip
    xr, xi, yr, yi, m_ok, cols = _spectra_tile(
        x_ptr, y_ptr, basis_ptr, pid_m, pid_f, total_frames, length, n_frames, hop, offset0, win_length, f_pad,
        stride_xr, stride_xt, stride_yr, stride_yt, BLOCK_M, BLOCK_F, BLOCK_K, PRECISION,
    )  # fmt: skip
    is_dc = (cols == 0)[None, :]
    live = (cols < half_bins)[None, :]
    offsets = m[:, None].to(tl.int64) * (2 * f_pad) + cols[None, :]
    mask = m_ok[:, None] & (cols < f_pad)[None, :]
    coef = _mag_coef(tl.where(is_dc, xr * xr, xr * xr + xi * xi), grad_mag_x, eps)
    if HAS_NYQUIST:  # column 0's imaginary part is the Nyquist bin
        coef_im = tl.where(is_dc, _mag_coef(xi * xi, grad_nyquist_x[:, None], eps), coef)
    else:  # no bin there (its sine is zero)
        coef_im = tl.where(is_dc, 0.0, coef)
    tl.store(spec_grad_ptr + offsets, tl.where(live, coef * xr, 0.0), mask=mask)
    tl.store(spec_grad_ptr + offsets + f_pad, tl.where(live, coef_im * xi, 0.0), mask=mask)
    if GRAD_TARGET:
        coef = _mag_coef(tl.where(is_dc, yr * yr, yr * yr + yi * yi), grad_mag_y, eps)
        if HAS_NYQUIST:
            coef_im = tl.where(is_dc, _mag_coef(yi * yi, grad_nyquist_y[:, None], eps), coef)
        else:
            coef_im = tl.where(is_dc, 0.0, coef)
        tl.store(target_grad_ptr + offsets, tl.where(live, coef * yr, 0.0), mask=mask)
        tl.store(target_grad_ptr + offsets + f_pad, tl.where(live, coef_im * yi, 0.0), mask=mask)


# Derived tables, cached per source tensor *object* (a module's window or mel buffer) and its version:
# the entry keeps the source alive, so its memory cannot be reused by another tensor under the same
# key. A fresh tensor every call just misses (and rebuilds, a few small kernels).
_CACHE_SIZE = 8


def _cached(cache: dict, source: torch.Tensor, n_fft: int, build):
    # An inference tensor has no version counter (and cannot be changed outside inference mode).
    key = (id(source), 0 if source.is_inference() else source._version, n_fft)
    entry = cache.get(key)
    if entry is not None and entry[0] is source:
        return entry[1]
    with torch.inference_mode(False):  # built in an inference_mode call, it still serves training calls
        value = build()
    if len(cache) >= _CACHE_SIZE:
        cache.pop(next(iter(cache)))  # the oldest entry
    cache[key] = (source, value)
    return value


# --- The cuFFT route (``path="fft"``): Triton pre/post kernels around torch.fft (cuFFT on CUDA). ---


@triton.jit
def _stft_frames_kernel(
    x_ptr, y_ptr, window_ptr, frames_ptr, total_frames, length, n_frames, hop, n_fft,
    stride_xr, stride_xt, stride_yr, stride_yt,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """frames[s · total + m, n] = w[n] · signal_s[reflect(frame · hop - n_fft / 2 + n)], s = x, y."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = m < total_frames
    n_ok = n < n_fft
    row = (m // n_frames).to(tl.int64)
    frame = m % n_frames
    position = _reflect((frame * hop - n_fft // 2)[:, None] + n[None, :], length).to(tl.int64)
    w = tl.load(window_ptr + n, mask=n_ok, other=0.0)[None, :]
    mask = m_ok[:, None] & n_ok[None, :]
    xt = tl.load(x_ptr + row[:, None] * stride_xr + position * stride_xt, mask=mask, other=0.0).to(tl.float32)
    yt = tl.load(y_ptr + row[:, None] * stride_yr + position * stride_yt, mask=mask, other=0.0).to(tl.float32)
    offsets = m[:, None].to(tl.int64) * n_fft + n[None, :]
    tl.store(frames_ptr + offsets, xt * w, mask=mask)
    tl.store(frames_ptr + total_frames.to(tl.int64) * n_fft + offsets, yt * w, mask=mask)


@triton.jit
def _rfft_spectra_tile(spec_ptr, total_frames, n_bins, BLOCK_M: tl.constexpr, BLOCK_F: tl.constexpr):
    """This program's (frames x bins) tile of the x and y spectra (rfft output, (re, im) pairs; y's after all of
    x's): the bin indices, the mask, the offsets into either half, y's start, and x_re, x_im, y_re, y_im."""
    m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    k = tl.program_id(1) * BLOCK_F + tl.arange(0, BLOCK_F)
    valid = (m < total_frames)[:, None] & (k < n_bins)[None, :]
    offsets = (m[:, None].to(tl.int64) * n_bins + k[None, :]) * 2
    target = total_frames.to(tl.int64) * n_bins * 2
    xr = tl.load(spec_ptr + offsets, mask=valid, other=0.0)
    xi = tl.load(spec_ptr + offsets + 1, mask=valid, other=0.0)
    yr = tl.load(spec_ptr + target + offsets, mask=valid, other=0.0)
    yi = tl.load(spec_ptr + target + offsets + 1, mask=valid, other=0.0)
    return k, valid, offsets, target, xr, xi, yr, yi


@triton.jit
def _stft_fft_sums_kernel(
    spec_ptr, partial_ptr, total_frames, n_bins, eps, BLOCK_M: tl.constexpr, BLOCK_F: tl.constexpr
):  # fmt: skip
    """Partial loss sums from the (2 · total, n_bins, 2) spectra of x then y (torch.fft.rfft's output)."""
    pid_m = tl.program_id(0)
    pid_f = tl.program_id(1)
    eps = tl.cast(eps, tl.float32)
    k, valid, offsets, target, xr, xi, yr, yi = _rfft_spectra_tile(spec_ptr, total_frames, n_bins, BLOCK_M, BLOCK_F)
    s0, s1, s2, s3 = _sum_terms(xr * xr + xi * xi, yr * yr + yi * yi, valid, eps)
    out = partial_ptr + (pid_m * tl.num_programs(1) + pid_f) * 4
    tl.store(out + 0, s0)
    tl.store(out + 1, s1)
    tl.store(out + 2, s2)
    tl.store(out + 3, s3)


@triton.jit
def _stft_fft_spectrum_grad_kernel(
    spec_ptr, grad_sums_ptr, spec_grad_ptr, total_frames, n_bins, n_fft, eps,
    GRAD_TARGET: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_F: tl.constexpr,
):  # fmt: skip
    """Z such that irfft(Z, n_fft) is d(loss)/d(windowed frame): N · G_k, halved for 0 < k < N/2 (every bin but
    DC and, for an even N, Nyquist)."""
    eps = tl.cast(eps, tl.float32)
    g0 = tl.load(grad_sums_ptr + 0)
    g1 = tl.load(grad_sums_ptr + 1)
    g2 = tl.load(grad_sums_ptr + 2)
    g3 = tl.load(grad_sums_ptr + 3)
    k, valid, offsets, target, xr, xi, yr, yi = _rfft_spectra_tile(spec_ptr, total_frames, n_bins, BLOCK_M, BLOCK_F)
    cx, cy = _power_grads(xr * xr + xi * xi, yr * yr + yi * yi, g0, g1, g2, g3, eps)
    scale = tl.where((k > 0) & (2 * k < n_fft), 0.5, 1.0)[None, :] * tl.cast(n_fft, tl.float32)
    tl.store(spec_grad_ptr + offsets, cx * scale * xr, mask=valid)
    tl.store(spec_grad_ptr + offsets + 1, cx * scale * xi, mask=valid)
    if GRAD_TARGET:
        tl.store(spec_grad_ptr + target + offsets, cy * scale * yr, mask=valid)
        tl.store(spec_grad_ptr + target + offsets + 1, cy * scale * yi, mask=valid)


_BASIS_CACHE: dict[tuple, tuple] = {}


def dft_basis(window: torch.Tensor, n_fft: int) -> torch.Tensor:
    """(2, K_pad, F_pad) fp32: window-folded cos and sin of the packed_columns(n_fft) columns (for an even n_fft
    the Nyquist cos in sin's column 0), zero-padded."""
    return _cached(_BASIS_CACHE, window, n_fft, lambda: _build_dft_basis(window, n_fft))


def packed_columns(n_fft: int) -> int:
    """Columns of the packed bin layout: N/2 for an even N (Nyquist shares column 0), (N + 1)/2 for an odd N."""
    return (n_fft + 1) // 2


def _build_dft_basis(window: torch.Tensor, n_fft: int) -> torch.Tensor:
    win_length = window.shape[0]
    left = (n_fft - win_length) // 2
    half = packed_columns(n_fft)
    k_pad = triton.cdiv(win_length, BLOCK_K) * BLOCK_K
    f_pad = triton.cdiv(half, BLOCK_F) * BLOCK_F
    n = torch.arange(win_length, device=window.device, dtype=torch.int64) + left
    k = torch.arange(half, device=window.device, dtype=torch.int64)
    # Exact integer phase (k · n mod N) before the float64 angle: no drift for large k · n.
    angle = (torch.outer(n, k) % n_fft).double() * (2 * math.pi / n_fft)
    w = window.double()[:, None]
    basis = torch.zeros((2, k_pad, f_pad), dtype=torch.float32, device=window.device)
    basis[0, :win_length, :half] = (w * torch.cos(angle)).float()
    sin = w * torch.sin(angle)  # column 0: sin(0) = 0, the DC bin has no imaginary part
    if n_fft % 2 == 0:
        sin[:, 0] = w[:, 0] * (1 - 2 * (n % 2)).double()  # cos(pi n): the Nyquist bin
    basis[1, :win_length, :half] = sin.float()
    return basis


def _geometry(x: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor):
    rows, length = x.shape
    n_frames = 1 + (length + 2 * (n_fft // 2) - n_fft) // hop
    offset0 = (n_fft - window.shape[0]) // 2 - n_fft // 2
    return rows, length, n_frames, offset0


def stft_loss_forward(
    x: torch.Tensor, y: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, eps: float
) -> torch.Tensor:
    """The four loss sums (fp32, shape (4,)) of one resolution. x, y: (R, T), n_fft >= 2 (even or odd), T > n_fft // 2."""
    rows, length, n_frames, offset0 = _geometry(x, n_fft, hop, window)
    basis = dft_basis(window, n_fft)
    win_length = window.shape[0]
    total = rows * n_frames
    grid = (triton.cdiv(total, BLOCK_M), basis.shape[2] // BLOCK_F)
    partial = torch.empty((grid[0] * grid[1], 4), dtype=torch.float32, device=x.device)
    _stft_loss_forward_kernel[grid](
        x, y, basis, partial, total, length, n_frames, hop, offset0, win_length, basis.shape[2],
        packed_columns(n_fft), float(eps), *x.stride(), *y.stride(),
        HAS_NYQUIST=n_fft % 2 == 0, BLOCK_M=BLOCK_M, BLOCK_F=BLOCK_F, BLOCK_K=BLOCK_K, PRECISION=PRECISION,
        num_warps=NUM_WARPS, num_stages=NUM_STAGES,
    )  # fmt: skip
    # Second stage: a fixed-order sum of the per-program partials (deterministic), in float64.
    return partial.double().sum(0).float()


def _stft_frames(x, y, n_fft, hop, window, rows, n_frames):
    """(2 · R · frames, n_fft) fp32 windowed frames of x then y (reflect padding by index)."""
    total = rows * n_frames
    frames = torch.empty((2 * total, n_fft), dtype=torch.float32, device=x.device)
    win = _padded_window(window, n_fft)
    grid = (triton.cdiv(total, FFT_BLOCK_M), triton.cdiv(n_fft, FFT_BLOCK_N))
    _stft_frames_kernel[grid](
        x, y, win, frames, total, x.shape[1], n_frames, hop, n_fft, *x.stride(), *y.stride(),
        BLOCK_M=FFT_BLOCK_M, BLOCK_N=FFT_BLOCK_N, num_warps=4, num_stages=2,
    )  # fmt: skip
    return frames


_WINDOW_CACHE: dict[tuple, tuple] = {}


def _padded_window(window: torch.Tensor, n_fft: int) -> torch.Tensor:
    def build():
        left = (n_fft - window.shape[0]) // 2
        return torch.nn.functional.pad(window.float(), (left, n_fft - window.shape[0] - left)).contiguous()

    return _cached(_WINDOW_CACHE, window, n_fft, build)


def stft_loss_forward_fft(
    x: torch.Tensor, y: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, eps: float
) -> torch.Tensor:
    """stft_loss_forward by the cuFFT route: frames kernel, torch.fft.rfft, sums kernel."""
    rows, _, n_frames, _ = _geometry(x, n_fft, hop, window)
    total = rows * n_frames
    spectrum = torch.view_as_real(torch.fft.rfft(_stft_frames(x, y, n_fft, hop, window, rows, n_frames), dim=1))
    bins = n_fft // 2 + 1
    grid = (triton.cdiv(total, FFT_BLOCK_M), triton.cdiv(bins, FFT_BLOCK_N))
    partial = torch.empty((grid[0] * grid[1], 4), dtype=torch.float32, device=x.device)
    _stft_fft_sums_kernel[grid](
        spectrum, partial, total, bins, float(eps), BLOCK_M=FFT_BLOCK_M, BLOCK_F=FFT_BLOCK_N, num_warps=4, num_stages=2
    )  # fmt: skip
    return partial.double().sum(0).float()


def stft_loss_backward_fft(
    grad_sums: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    n_fft: int,
    hop: int,
    window: torch.Tensor,
    eps: float,
    grad_target: bool,
) -> torch.Tensor:
    """stft_loss_backward by the cuFFT route: recompute the spectra, d/dspectrum kernel, torch.fft.irfft,
    the window, then the same gather overlap-add as the GEMM route."""
    rows, length, n_frames, offset0 = _geometry(x, n_fft, hop, window)
    total = rows * n_frames
    signals = 2 if grad_target else 1
    spectrum = torch.view_as_real(torch.fft.rfft(_stft_frames(x, y, n_fft, hop, window, rows, n_frames), dim=1))
    bins = n_fft // 2 + 1
    spec_grad = torch.empty((signals * total, bins, 2), dtype=torch.float32, device=x.device)
    grid = (triton.cdiv(total, FFT_GRAD_BLOCK_M), triton.cdiv(bins, FFT_BLOCK_N))
    _stft_fft_spectrum_grad_kernel[grid](
        spectrum, grad_sums.float().contiguous(), spec_grad, total, bins, n_fft, float(eps),
        GRAD_TARGET=grad_target, BLOCK_M=FFT_GRAD_BLOCK_M, BLOCK_F=FFT_BLOCK_N, num_warps=8, num_stages=2,
    )  # fmt: skip
    del spectrum
    frame_grad = torch.fft.irfft(torch.view_as_complex(spec_grad), n=n_fft, dim=1)
    frame_grad *= _padded_window(window, n_fft)
    left = (n_fft - window.shape[0]) // 2
    grad = torch.empty((signals, rows, length), dtype=x.dtype, device=x.device)
    grid = (signals * rows, triton.cdiv(length, BLOCK_S))
    _stft_loss_overlap_add_kernel[grid](
        frame_grad[:, left:], grad, length, n_frames, hop, offset0, window.shape[0], n_fft,
        triton.cdiv(window.shape[0], hop) + 1, BLOCK_S=BLOCK_S, num_warps=4, num_stages=2,
    )  # fmt: skip
    return grad


def _signal_grads(spec_grad, basis, x, n_fft, hop, window, signals):
    """Backward steps 2 and 3: spectrum gradients -> frame-sample gradients -> signal gradients."""
    rows, length, n_frames, offset0 = _geometry(x, n_fft, hop, window)
    win_length = window.shape[0]
    k_pad, f_pad = basis.shape[1], basis.shape[2]
    total = signals * rows * n_frames
    frame_grad = torch.empty((total, k_pad), dtype=torch.float32, device=x.device)
    grid = (triton.cdiv(total, BLOCK_M), triton.cdiv(k_pad, BLOCK_N))
    _stft_loss_frame_grad_kernel[grid](
        spec_grad, basis, frame_grad, total, k_pad, f_pad,
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_F=BLOCK_R, PRECISION=PRECISION,
        num_warps=NUM_WARPS, num_stages=NUM_STAGES,
    )  # fmt: skip
    grad = torch.empty((signals, rows, length), dtype=x.dtype, device=x.device)
    grid = (signals * rows, triton.cdiv(length, BLOCK_S))
    _stft_loss_overlap_add_kernel[grid](
        frame_grad, grad, length, n_frames, hop, offset0, win_length, k_pad, triton.cdiv(win_length, hop) + 1,
        BLOCK_S=BLOCK_S, num_warps=4, num_stages=2,
    )  # fmt: skip
    return grad


def stft_loss_backward(
    grad_sums: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    n_fft: int,
    hop: int,
    window: torch.Tensor,
    eps: float,
    grad_target: bool,
) -> torch.Tensor:
    """Gradients of ``grad_sums . sums`` for x (and y when ``grad_target``): (1 or 2, R, T) in x's dtype."""
    rows, length, n_frames, offset0 = _geometry(x, n_fft, hop, window)
    basis = dft_basis(window, n_fft)
    f_pad = basis.shape[2]
    total = rows * n_frames
    signals = 2 if grad_target else 1
    grad_sums = grad_sums.float().contiguous()
    spec_grad = torch.empty((signals * total, 2 * f_pad), dtype=torch.float32, device=x.device)
    grid = (triton.cdiv(total, BLOCK_M), f_pad // BLOCK_F)
    _stft_loss_spectrum_grad_kernel[grid](
        x, y, basis, grad_sums, spec_grad, spec_grad[total:] if grad_target else spec_grad, total, length,
        n_frames, hop, offset0, window.shape[0], f_pad, packed_columns(n_fft), float(eps), *x.stride(), *y.stride(),
        GRAD_TARGET=grad_target, HAS_NYQUIST=n_fft % 2 == 0, BLOCK_M=BLOCK_M, BLOCK_F=BLOCK_F, BLOCK_K=BLOCK_K, PRECISION=PRECISION,
        num_warps=NUM_WARPS, num_stages=NUM_STAGES,
    )  # fmt: skip
    return _signal_grads(spec_grad, basis, x, n_fft, hop, window, signals)


def mel_block(n_mels: int) -> int | None:
    """The BLOCK_MEL a mel basis of n_mels rows uses, or None where the kernels do not take it."""
    block = max(MIN_BLOCK_MEL, next_power_of_2(n_mels))
    return block if block <= MAX_BLOCK_MEL else None


_MEL_CACHE: dict[tuple, tuple] = {}


def packed_mel_basis(mel_basis: torch.Tensor, n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """fb^T in the packed bin layout, (F_pad, BLOCK_MEL) fp32 zero-padded, and the Nyquist column (BLOCK_MEL,),
    zero for an odd n_fft (no Nyquist bin: fb^T then holds every one of its n_fft // 2 + 1 columns)."""
    return _cached(_MEL_CACHE, mel_basis, n_fft, lambda: _build_packed_mel_basis(mel_basis, n_fft))


def _build_packed_mel_basis(mel_basis: torch.Tensor, n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    n_mels = mel_basis.shape[0]
    block = mel_block(n_mels)
    half = packed_columns(n_fft)
    f_pad = triton.cdiv(half, BLOCK_F) * BLOCK_F
    fbt = torch.zeros((f_pad, block), dtype=torch.float32, device=mel_basis.device)
    fbt[:half, :n_mels] = mel_basis[:, :half].t().float()
    nyquist = torch.zeros((block,), dtype=torch.float32, device=mel_basis.device)
    if n_fft % 2 == 0:
        nyquist[:n_mels] = mel_basis[:, half].float()
    return fbt, nyquist


def stft_mel_forward(
    x: torch.Tensor, y: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, eps: float, mel_basis: torch.Tensor
) -> torch.Tensor:
    """(2, R, frames, n_mels) fp32 mel magnitudes of x and y; x, y fp32 (R, T)."""
    rows, length, n_frames, offset0 = _geometry(x, n_fft, hop, window)
    basis = dft_basis(window, n_fft)
    fbt, nyquist = packed_mel_basis(mel_basis, n_fft)
    n_mels = mel_basis.shape[0]
    total = rows * n_frames
    mel = torch.empty((2, rows, n_frames, n_mels), dtype=torch.float32, device=x.device)
    _stft_mel_forward_kernel[(triton.cdiv(total, MEL_BLOCK_M),)](
        x, y, basis, fbt, nyquist, mel, total, length, n_frames, hop, offset0, window.shape[0], basis.shape[2],
        n_mels, float(eps), *x.stride(), *y.stride(),
        BLOCK_M=MEL_BLOCK_M, BLOCK_F=BLOCK_F, BLOCK_K=BLOCK_K, BLOCK_MEL=fbt.shape[1], PRECISION=PRECISION,
        num_warps=MEL_NUM_WARPS, num_stages=NUM_STAGES,
    )  # fmt: skip
    return mel


def stft_mel_backward(
    grad_mel: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    n_fft: int,
    hop: int,
    window: torch.Tensor,
    eps: float,
    mel_basis: torch.Tensor,
    grad_target: bool,
) -> torch.Tensor:
    """Gradients of ``sum(grad_mel * mel)`` for x (and y when ``grad_target``): (1 or 2, R, T) fp32."""
    rows, length, n_frames, offset0 = _geometry(x, n_fft, hop, window)
    basis = dft_basis(window, n_fft)
    fbt, nyquist = packed_mel_basis(mel_basis, n_fft)
    f_pad = basis.shape[2]
    total = rows * n_frames
    signals = 2 if grad_target else 1
    grad_mel = grad_mel.float().contiguous()
    spec_grad = torch.empty((signals * total, 2 * f_pad), dtype=torch.float32, device=x.device)
    block_m, block_f = MEL_GRAD_TILES[fbt.shape[1]]
    grid = (triton.cdiv(total, block_m), f_pad // block_f)
    _stft_mel_spectrum_grad_kernel[grid](
        x, y, basis, fbt, nyquist, grad_mel, spec_grad, spec_grad[total:] if grad_target else spec_grad, total,
        length, n_frames, hop, offset0, window.shape[0], f_pad, packed_columns(n_fft), mel_basis.shape[0], float(eps),
        *x.stride(), *y.stride(),
        GRAD_TARGET=grad_target, HAS_NYQUIST=n_fft % 2 == 0, BLOCK_M=block_m, BLOCK_F=block_f, BLOCK_K=BLOCK_K, BLOCK_MEL=fbt.shape[1],
        PRECISION=PRECISION, num_warps=MEL_GRAD_NUM_WARPS, num_stages=NUM_STAGES,
    )  # fmt: skip
    return _signal_grads(spec_grad, basis, x, n_fft, hop, window, signals)


def aot_specs() -> list[KernelSpec]:
    """Every configuration the launchers above can use."""
    specs = []
    tiles = {"BLOCK_M": BLOCK_M, "BLOCK_F": BLOCK_F, "BLOCK_K": BLOCK_K, "PRECISION": PRECISION}
    geometry = {
        "total_frames": "i32", "length": "i32", "n_frames": "i32", "hop": "i32", "offset0": "i32",
        "win_length": "i32", "f_pad": "i32", "half_bins": "i32", "eps": "fp32",
        "stride_xr": "i32", "stride_xt": "i32", "stride_yr": "i32", "stride_yt": "i32",
    }  # fmt: skip
    # HAS_NYQUIST: an even n_fft (True) or an odd one (False).
    for type_name in TRITON_DTYPE_NAMES.values():
        signals = {"x_ptr": f"*{type_name}", "y_ptr": f"*{type_name}", "basis_ptr": "*fp32"}
        for has_nyquist in (True, False):
            constexprs = {"HAS_NYQUIST": has_nyquist, **tiles}
            forward = {**signals, "partial_ptr": "*fp32", **geometry, **{k: "constexpr" for k in constexprs}}
            label = f"{type_name} nyquist={int(has_nyquist)}"
            specs.append(KernelSpec(_stft_loss_forward_kernel, forward, constexprs, NUM_WARPS, NUM_STAGES, label))
            for grad_target in (False, True):
                constexprs = {"GRAD_TARGET": grad_target, "HAS_NYQUIST": has_nyquist, **tiles}
                signature = {
                    **signals,
                    "grad_sums_ptr": "*fp32",
                    "spec_grad_ptr": "*fp32",
                    "target_grad_ptr": "*fp32",
                    **geometry,
                }
                signature = {**signature, **{k: "constexpr" for k in constexprs}}
                label = f"{type_name} grad_target={int(grad_target)} nyquist={int(has_nyquist)}"
                specs.append(
                    KernelSpec(_stft_loss_spectrum_grad_kernel, signature, constexprs, NUM_WARPS, NUM_STAGES, label)
                )
        signature = {"frame_grad_ptr": "*fp32", "grad_ptr": f"*{type_name}", "length": "i32", "n_frames": "i32",
                     "hop": "i32", "offset0": "i32", "win_length": "i32", "k_pad": "i32", "max_cover": "i32",
                     "BLOCK_S": "constexpr"}  # fmt: skip
        specs.append(KernelSpec(_stft_loss_overlap_add_kernel, signature, {"BLOCK_S": BLOCK_S}, 4, 2, type_name))
    constexprs = {"BLOCK_M": BLOCK_M, "BLOCK_N": BLOCK_N, "BLOCK_F": BLOCK_R, "PRECISION": PRECISION}
    signature = {"spec_grad_ptr": "*fp32", "basis_ptr": "*fp32", "frame_grad_ptr": "*fp32", "total_rows": "i32",
                 "k_pad": "i32", "f_pad": "i32", **{k: "constexpr" for k in constexprs}}  # fmt: skip
    specs.append(KernelSpec(_stft_loss_frame_grad_kernel, signature, constexprs, NUM_WARPS, NUM_STAGES, "fp32"))
    # The cuFFT route's pre/post kernels.
    fft_tiles = {"BLOCK_M": FFT_BLOCK_M, "BLOCK_N": FFT_BLOCK_N}
    for type_name in TRITON_DTYPE_NAMES.values():
        signature = {"x_ptr": f"*{type_name}", "y_ptr": f"*{type_name}", "window_ptr": "*fp32", "frames_ptr": "*fp32",
                     "total_frames": "i32", "length": "i32", "n_frames": "i32", "hop": "i32", "n_fft": "i32",
                     "stride_xr": "i32", "stride_xt": "i32", "stride_yr": "i32", "stride_yt": "i32",
                     **{k: "constexpr" for k in fft_tiles}}  # fmt: skip
        specs.append(KernelSpec(_stft_frames_kernel, signature, fft_tiles, 4, 2, type_name))
    sum_tiles = {"BLOCK_M": FFT_BLOCK_M, "BLOCK_F": FFT_BLOCK_N}
    signature = {"spec_ptr": "*fp32", "partial_ptr": "*fp32", "total_frames": "i32", "n_bins": "i32", "eps": "fp32",
                 **{k: "constexpr" for k in sum_tiles}}  # fmt: skip
    specs.append(KernelSpec(_stft_fft_sums_kernel, signature, sum_tiles, 4, 2, "fp32"))
    for grad_target in (False, True):
        constexprs = {"GRAD_TARGET": grad_target, "BLOCK_M": FFT_GRAD_BLOCK_M, "BLOCK_F": FFT_BLOCK_N}
        signature = {"spec_ptr": "*fp32", "grad_sums_ptr": "*fp32", "spec_grad_ptr": "*fp32", "total_frames": "i32",
                     "n_bins": "i32", "n_fft": "i32", "eps": "fp32", **{k: "constexpr" for k in constexprs}}  # fmt: skip
        label = f"fp32 grad_target={int(grad_target)}"
        specs.append(KernelSpec(_stft_fft_spectrum_grad_kernel, signature, constexprs, 8, 2, label))
    # Mel bins: fp32 signals only (the op casts), one configuration per BLOCK_MEL.
    signals = {"x_ptr": "*fp32", "y_ptr": "*fp32", "basis_ptr": "*fp32", "fbt_ptr": "*fp32", "fb_nyquist_ptr": "*fp32"}
    mel_geometry = {k: v for k, v in geometry.items() if k != "half_bins"}
    mel_geometry = {**{k: v for k, v in mel_geometry.items() if not k.startswith(("eps", "stride"))},
                    "n_mels": "i32", "eps": "fp32", **{k: v for k, v in geometry.items() if k.startswith("stride")}}  # fmt: skip
    block_mels = [MIN_BLOCK_MEL << i for i in range((MAX_BLOCK_MEL // MIN_BLOCK_MEL).bit_length())]
    for block_mel in block_mels:
        constexprs = {"BLOCK_M": MEL_BLOCK_M, "BLOCK_F": BLOCK_F, "BLOCK_K": BLOCK_K, "BLOCK_MEL": block_mel,
                      "PRECISION": PRECISION}  # fmt: skip
        signature = {**signals, "mel_ptr": "*fp32", **mel_geometry, **{k: "constexpr" for k in constexprs}}
        label = f"fp32 BLOCK_MEL={block_mel}"
        specs.append(KernelSpec(_stft_mel_forward_kernel, signature, constexprs, MEL_NUM_WARPS, NUM_STAGES, label))
        for grad_target, has_nyquist in ((g, n) for g in (False, True) for n in (True, False)):
            constexprs = {"GRAD_TARGET": grad_target, "HAS_NYQUIST": has_nyquist, **tiles, "BLOCK_MEL": block_mel}
            constexprs["BLOCK_M"], constexprs["BLOCK_F"] = MEL_GRAD_TILES[block_mel]
            constexprs["PRECISION"] = constexprs.pop("PRECISION")  # the kernel's parameter order
            signature = {**signals, "grad_mel_ptr": "*fp32", "spec_grad_ptr": "*fp32", "target_grad_ptr": "*fp32",
                         "total_frames": "i32", "length": "i32", "n_frames": "i32", "hop": "i32", "offset0": "i32",
                         "win_length": "i32", "f_pad": "i32", "half_bins": "i32", "n_mels": "i32", "eps": "fp32",
                         "stride_xr": "i32", "stride_xt": "i32", "stride_yr": "i32", "stride_yt": "i32",
                         **{k: "constexpr" for k in constexprs}}  # fmt: skip
            label = f"fp32 BLOCK_MEL={block_mel} grad_target={int(grad_target)} nyquist={int(has_nyquist)}"
            specs.append(
                KernelSpec(_stft_mel_spectrum_grad_kernel, signature, constexprs, MEL_GRAD_NUM_WARPS, NUM_STAGES, label)
            )
    return specs
