"""Dilated residual step (MelGAN residual stack, HiFi-GAN ResBlock1/ResBlock2): forward and backward.

Four kernels, all implicit GEMMs (``tl.dot`` over taps x input-channel blocks, fp32 accumulation)
that read their inputs straight from the (B, C, T) tensors; padding is index arithmetic
(reflection folds the index, zeros mask the load), never a padded copy:

* ``_fused_1x1_forward_kernel`` — MelGAN's whole step for one time tile and *all* channels:
  leaky on load → dilated conv → bias → leaky → 1x1 conv accumulated straight into the output
  tile (mid channels streamed in blocks of BLOCK_M, the intermediate never leaves the chip) →
  1x1 shortcut of x accumulated into the same tile → biases → one write.
* ``_conv_kernel`` — one dilated conv with options: leaky on load, bias, leaky on output, a gate
  by LeakyReLU's derivative at another tensor, a residual add, and the *adjoint* mode (the
  transposed conv, for input gradients; reflection's adjoint folds the mirrored samples back by
  loading the up-to-three output positions that read each input sample — no atomics). HiFi-GAN's
  ResBlock2 step is one launch of it; the backward is made of it and ``_weight_grad_kernel``.
* ``_fused_two_conv_forward_kernel`` — HiFi-GAN ResBlock1's whole step, one launch, one program per
  (time tile, example) and all channels. The k-tap second conv reads leaky(z) at BLOCK_T + k - 1
  positions, and Triton cannot shift register tiles, so the program first computes
  h = leaky(conv_d(leaky(x)) + b1) over its tile plus a halo (the main BLOCK_T-wide tile and
  16-column halo tiles: one for k <= 17, none for k = 1), 32 channels at a time, zeroed outside [0, T) (the second
  conv's zero padding, same or causal), into its own scratch rows in global memory (x's dtype: what
  the second conv's dot rounds its operand to anyway); after ``tl.debug_barrier()`` it runs the
  second conv as an implicit GEMM over shifted BLOCK_T-wide windows of those rows, 32 output
  channels at a time, + b2 + residual, one write. Cost: the halo recomputes 16 / BLOCK_T of the
  first conv (BLOCK_T = 128 / 64 / 32: 12.5 / 25 / 50 %, the widest tile that still gives
  ``TWO_CONV_TARGET_PROGRAMS`` programs; fp32 stops at 64), i.e. half that of the step's FLOPs,
  instead of z's write and read through HBM; scratch is C x (BLOCK_T + 16) elements per program
  (C = 256: 72 KiB fp16 at BLOCK_T = 128, 80 KiB fp32 at 64), written and read back by the same
  program at once so it is served from L1/L2 (the ~132-264 resident programs' rows, <= ~20 MiB
  at C = 256 by arithmetic, fit the H100's 50 MiB L2). The allocation is one region per program,
  (1 + 16 / BLOCK_T) x z's size. Every forward step with a second conv but no fused 1x1 kernel takes
  it: ResBlock1, a 1x1 second conv without shortcut, MelGAN past ``MAX_FUSED_CHANNELS`` (its 1x1
  shortcut first as a ``_conv_kernel`` launch, passed in as the residual).
* ``_weight_grad_kernel`` — dW[o, i, k] = sum_{b,t} G[b, o, t] IN[b, i, idx(t + k d - left)]
  (leaky on load), and the bias gradient, over a split of the (batch x time) tiles; partial sums go
  to an fp32 buffer that is summed over the splits afterwards (deterministic, no atomics).

Backward recomputes the dilated conv's output ``z`` (one extra conv, a third of the step's forward
FLOPs for ResBlock1/MelGAN) rather than saving it: the forward keeps nothing but its inputs, so a
training step's activation memory is one tensor per step, as in inference.

Dots: fp16/bf16 operands on tensor cores with fp32 accumulation. fp32 tensors use 3xTF32
(``input_precision="tf32x3"``: each operand split into a TF32 high and low part, products good to
~2**-21 relative, within RESIDUAL_BLOCK's fp32 tolerance; plain TF32 at ~2**-11 would not be), which
also keeps the fp32 configurations on tensor cores and free of spills. The Triton interpreter
multiplies bf16 dots wrongly, so under the interpreter bf16 operands are dotted in fp32
(``HALF_DOT=False``); the interpreter computes fp32 dots in full fp32.

Tiles are fixed per kernel (listed in ``aot_specs``) and not yet tuned on a GPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from fastgan.kernels._launch import TRITON_DTYPE_NAMES, KernelSpec, contiguous, half_precision_dots, next_power_of_2

from fastgan.references.residual_block import pad_amounts

ZEROS, REFLECT = 0, 1
PAD_CODES = {"zeros": ZEROS, "reflect": REFLECT}

# _conv_kernel and _weight_grad_kernel: one tile configuration.
CONV_BLOCK_CO, CONV_BLOCK_CI, CONV_BLOCK_T, CONV_STAGES = 32, 32, 64, 3
# Warps as _conv_warps: at 4, the fp32 (3xTF32) weight gradient spilled 28-52 B in the launched specialisations.
WGRAD_BLOCK_O, WGRAD_BLOCK_I, WGRAD_BLOCK_T, WGRAD_STAGES = 32, 32, 64, 3
WGRAD_TARGET_PROGRAMS = 528  # ~4 waves of 132 SMs
WGRAD_MAX_SPLITS = 64
# _fused_1x1_forward_kernel: every channel of the output tile in one program.
FUSED_BLOCK_M = FUSED_BLOCK_CI = 32
FUSED_STAGES = 2
FUSED_BLOCK_CS = (32, 64, 128, 256)  # more channels: the separate conv launches
MAX_FUSED_CHANNELS = FUSED_BLOCK_CS[-1]
# _fused_two_conv_forward_kernel (ResBlock1): channel blocks of 32, the halo in chunks of 16 columns,
# the widest time tile that still gives TWO_CONV_TARGET_PROGRAMS programs (else the narrowest). fp32
# stops at 64: at 128 its 3xTF32 tiles take all 255 registers.
TWO_CONV_BLOCK_C = TWO_CONV_BLOCK_CI = 32
TWO_CONV_HALO_T = 16
TWO_CONV_BLOCK_TS = {torch.float32: (64, 32), torch.float16: (128, 64, 32), torch.bfloat16: (128, 64, 32)}
TWO_CONV_TARGET_PROGRAMS = 264  # two waves of 132 SMs

# The _conv_kernel modes the launchers use: (ACT_IN, HAS_BIAS, ACT_OUT, GATE, RESIDUAL, ADJOINT).
# The padding (zeros or reflect) is a runtime argument: it only changes index arithmetic.
CONV_MODES = {
    "act_conv_res": (True, True, False, False, True, False),  # ResBlock2 step
    "conv": (False, True, False, False, False, False),  # 1x1 shortcut (and its adjoint)
    "act_conv": (True, True, False, False, False, False),  # z, recomputed in backward
    "adj_gate": (False, False, False, True, False, True),  # grad z from grad out
    "adj_gate_res": (False, False, False, True, True, True),  # grad x
}


@triton.jit
def _leaky(v, slope):
    return tl.where(v > 0, v, v * slope)


@triton.jit
def _reflect(position, length):
    """Fold a position in (-length, 2 * length - 1) into [0, length) without repeating the edge."""
    last = length - 1
    position = tl.where(position < 0, -position, position)
    return tl.where(position > last, 2 * last - position, position)


@triton.jit
def _mma(acc, a, b, HALF_DOT: tl.constexpr, half_ptr):
    if HALF_DOT:
        dt = half_ptr.dtype.element_ty
        return tl.dot(a.to(dt), b.to(dt), acc)
    else:
        return tl.dot(a, b, acc, input_precision="tf32x3")


@triton.jit
def _conv_tile(
    acc, in_ptr, w_ptr, in_base, stride_ic, stride_it, stride_wo, stride_wi, stride_wk,
    co, co_mask, t, t_mask, c_in, length, taps, dilation, left, slope, pad,
    ADJOINT: tl.constexpr, ACT_IN: tl.constexpr, HALF_DOT: tl.constexpr, BLOCK_CI: tl.constexpr,
):  # fmt: skip
    """acc[co, t] += sum_k sum_ci w[co, ci, k] * in_k[ci, t] (in_k: the padded, shifted, maybe leaky input)."""
    reflect = pad == 1
    for k in range(taps):
        shift = k * dilation - left
        if ADJOINT:
            # Input sample t collects every output position that read it through tap k: directly,
            # and (reflection) through the left mirror (-t) and the right mirror (2 (T - 1) - t).
            p0 = t - shift
            ok0 = t_mask & (p0 >= 0) & (p0 < length)
            p1 = -t - shift
            ok1 = t_mask & reflect & (t > 0) & (p1 >= 0) & (p1 < length)
            p2 = 2 * (length - 1) - t - shift
            ok2 = t_mask & reflect & (t < length - 1) & (p2 >= 0) & (p2 < length)
        else:
            p0 = t + shift
            ok0 = t_mask & (reflect | ((p0 >= 0) & (p0 < length)))
            p0 = tl.where(reflect, _reflect(p0, length), p0)
        for c0 in range(0, c_in, BLOCK_CI):
            ci = c0 + tl.arange(0, BLOCK_CI)
            ci_mask = ci < c_in
            rows = in_ptr + in_base + ci[:, None].to(tl.int64) * stride_ic
            v = tl.load(rows + p0[None, :].to(tl.int64) * stride_it, mask=ci_mask[:, None] & ok0[None, :], other=0.0)
            v = v.to(tl.float32)
            if ADJOINT:
                v1 = tl.load(
                    rows + p1[None, :].to(tl.int64) * stride_it, mask=ci_mask[:, None] & ok1[None, :], other=0.0
                )
                v2 = tl.load(
                    rows + p2[None, :].to(tl.int64) * stride_it, mask=ci_mask[:, None] & ok2[None, :], other=0.0
                )
                v += v1.to(tl.float32) + v2.to(tl.float32)
            if ACT_IN:
                v = _leaky(v, slope)
            w = tl.load(
                w_ptr + co[:, None] * stride_wo + ci[None, :] * stride_wi + k * stride_wk,
                mask=co_mask[:, None] & ci_mask[None, :],
                other=0.0,
            ).to(tl.float32)
            acc = _mma(acc, w, v, HALF_DOT, in_ptr)
    return acc


@triton.jit
def _conv_kernel(
    in_ptr, w_ptr, bias_ptr, aux_ptr, res_ptr, out_ptr,
    slope, c_in, c_out, length, taps, dilation, left, pad,
    stride_ib, stride_ic, stride_it, stride_wo, stride_wi, stride_wk,
    stride_ab, stride_ac, stride_at, stride_rb, stride_rc, stride_rt,
    ADJOINT: tl.constexpr, ACT_IN: tl.constexpr, HAS_BIAS: tl.constexpr,
    ACT_OUT: tl.constexpr, GATE: tl.constexpr, RESIDUAL: tl.constexpr, HALF_DOT: tl.constexpr,
    BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr, BLOCK_T: tl.constexpr,
):  # fmt: skip
    """out[b, co, t] = epilogue(sum_k sum_ci w[co, ci, k] in_k[b, ci, t] + bias[co]).

    Epilogue in order: leaky (ACT_OUT); times leaky'(aux[b, co, t]) (GATE); + res[b, co, t] (RESIDUAL).
    """
    slope = tl.cast(slope, tl.float32)
    pid_bt = tl.program_id(0)
    pid_c = tl.program_id(1)
    n_t = tl.cdiv(length, BLOCK_T)
    b = (pid_bt // n_t).to(tl.int64)
    t = (pid_bt % n_t) * BLOCK_T + tl.arange(0, BLOCK_T)
    t_mask = t < length
    co = pid_c * BLOCK_CO + tl.arange(0, BLOCK_CO)
    co_mask = co < c_out
    acc = tl.zeros((BLOCK_CO, BLOCK_T), dtype=tl.float32)
    acc = _conv_tile(
        acc, in_ptr, w_ptr, b * stride_ib, stride_ic, stride_it, stride_wo, stride_wi, stride_wk,
        co, co_mask, t, t_mask, c_in, length, taps, dilation, left, slope, pad,
        ADJOINT, ACT_IN, HALF_DOT, BLOCK_CI,
    )  # fmt: skip
    mask = co_mask[:, None] & t_mask[None, :]
    if HAS_BIAS:
        acc += tl.load(bias_ptr + co, mask=co_mask, other=0.0).to(tl.float32)[:, None]
    if ACT_OUT:
        acc = _leaky(acc, slope)
    if GATE:
        aux_offsets = b * stride_ab + co[:, None].to(tl.int64) * stride_ac + t[None, :].to(tl.int64) * stride_at
        aux = tl.load(aux_ptr + aux_offsets, mask=mask, other=0.0).to(tl.float32)
        acc = tl.where(aux > 0, acc, acc * slope)
    if RESIDUAL:
        res_offsets = b * stride_rb + co[:, None].to(tl.int64) * stride_rc + t[None, :].to(tl.int64) * stride_rt
        acc += tl.load(res_ptr + res_offsets, mask=mask, other=0.0).to(tl.float32)
    out_offsets = (b * c_out + co[:, None]) * length + t[None, :]
    tl.store(out_ptr + out_offsets, acc.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _fused_1x1_forward_kernel(
    x_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, ws_ptr, bs_ptr, out_ptr,
    slope, channels, length, taps, dilation, left, pad,
    stride_xb, stride_xc, stride_xt, stride_w1o, stride_w1i, stride_w1k,
    stride_w2o, stride_w2i, stride_wso, stride_wsi,
    HALF_DOT: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_CI: tl.constexpr, BLOCK_T: tl.constexpr,
):  # fmt: skip
    """MelGAN: out = w2 @ leaky(conv_d(leaky(x)) + b1) + b2 + ws @ x + bs, all channels of one time tile."""
    slope = tl.cast(slope, tl.float32)
    pid = tl.program_id(0)
    n_t = tl.cdiv(length, BLOCK_T)
    b = (pid // n_t).to(tl.int64)
    t = (pid % n_t) * BLOCK_T + tl.arange(0, BLOCK_T)
    t_mask = t < length
    co = tl.arange(0, BLOCK_C)
    co_mask = co < channels
    x_base = b * stride_xb
    out = tl.zeros((BLOCK_C, BLOCK_T), dtype=tl.float32)
    for m0 in range(0, channels, BLOCK_M):
        m = m0 + tl.arange(0, BLOCK_M)
        m_mask = m < channels
        z = tl.zeros((BLOCK_M, BLOCK_T), dtype=tl.float32)
        z = _conv_tile(
            z, x_ptr, w1_ptr, x_base, stride_xc, stride_xt, stride_w1o, stride_w1i, stride_w1k,
            m, m_mask, t, t_mask, channels, length, taps, dilation, left, slope, pad,
            False, True, HALF_DOT, BLOCK_CI,
        )  # fmt: skip
        z += tl.load(b1_ptr + m, mask=m_mask, other=0.0).to(tl.float32)[:, None]
        h = _leaky(z, slope)  # rows past `channels` are leaky(0) = 0
        w2 = tl.load(
            w2_ptr + co[:, None] * stride_w2o + m[None, :] * stride_w2i,
            mask=co_mask[:, None] & m_mask[None, :],
            other=0.0,
        ).to(tl.float32)
        out = _mma(out, w2, h, HALF_DOT, x_ptr)
    # The 1x1 shortcut: ws @ x on the same tile.
    for c0 in range(0, channels, BLOCK_CI):
        ci = c0 + tl.arange(0, BLOCK_CI)
        ci_mask = ci < channels
        x_offsets = x_base + ci[:, None].to(tl.int64) * stride_xc + t[None, :].to(tl.int64) * stride_xt
        xs = tl.load(x_ptr + x_offsets, mask=ci_mask[:, None] & t_mask[None, :], other=0.0).to(tl.float32)
        ws = tl.load(
            ws_ptr + co[:, None] * stride_wso + ci[None, :] * stride_wsi,
            mask=co_mask[:, None] & ci_mask[None, :],
            other=0.0,
        ).to(tl.float32)
        out = _mma(out, ws, xs, HALF_DOT, x_ptr)
    bias = tl.load(b2_ptr + co, mask=co_mask, other=0.0).to(tl.float32)
    bias += tl.load(bs_ptr + co, mask=co_mask, other=0.0).to(tl.float32)
    out += bias[:, None]
    out_offsets = (b * channels + co[:, None]) * length + t[None, :]
    tl.store(out_ptr + out_offsets, out.to(out_ptr.dtype.element_ty), mask=co_mask[:, None] & t_mask[None, :])


@triton.jit
def _leaky_z_to_scratch(
    rows, cols, first, x_ptr, w1_ptr, x_base, stride_xc, stride_xt, stride_w1o, stride_w1i, stride_w1k,
    m, m_mask, bias1, channels, length, taps1, dilation, left1, slope, pad, HALF_DOT: tl.constexpr,
    BLOCK_CI: tl.constexpr,
):  # fmt: skip
    """Scratch columns ``cols`` (signal positions first + cols) of rows m: leaky(conv_d(leaky(x)) + b1), zero
    outside [0, length) -- the second conv's zero padding."""
    s = first + cols
    s_ok = (s >= 0) & (s < length)
    z = tl.zeros((m.shape[0], cols.shape[0]), dtype=tl.float32)
    z = _conv_tile(
        z, x_ptr, w1_ptr, x_base, stride_xc, stride_xt, stride_w1o, stride_w1i, stride_w1k,
        m, m_mask, s, s_ok, channels, length, taps1, dilation, left1, slope, pad,
        False, True, HALF_DOT, BLOCK_CI,
    )  # fmt: skip
    h = tl.where(s_ok[None, :], _leaky(z + bias1[:, None], slope), 0.0)
    tl.store(rows + cols[None, :], h.to(rows.dtype.element_ty), mask=m_mask[:, None])


@triton.jit
def _fused_two_conv_forward_kernel(
    x_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, res_ptr, scratch_ptr, out_ptr,
    slope, channels, length, taps1, dilation, left1, pad, taps2, left2, halo_chunks,
    stride_xb, stride_xc, stride_xt, stride_w1o, stride_w1i, stride_w1k,
    stride_w2o, stride_w2i, stride_w2k, stride_rb, stride_rc, stride_rt,
    HALF_DOT: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_CI: tl.constexpr, BLOCK_T: tl.constexpr, HALO_T: tl.constexpr,
):  # fmt: skip
    """ResBlock1: out = conv(leaky(conv_d(leaky(x)) + b1), w2) + b2 + res, all channels of one time tile.

    1. h = leaky(z) at the positions t0 - left2 + [0, width) the second conv reads (width =
       BLOCK_T + halo_chunks * HALO_T >= BLOCK_T + taps2 - 1), zero outside [0, length) (the second
       conv's zero padding), for every channel, into this program's scratch[pid] (channels x width).
    2. after a barrier, the second conv reads BLOCK_T-wide column windows of the scratch shifted by
       each tap: + b2 + res, one write of out.
    """
    slope = tl.cast(slope, tl.float32)
    pid = tl.program_id(0)
    n_t = tl.cdiv(length, BLOCK_T)
    b = (pid // n_t).to(tl.int64)
    t0 = (pid % n_t) * BLOCK_T
    width = BLOCK_T + halo_chunks * HALO_T
    scratch_base = pid.to(tl.int64) * channels * width
    x_base = b * stride_xb
    col = tl.arange(0, BLOCK_T)
    halo_col = tl.arange(0, HALO_T)
    for m0 in range(0, channels, BLOCK_C):
        m = m0 + tl.arange(0, BLOCK_C)
        m_mask = m < channels
        bias1 = tl.load(b1_ptr + m, mask=m_mask, other=0.0).to(tl.float32)
        rows = scratch_ptr + scratch_base + m[:, None].to(tl.int64) * width
        # The main tile: scratch columns [0, BLOCK_T).
        _leaky_z_to_scratch(
            rows, col, t0 - left2, x_ptr, w1_ptr, x_base, stride_xc, stride_xt, stride_w1o, stride_w1i, stride_w1k,
            m, m_mask, bias1, channels, length, taps1, dilation, left1, slope, pad, HALF_DOT, BLOCK_CI,
        )  # fmt: skip
        # The halo: columns [BLOCK_T, width), HALO_T at a time (one chunk for taps2 <= HALO_T + 1).
        for chunk in range(halo_chunks):
            _leaky_z_to_scratch(
                rows, BLOCK_T + chunk * HALO_T + halo_col, t0 - left2, x_ptr, w1_ptr, x_base, stride_xc, stride_xt,
                stride_w1o, stride_w1i, stride_w1k, m, m_mask, bias1, channels, length, taps1, dilation, left1,
                slope, pad, HALF_DOT, BLOCK_CI,
            )  # fmt: skip
    tl.debug_barrier()  # every thread's scratch writes are visible to the whole program
    t = t0 + col
    t_mask = t < length
    for c0 in range(0, channels, BLOCK_C):
        co = c0 + tl.arange(0, BLOCK_C)
        co_mask = co < channels
        acc = tl.zeros((BLOCK_C, BLOCK_T), dtype=tl.float32)
        # Output column j reads scratch columns j + k (k < taps2 <= width - BLOCK_T + 1): always in range.
        acc = _conv_tile(
            acc, scratch_ptr, w2_ptr, scratch_base, width, 1, stride_w2o, stride_w2i, stride_w2k,
            co, co_mask, col, col < width, channels, width, taps2, 1, 0, slope, 0,
            False, False, HALF_DOT, BLOCK_CI,
        )  # fmt: skip
        acc += tl.load(b2_ptr + co, mask=co_mask, other=0.0).to(tl.float32)[:, None]
        mask = co_mask[:, None] & t_mask[None, :]
        res_offsets = b * stride_rb + co[:, None].to(tl.int64) * stride_rc + t[None, :].to(tl.int64) * stride_rt
        acc += tl.load(res_ptr + res_offsets, mask=mask, other=0.0).to(tl.float32)
        out_offsets = (b * channels + co[:, None]) * length + t[None, :]
        tl.store(out_ptr + out_offsets, acc.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _weight_grad_kernel(
    g_ptr, in_ptr, part_ptr, bias_part_ptr,
    slope, c_out, c_in, length, batch, taps, dilation, left, pad, tiles_per_split,
    stride_gb, stride_gc, stride_gt, stride_ib, stride_ic, stride_it,
    ACT_IN: tl.constexpr, HALF_DOT: tl.constexpr,
    BLOCK_O: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_T: tl.constexpr,
):  # fmt: skip
    """part[s, o, i, k] = sum over split s's (b, t) tiles of g[b, o, t] * in_k[b, i, t]; bias_part[s, o] = sum g."""
    slope = tl.cast(slope, tl.float32)
    pid_oi = tl.program_id(0)
    k = tl.program_id(1)
    split = tl.program_id(2)
    n_i = tl.cdiv(c_in, BLOCK_I)
    o = (pid_oi // n_i) * BLOCK_O + tl.arange(0, BLOCK_O)
    i = (pid_oi % n_i) * BLOCK_I + tl.arange(0, BLOCK_I)
    o_mask = o < c_out
    i_mask = i < c_in
    n_t = tl.cdiv(length, BLOCK_T)
    total = batch * n_t
    shift = k * dilation - left
    acc = tl.zeros((BLOCK_O, BLOCK_I), dtype=tl.float32)
    bias_acc = tl.zeros((BLOCK_O,), dtype=tl.float32)
    first = split * tiles_per_split
    last = tl.minimum(first + tiles_per_split, total)
    for j in range(first, last):
        b = (j // n_t).to(tl.int64)
        t = (j % n_t) * BLOCK_T + tl.arange(0, BLOCK_T)
        t_mask = t < length
        g_offsets = b * stride_gb + o[:, None].to(tl.int64) * stride_gc + t[None, :].to(tl.int64) * stride_gt
        g = tl.load(g_ptr + g_offsets, mask=o_mask[:, None] & t_mask[None, :], other=0.0).to(tl.float32)
        p = t + shift
        ok = t_mask & ((pad == 1) | ((p >= 0) & (p < length)))
        p = tl.where(pad == 1, _reflect(p, length), p)
        in_offsets = b * stride_ib + i[:, None].to(tl.int64) * stride_ic + p[None, :].to(tl.int64) * stride_it
        v = tl.load(in_ptr + in_offsets, mask=i_mask[:, None] & ok[None, :], other=0.0).to(tl.float32)
        if ACT_IN:
            v = _leaky(v, slope)
        acc = _mma(acc, g, tl.trans(v), HALF_DOT, g_ptr)
        bias_acc += tl.sum(g, axis=1)
    part_offsets = ((split * c_out + o[:, None]) * c_in + i[None, :]) * taps + k
    tl.store(part_ptr + part_offsets, acc, mask=o_mask[:, None] & i_mask[None, :])
    owner = (pid_oi % n_i == 0) & (k == 0)  # one program per output block writes the bias sums
    tl.store(bias_part_ptr + split * c_out + o, bias_acc, mask=o_mask & owner)


# ----------------------------------------------------------------------------------------------
# Launchers


def _conv_warps(dtype: torch.dtype) -> int:
    return 8 if dtype == torch.float32 else 4  # 3xTF32 dots need twice the registers: spread them


def _conv_stages(dtype: torch.dtype) -> int:
    return 2 if dtype == torch.float32 else CONV_STAGES


def _transposed(weight: torch.Tensor) -> tuple[int, int, int]:
    """Strides that read ``weight`` (C_out, C_in, k) as its transpose (C_in, C_out, k), no copy."""
    return weight.stride(1), weight.stride(0), weight.stride(2)


def _conv(
    inp, weight, bias, *, mode, pad=ZEROS, slope=0.0, dilation=1, left=0, aux=None, res=None, transpose=False,
    out_dtype=None,
):  # fmt: skip
    act_in, has_bias, act_out, gate, residual, adjoint = CONV_MODES[mode]
    assert (bias is not None) == has_bias and (aux is not None) == gate
    assert (res is not None) == residual
    batch, c_in, length = inp.shape
    c_out = weight.shape[1] if transpose else weight.shape[0]
    w_strides = _transposed(weight) if transpose else weight.stride()
    out = torch.empty((batch, c_out, length), dtype=out_dtype or inp.dtype, device=inp.device)
    aux_arg = aux if gate else inp
    res_arg = res if residual else inp
    grid = (batch * triton.cdiv(length, CONV_BLOCK_T), triton.cdiv(c_out, CONV_BLOCK_CO))
    _conv_kernel[grid](
        inp, weight, bias if has_bias else weight, aux_arg, res_arg, out,
        float(slope), c_in, c_out, length, weight.shape[2], dilation, left, pad,
        *inp.stride(), *w_strides, *aux_arg.stride(), *res_arg.stride(),
        ADJOINT=adjoint, ACT_IN=act_in, HAS_BIAS=has_bias, ACT_OUT=act_out, GATE=gate,
        RESIDUAL=residual, HALF_DOT=half_precision_dots(inp),
        BLOCK_CO=CONV_BLOCK_CO, BLOCK_CI=CONV_BLOCK_CI, BLOCK_T=CONV_BLOCK_T, num_warps=_conv_warps(inp.dtype),
        num_stages=_conv_stages(inp.dtype),
    )  # fmt: skip
    return out


def _zero_bias(bias: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return bias if bias is not None else torch.zeros(like.shape[0], dtype=like.dtype, device=like.device)


def _fused_config(channels: int, dtype: torch.dtype) -> tuple[int, int, int]:
    """(BLOCK_C, BLOCK_T, num_warps) of the fused MelGAN kernel for ``channels``."""
    block_c = max(FUSED_BLOCK_CS[0], next_power_of_2(channels))
    fp32 = dtype == torch.float32
    return block_c, 32 if fp32 and block_c >= 256 else 64, 4 if block_c <= 64 and not fp32 else 8


def _two_conv_block_t(batch: int, length: int, dtype: torch.dtype) -> int:
    """BLOCK_T of the fused ResBlock1 kernel: the widest tile (least halo recomputed) with enough programs."""
    for block_t in TWO_CONV_BLOCK_TS[dtype]:
        if batch * triton.cdiv(length, block_t) >= TWO_CONV_TARGET_PROGRAMS:
            return block_t
    return TWO_CONV_BLOCK_TS[dtype][-1]


def leaky_dilated_residual_forward(x, weight1, bias1, weight2, bias2, shortcut_weight, shortcut_bias,
                                   negative_slope, dilation, padding, causal):  # fmt: skip
    """Launch the forward of one step (see fastgan.references.residual_block for the computation)."""
    bias1, bias2, shortcut_bias = contiguous(bias1, bias2, shortcut_bias)  # the kernels index biases by channel
    batch, channels, length = x.shape
    pad = PAD_CODES[padding]
    left = pad_amounts(weight1.shape[2], dilation, causal)[0]
    slope = float(negative_slope)
    if weight2 is not None and weight2.shape[2] == 1 and shortcut_weight is not None and channels <= MAX_FUSED_CHANNELS:
        out = torch.empty((batch, channels, length), dtype=x.dtype, device=x.device)
        block_c, block_t, warps = _fused_config(channels, x.dtype)
        _fused_1x1_forward_kernel[(batch * triton.cdiv(length, block_t),)](
            x, weight1, _zero_bias(bias1, weight1), weight2, _zero_bias(bias2, weight2),
            shortcut_weight, _zero_bias(shortcut_bias, shortcut_weight), out,
            slope, channels, length, weight1.shape[2], dilation, left, pad,
            *x.stride(), *weight1.stride(), weight2.stride(0), weight2.stride(1),
            shortcut_weight.stride(0), shortcut_weight.stride(1),
            HALF_DOT=half_precision_dots(x),
            BLOCK_C=block_c, BLOCK_M=FUSED_BLOCK_M, BLOCK_CI=FUSED_BLOCK_CI, BLOCK_T=block_t, num_warps=warps,
            num_stages=FUSED_STAGES,
        )  # fmt: skip
        return out
    common = {"pad": pad, "slope": slope, "dilation": dilation, "left": left}
    residual = x
    if shortcut_weight is not None:
        residual = _conv(x, shortcut_weight, _zero_bias(shortcut_bias, shortcut_weight), mode="conv")
    if weight2 is None:
        return _conv(x, weight1, _zero_bias(bias1, weight1), mode="act_conv_res", res=residual, **common)
    # ResBlock1 (and any other second conv: a 1x1 one without shortcut, MelGAN past MAX_FUSED_CHANNELS).
    taps2 = weight2.shape[2]
    left2 = pad_amounts(taps2, 1, causal)[0]
    block_t = _two_conv_block_t(batch, length, x.dtype)
    halo_chunks = triton.cdiv(taps2 - 1, TWO_CONV_HALO_T)
    programs = batch * triton.cdiv(length, block_t)
    # Per-program rows of leaky(z), in x's dtype (what the second conv's dot rounds its operand to).
    scratch = torch.empty((programs, channels, block_t + halo_chunks * TWO_CONV_HALO_T), dtype=x.dtype, device=x.device)
    out = torch.empty((batch, channels, length), dtype=x.dtype, device=x.device)
    _fused_two_conv_forward_kernel[(programs,)](
        x, weight1, _zero_bias(bias1, weight1), weight2, _zero_bias(bias2, weight2), residual, scratch, out,
        slope, channels, length, weight1.shape[2], dilation, left, pad, taps2, left2, halo_chunks,
        *x.stride(), *weight1.stride(), *weight2.stride(), *residual.stride(),
        HALF_DOT=half_precision_dots(x),
        BLOCK_C=TWO_CONV_BLOCK_C, BLOCK_CI=TWO_CONV_BLOCK_CI, BLOCK_T=block_t, HALO_T=TWO_CONV_HALO_T,
        num_warps=_conv_warps(x.dtype), num_stages=_conv_stages(x.dtype),
    )  # fmt: skip
    return out


def _weight_grad(grad, inp, taps, *, act, pad=ZEROS, slope=0.0, dilation=1, left=0):
    """(dW (C_out, C_in, taps), db (C_out,)) in fp32."""
    batch, c_out, length = grad.shape
    c_in = inp.shape[1]
    blocks = triton.cdiv(c_out, WGRAD_BLOCK_O) * triton.cdiv(c_in, WGRAD_BLOCK_I)
    tiles = batch * triton.cdiv(length, WGRAD_BLOCK_T)
    splits = max(1, min(tiles, WGRAD_MAX_SPLITS, triton.cdiv(WGRAD_TARGET_PROGRAMS, blocks * taps)))
    tiles_per_split = triton.cdiv(tiles, splits)
    splits = triton.cdiv(tiles, tiles_per_split)
    part = torch.empty((splits, c_out, c_in, taps), dtype=torch.float32, device=grad.device)
    bias_part = torch.empty((splits, c_out), dtype=torch.float32, device=grad.device)
    _weight_grad_kernel[(blocks, taps, splits)](
        grad, inp, part, bias_part,
        float(slope), c_out, c_in, length, batch, taps, dilation, left, pad, tiles_per_split,
        *grad.stride(), *inp.stride(),
        ACT_IN=act, HALF_DOT=half_precision_dots(grad),
        BLOCK_O=WGRAD_BLOCK_O, BLOCK_I=WGRAD_BLOCK_I, BLOCK_T=WGRAD_BLOCK_T, num_warps=_conv_warps(grad.dtype),
        num_stages=WGRAD_STAGES,
    )  # fmt: skip
    return part.sum(0), bias_part.sum(0)


def leaky_dilated_residual_backward(grad_out, x, weight1, bias1, weight2, bias2, shortcut_weight, shortcut_bias,
                                    negative_slope, dilation, padding, causal):  # fmt: skip
    """Gradients for (x, w1, b1, w2, b2, ws, bs), None where the tensor is absent."""
    (bias1,) = contiguous(bias1)  # read by z's recompute, indexed by channel (grad_out and x: by their strides)
    pad = PAD_CODES[padding]
    taps = weight1.shape[2]
    left = pad_amounts(taps, dilation, causal)[0]
    slope = float(negative_slope)
    g = grad_out
    grad_w2 = grad_b2 = None
    if weight2 is not None:
        # Recompute z = conv_d(leaky(x)) + b1 (not saved by the forward).
        z = _conv(x, weight1, _zero_bias(bias1, weight1), mode="act_conv", pad=pad, slope=slope, dilation=dilation,
                  left=left)  # fmt: skip
        taps2 = weight2.shape[2]
        left2 = pad_amounts(taps2, 1, causal)[0]
        grad_z = _conv(g, weight2, None, mode="adj_gate", slope=slope, left=left2, aux=z, transpose=True)
        grad_w2, grad_b2 = _weight_grad(g, z, taps2, act=True, slope=slope, left=left2)
    else:
        grad_z = g
    grad_ws = grad_bs = None
    residual = g
    if shortcut_weight is not None:
        residual = _conv(g, shortcut_weight, _zero_bias(None, shortcut_weight), mode="conv", transpose=True)
        grad_ws, grad_bs = _weight_grad(g, x, 1, act=False)
    grad_x = _conv(grad_z, weight1, None, mode="adj_gate_res", pad=pad, slope=slope, dilation=dilation, left=left,
                   aux=x, res=residual, transpose=True)  # fmt: skip
    grad_w1, grad_b1 = _weight_grad(grad_z, x, taps, act=True, pad=pad, slope=slope, dilation=dilation, left=left)

    def cast(grad, like):
        return None if like is None else grad.to(like.dtype)

    return [
        grad_x, cast(grad_w1, weight1), cast(grad_b1, bias1), cast(grad_w2, weight2), cast(grad_b2, bias2),
        cast(grad_ws, shortcut_weight), cast(grad_bs, shortcut_bias),
    ]  # fmt: skip


def aot_specs() -> list[KernelSpec]:
    """Every configuration the launchers above can use (on a GPU: HALF_DOT exactly for fp16/bf16)."""
    specs = []
    for dtype, type_name in TRITON_DTYPE_NAMES.items():
        half_dot = dtype != torch.float32
        ptr = f"*{type_name}"
        for mode, (act_in, has_bias, act_out, gate, residual, adjoint) in CONV_MODES.items():
            signature = {
                "in_ptr": ptr, "w_ptr": ptr, "bias_ptr": ptr, "aux_ptr": ptr, "res_ptr": ptr, "out_ptr": ptr,
                "slope": "fp32", "c_in": "i32", "c_out": "i32", "length": "i32", "taps": "i32",
                "dilation": "i32", "left": "i32", "pad": "i32",
                **{f"stride_{n}": "i32" for n in ("ib", "ic", "it", "wo", "wi", "wk", "ab", "ac", "at", "rb", "rc", "rt")},
            }  # fmt: skip
            constexprs = {
                "ADJOINT": adjoint, "ACT_IN": act_in, "HAS_BIAS": has_bias, "ACT_OUT": act_out,
                "GATE": gate, "RESIDUAL": residual, "HALF_DOT": half_dot,
                "BLOCK_CO": CONV_BLOCK_CO, "BLOCK_CI": CONV_BLOCK_CI, "BLOCK_T": CONV_BLOCK_T,
            }  # fmt: skip
            signature.update({k: "constexpr" for k in constexprs})
            specs.append(
                KernelSpec(
                    _conv_kernel, signature, constexprs, _conv_warps(dtype), _conv_stages(dtype), f"{type_name} {mode}"
                )
            )
        for channels in FUSED_BLOCK_CS:
            block_c, block_t, warps = _fused_config(channels, dtype)
            signature = {
                **{n: ptr for n in ("x_ptr", "w1_ptr", "b1_ptr", "w2_ptr", "b2_ptr", "ws_ptr", "bs_ptr", "out_ptr")},
                "slope": "fp32", "channels": "i32", "length": "i32", "taps": "i32", "dilation": "i32",
                "left": "i32", "pad": "i32",
                **{f"stride_{n}": "i32" for n in ("xb", "xc", "xt", "w1o", "w1i", "w1k", "w2o", "w2i", "wso", "wsi")},
            }  # fmt: skip
            constexprs = {"HALF_DOT": half_dot, "BLOCK_C": block_c, "BLOCK_M": FUSED_BLOCK_M,
                          "BLOCK_CI": FUSED_BLOCK_CI, "BLOCK_T": block_t}  # fmt: skip
            signature.update({k: "constexpr" for k in constexprs})
            label = f"{type_name} BLOCK_C={block_c} BLOCK_T={block_t}"
            specs.append(KernelSpec(_fused_1x1_forward_kernel, signature, constexprs, warps, FUSED_STAGES, label))
        for block_t in TWO_CONV_BLOCK_TS[dtype]:
            signature = {
                **{n: ptr for n in ("x_ptr", "w1_ptr", "b1_ptr", "w2_ptr", "b2_ptr", "res_ptr", "scratch_ptr", "out_ptr")},
                "slope": "fp32", "channels": "i32", "length": "i32", "taps1": "i32", "dilation": "i32",
                "left1": "i32", "pad": "i32", "taps2": "i32", "left2": "i32", "halo_chunks": "i32",
                **{f"stride_{n}": "i32" for n in ("xb", "xc", "xt", "w1o", "w1i", "w1k", "w2o", "w2i", "w2k", "rb", "rc", "rt")},
            }  # fmt: skip
            constexprs = {"HALF_DOT": half_dot, "BLOCK_C": TWO_CONV_BLOCK_C, "BLOCK_CI": TWO_CONV_BLOCK_CI,
                          "BLOCK_T": block_t, "HALO_T": TWO_CONV_HALO_T}  # fmt: skip
            signature.update({k: "constexpr" for k in constexprs})
            specs.append(
                KernelSpec(
                    _fused_two_conv_forward_kernel, signature, constexprs, _conv_warps(dtype), _conv_stages(dtype),
                    f"{type_name} BLOCK_T={block_t}",
                )
            )  # fmt: skip
        for act_in in (True, False):
            signature = {
                "g_ptr": ptr, "in_ptr": ptr, "part_ptr": "*fp32", "bias_part_ptr": "*fp32",
                "slope": "fp32", "c_out": "i32", "c_in": "i32", "length": "i32", "batch": "i32",
                "taps": "i32", "dilation": "i32", "left": "i32", "pad": "i32", "tiles_per_split": "i32",
                **{f"stride_{n}": "i32" for n in ("gb", "gc", "gt", "ib", "ic", "it")},
            }  # fmt: skip
            constexprs = {"ACT_IN": act_in, "HALF_DOT": half_dot, "BLOCK_O": WGRAD_BLOCK_O,
                          "BLOCK_I": WGRAD_BLOCK_I, "BLOCK_T": WGRAD_BLOCK_T}  # fmt: skip
            signature.update({k: "constexpr" for k in constexprs})
            label = f"{type_name} act={int(act_in)}"
            specs.append(
                KernelSpec(_weight_grad_kernel, signature, constexprs, _conv_warps(dtype), WGRAD_STAGES, label)
            )
    return specs
