"""WaveNet gated residual block (Parallel WaveGAN): fused forward and backward Triton kernels.

Forward, one program per (time tile, example): the dilated conv as an implicit GEMM (tl.dot over
taps x residual-channel chunks, reading ``x[t + k * dilation - pad]`` with zero padding done by
masks, causal or centred), the aux 1x1 conv as more tl.dot chunks into the same two
accumulators (tanh half and sigmoid half of the gate channels), biases, the gate
``tanh(a) * sigmoid(b)``, then both 1x1 convs from the on-chip gate, the residual add and the
sqrt(0.5) scale, and one write each of ``x_out`` and ``skip`` (``skip`` plus the incoming skip
sum when accumulating). Nothing of size (G, T) ever reaches memory.

Backward: the forward saves only its inputs; the backward recomputes the gate pre-activations
from x and c (one more implicit GEMM per tile) instead of storing them. Storing would keep
(G + H) x T values per block alive from forward to backward -- three times the block's own input
for PWG, times 30 layers -- to save a GEMM that reads nothing but x and c, which are read anyway;
recomputing keeps a training step's peak memory at the inputs. Three kernels:
  1. gate: per tile, recompute z, g; ``grad_g = W_out^T (sqrt(.5) grad_x_out) + W_skip^T grad_skip``;
     ``dz`` = the gate derivative; writes dz (B, G, T) and g (B, H, T) in the storage dtype
     (transient: freed when this block's backward ends).
  2. input: per tile, ``grad_x = sqrt(.5) grad_x_out + sum_k W_k^T dz[t - k*dilation + pad]`` (the
     transposed dilated conv as an implicit GEMM, padding by masks) and ``grad_c = W_aux^T dz``.
  3. weight (three launches): split-K GEMMs over (example, time) chunks,
     ``sum_t A[m, t] B[n, t]`` with B's columns the conv's (tap, channel) pairs read at shifted
     times (or the aux features, or g), plus each row's sum (the bias gradient); per-chunk fp32
     partials summed by torch (deterministic, no atomics).

Precision: every load is cast to fp32; tl.dot operands are the storage dtype (fp16/bf16 tensor
cores, fp32 accumulation) or, for fp32 tensors, fp32 with ``input_precision="tf32x3"`` (three TF32 products per
product: fp32-level accuracy on tensor cores; plain TF32 would not meet the fp32 tolerance).
Under the Triton interpreter bf16 dots are computed on fp32 operands (the interpreter's bf16 dot
is wrong); the operands hold bf16-rounded values either way, so results agree.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from fastgan.kernels._launch import TRITON_DTYPE_NAMES, KernelSpec, contiguous, half_precision_dots

SQRT_HALF = math.sqrt(0.5)
# Output-channel block (H, R <= CH; S is streamed) -> (half-precision time tile, fp32 time tile, warps).
# Two CH x BLOCK_T fp32 accumulators (the gate halves) stay on chip, plus two CH x BLOCK_K weight
# operands per dot step. The time tile shrinks as CH grows so each block keeps the same register
# budget: 2 x CH x BLOCK_T = 8192 accumulator values per program in fp16/bf16, 4096 in fp32 (its
# 3xTF32 dots take twice the registers per value). 64 covers Parallel WaveGAN's 64/128/64
# (generator and discriminators); 128 the larger PWG/WaveNet vocoders' 128/256/128 and anything
# between 65 and 128 (tl.arange needs a power of two). sm_90 (tests/aot_compile.py): every listed
# configuration compiles with no spills; the fp32 gate kernels use all 255 registers at both sizes,
# the half-precision backward gate kernel 252 at CH=128. Beyond 128 nothing is listed: CH=256 would
# need an fp32 time tile of 8 (tl.dot needs >= 16) and would double the weight operands again; it
# would take splitting the gate rows over programs, which this design (the whole gate of a time
# tile on chip) does not do. Wider blocks take the reference (cuDNN on a GPU). Every listed block
# multiplies the sm_90 compile check.
CHANNEL_BLOCKS = {64: (64, 32, 8), 128: (32, 16, 8)}
BLOCK_K = 32  # input-channel chunk of every implicit GEMM (and the 1x1 convs' output chunk)
# Weight-gradient GEMM tiles and the number of (example, time) chunks it splits the sum into.
WG_BLOCK_M, WG_BLOCK_N, WG_BLOCK_T, WG_WARPS = 64, 64, 32, 8
WG_MAX_CHUNKS = 64


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _tanh(x):
    return 2.0 / (1.0 + tl.exp(-2.0 * x)) - 1.0


@triton.jit
def _mma(a, b, acc, DTYPE: tl.constexpr, DOT_F32: tl.constexpr):
    """acc += a @ b; a and b hold fp32 values (rounded to DTYPE already when DTYPE is half)."""
    if DOT_F32:
        return tl.dot(a, b, acc, input_precision="tf32x3")
    else:
        return tl.dot(a.to(DTYPE), b.to(DTYPE), acc)


@triton.jit
def _gate_preactivation(
    x_ptr, c_ptr, wc_ptr, bc_ptr, wa_ptr, b, t, R, H, A, T, K, dilation, pad_left,
    sxb, sxc, sxt, scb, scc, sct, swg, swr, swk, sag, saa,
    DTYPE: tl.constexpr, DOT_F32: tl.constexpr, CH: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_T: tl.constexpr,
):  # fmt: skip
    """(za, zb): the (CH, BLOCK_T) tanh and sigmoid halves of conv(x) + b_conv + W_aux @ c."""
    h = tl.arange(0, CH)
    h_ok = h < H
    kk = tl.arange(0, BLOCK_K)
    acc_a = tl.zeros((CH, BLOCK_T), dtype=tl.float32)
    acc_b = tl.zeros((CH, BLOCK_T), dtype=tl.float32)
    x_base = x_ptr + b * sxb
    for k in range(0, K):
        src = t + k * dilation - pad_left
        src_ok = (src >= 0) & (src < T)
        for r0 in range(0, R, BLOCK_K):
            r = r0 + kk
            r_ok = r < R
            xv = tl.load(x_base + r[:, None].to(tl.int64) * sxc + src[None, :].to(tl.int64) * sxt,
                         mask=r_ok[:, None] & src_ok[None, :], other=0.0).to(tl.float32)  # fmt: skip
            w_offsets = h[:, None] * swg + r[None, :] * swr + k * swk
            w_mask = h_ok[:, None] & r_ok[None, :]
            wa = tl.load(wc_ptr + w_offsets, mask=w_mask, other=0.0).to(tl.float32)
            wb = tl.load(wc_ptr + H * swg + w_offsets, mask=w_mask, other=0.0).to(tl.float32)
            acc_a = _mma(wa, xv, acc_a, DTYPE, DOT_F32)
            acc_b = _mma(wb, xv, acc_b, DTYPE, DOT_F32)
    t_ok = t < T
    c_base = c_ptr + b * scb
    for a0 in range(0, A, BLOCK_K):
        a = a0 + kk
        a_ok = a < A
        cv = tl.load(c_base + a[:, None].to(tl.int64) * scc + t[None, :].to(tl.int64) * sct,
                     mask=a_ok[:, None] & t_ok[None, :], other=0.0).to(tl.float32)  # fmt: skip
        w_offsets = h[:, None] * sag + a[None, :] * saa
        w_mask = h_ok[:, None] & a_ok[None, :]
        wa = tl.load(wa_ptr + w_offsets, mask=w_mask, other=0.0).to(tl.float32)
        wb = tl.load(wa_ptr + H * sag + w_offsets, mask=w_mask, other=0.0).to(tl.float32)
        acc_a = _mma(wa, cv, acc_a, DTYPE, DOT_F32)
        acc_b = _mma(wb, cv, acc_b, DTYPE, DOT_F32)
    acc_a += tl.load(bc_ptr + h, mask=h_ok, other=0.0).to(tl.float32)[:, None]
    acc_b += tl.load(bc_ptr + H + h, mask=h_ok, other=0.0).to(tl.float32)[:, None]
    return acc_a, acc_b


@triton.jit
def _wavenet_block_forward_kernel(
    x_ptr, c_ptr, wc_ptr, bc_ptr, wa_ptr, wo_ptr, bo_ptr, ws_ptr, bs_ptr, skip_in_ptr, out_ptr, skip_ptr,
    R, H, S, A, T, K, dilation, pad_left,
    sxb, sxc, sxt, scb, scc, sct, swg, swr, swk, sag, saa, sor, soh, sss, ssh, sib, sic, sit,
    has_skip_in, DOT_F32: tl.constexpr, CH: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_T: tl.constexpr,
):  # fmt: skip
    pid_t = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    DTYPE: tl.constexpr = out_ptr.dtype.element_ty
    t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    t_ok = t < T
    za, zb = _gate_preactivation(
        x_ptr, c_ptr, wc_ptr, bc_ptr, wa_ptr, b, t, R, H, A, T, K, dilation, pad_left,
        sxb, sxc, sxt, scb, scc, sct, swg, swr, swk, sag, saa, DTYPE, DOT_F32, CH, BLOCK_K, BLOCK_T,
    )  # fmt: skip
    # Padded rows (h >= H) have za = 0, so g = tanh(0) * ... = 0 there.
    g = (_tanh(za) * _sigmoid(zb)).to(DTYPE).to(tl.float32)
    h = tl.arange(0, CH)
    h_ok = h < H
    oo = tl.arange(0, BLOCK_K)
    t64 = t.to(tl.int64)
    # Residual rows, BLOCK_K at a time: x_out = (W_out g + b_out + x) * sqrt(0.5).
    for o0 in range(0, R, BLOCK_K):
        o = o0 + oo
        o_ok = o < R
        w = tl.load(wo_ptr + o[:, None] * sor + h[None, :] * soh, mask=o_ok[:, None] & h_ok[None, :], other=0.0)
        y = _mma(w.to(tl.float32), g, tl.zeros((BLOCK_K, BLOCK_T), dtype=tl.float32), DTYPE, DOT_F32)
        mask = o_ok[:, None] & t_ok[None, :]
        x_res = tl.load(x_ptr + b * sxb + o[:, None].to(tl.int64) * sxc + t64[None, :] * sxt, mask=mask, other=0.0)
        y += tl.load(bo_ptr + o, mask=o_ok, other=0.0).to(tl.float32)[:, None] + x_res.to(tl.float32)
        y = y * tl.cast(0.7071067811865476, tl.float32)
        tl.store(out_ptr + (b * R + o[:, None]) * T + t64[None, :], y.to(DTYPE), mask=mask)
    # Skip rows: skip = W_skip g + b_skip (+ the running skip sum).
    for o0 in range(0, S, BLOCK_K):
        o = o0 + oo
        o_ok = o < S
        w = tl.load(ws_ptr + o[:, None] * sss + h[None, :] * ssh, mask=o_ok[:, None] & h_ok[None, :], other=0.0)
        y = _mma(w.to(tl.float32), g, tl.zeros((BLOCK_K, BLOCK_T), dtype=tl.float32), DTYPE, DOT_F32)
        mask = o_ok[:, None] & t_ok[None, :]
        y += tl.load(bs_ptr + o, mask=o_ok, other=0.0).to(tl.float32)[:, None]
        if has_skip_in != 0:
            offsets = b * sib + o[:, None].to(tl.int64) * sic + t64[None, :] * sit
            y += tl.load(skip_in_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        tl.store(skip_ptr + (b * S + o[:, None]) * T + t64[None, :], y.to(DTYPE), mask=mask)


@triton.jit
def _wavenet_block_backward_gate_kernel(
    x_ptr, c_ptr, wc_ptr, bc_ptr, wa_ptr, wo_ptr, ws_ptr, gxo_ptr, gs_ptr, dz_ptr, g_ptr,
    R, H, S, A, T, K, dilation, pad_left,
    sxb, sxc, sxt, scb, scc, sct, swg, swr, swk, sag, saa, sor, soh, sss, ssh,
    sgb, sgc, sgt, shb, shc, sht,
    DOT_F32: tl.constexpr, CH: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_T: tl.constexpr,
):  # fmt: skip
    pid_t = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    DTYPE: tl.constexpr = dz_ptr.dtype.element_ty
    t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    t_ok = t < T
    t64 = t.to(tl.int64)
    za, zb = _gate_preactivation(
        x_ptr, c_ptr, wc_ptr, bc_ptr, wa_ptr, b, t, R, H, A, T, K, dilation, pad_left,
        sxb, sxc, sxt, scb, scc, sct, swg, swr, swk, sag, saa, DTYPE, DOT_F32, CH, BLOCK_K, BLOCK_T,
    )  # fmt: skip
    ta = _tanh(za)
    sb = _sigmoid(zb)
    h = tl.arange(0, CH)
    h_ok = h < H
    kk = tl.arange(0, BLOCK_K)
    # grad_g = W_out^T (sqrt(.5) grad_x_out) + W_skip^T grad_skip, BLOCK_K input rows at a time.
    grad_g = tl.zeros((CH, BLOCK_T), dtype=tl.float32)
    for o0 in range(0, R, BLOCK_K):
        o = o0 + kk
        o_ok = o < R
        w = tl.load(wo_ptr + o[None, :] * sor + h[:, None] * soh, mask=h_ok[:, None] & o_ok[None, :], other=0.0)
        gv = tl.load(gxo_ptr + b * sgb + o[:, None].to(tl.int64) * sgc + t64[None, :] * sgt,
                     mask=o_ok[:, None] & t_ok[None, :], other=0.0).to(tl.float32)  # fmt: skip
        grad_g = _mma(w.to(tl.float32), gv, grad_g, DTYPE, DOT_F32)
    grad_g = grad_g * tl.cast(0.7071067811865476, tl.float32)
    for o0 in range(0, S, BLOCK_K):
        o = o0 + kk
        o_ok = o < S
        w = tl.load(ws_ptr + o[None, :] * sss + h[:, None] * ssh, mask=h_ok[:, None] & o_ok[None, :], other=0.0)
        gv = tl.load(gs_ptr + b * shb + o[:, None].to(tl.int64) * shc + t64[None, :] * sht,
                     mask=o_ok[:, None] & t_ok[None, :], other=0.0).to(tl.float32)  # fmt: skip
        grad_g = _mma(w.to(tl.float32), gv, grad_g, DTYPE, DOT_F32)
    dza = grad_g * sb * (1.0 - ta * ta)
    dzb = grad_g * ta * sb * (1.0 - sb)
    G = 2 * H
    mask = h_ok[:, None] & t_ok[None, :]
    rows = b * G + h[:, None]
    tl.store(dz_ptr + rows * T + t64[None, :], dza.to(DTYPE), mask=mask)
    tl.store(dz_ptr + (rows + H) * T + t64[None, :], dzb.to(DTYPE), mask=mask)
    tl.store(g_ptr + (b * H + h[:, None]) * T + t64[None, :], (ta * sb).to(DTYPE), mask=mask)


@triton.jit
def _wavenet_block_backward_input_kernel(
    dz_ptr, gxo_ptr, wc_ptr, wa_ptr, gx_ptr, gc_ptr,
    R, H, A, T, K, dilation, pad_left,
    sgb, sgc, sgt, swg, swr, swk, sag, saa,
    DOT_F32: tl.constexpr, CH: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_T: tl.constexpr,
):  # fmt: skip
    pid_t = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    DTYPE: tl.constexpr = gx_ptr.dtype.element_ty
    G = 2 * H
    t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    t_ok = t < T
    t64 = t.to(tl.int64)
    r = tl.arange(0, CH)
    r_ok = r < R
    kk = tl.arange(0, BLOCK_K)
    dz_base = dz_ptr + b * G * T
    # grad_x[r, t] = sum_k sum_g W[g, r, k] dz[g, t - k * dilation + pad_left]  (+ the residual path)
    acc = tl.zeros((CH, BLOCK_T), dtype=tl.float32)
    for k in range(0, K):
        src = t - k * dilation + pad_left
        src_ok = (src >= 0) & (src < T)
        for g0 in range(0, G, BLOCK_K):
            gg = g0 + kk
            g_ok = gg < G
            w = tl.load(wc_ptr + gg[None, :] * swg + r[:, None] * swr + k * swk,
                        mask=r_ok[:, None] & g_ok[None, :], other=0.0).to(tl.float32)  # fmt: skip
            dz = tl.load(dz_base + gg[:, None].to(tl.int64) * T + src[None, :].to(tl.int64),
                         mask=g_ok[:, None] & src_ok[None, :], other=0.0).to(tl.float32)  # fmt: skip
            acc = _mma(w, dz, acc, DTYPE, DOT_F32)
    mask = r_ok[:, None] & t_ok[None, :]
    gxo = tl.load(gxo_ptr + b * sgb + r[:, None].to(tl.int64) * sgc + t64[None, :] * sgt, mask=mask, other=0.0)
    acc += gxo.to(tl.float32) * tl.cast(0.7071067811865476, tl.float32)
    tl.store(gx_ptr + (b * R + r[:, None]) * T + t64[None, :], acc.to(DTYPE), mask=mask)
    # grad_c[a, t] = sum_g W_aux[g, a] dz[g, t], BLOCK_K aux rows at a time.
    for a0 in range(0, A, BLOCK_K):
        a = a0 + kk
        a_ok = a < A
        acc_c = tl.zeros((BLOCK_K, BLOCK_T), dtype=tl.float32)
        for g0 in range(0, G, BLOCK_K):
            gg = g0 + kk
            g_ok = gg < G
            w = tl.load(wa_ptr + gg[None, :] * sag + a[:, None] * saa,
                        mask=a_ok[:, None] & g_ok[None, :], other=0.0).to(tl.float32)  # fmt: skip
            dz = tl.load(dz_base + gg[:, None].to(tl.int64) * T + t64[None, :],
                         mask=g_ok[:, None] & t_ok[None, :], other=0.0).to(tl.float32)  # fmt: skip
            acc_c = _mma(w, dz, acc_c, DTYPE, DOT_F32)
        tl.store(gc_ptr + (b * A + a[:, None]) * T + t64[None, :], acc_c.to(DTYPE), mask=a_ok[:, None] & t_ok[None, :])


@triton.jit
def _wavenet_block_weight_grad_kernel(
    a_ptr, b1_ptr, b2_ptr, out_ptr, rowsum_ptr, scale,
    M, C1, K1, C2, T, batch, dilation, pad_left, tiles_per_chunk,
    sab, sam, sat, s1b, s1c, s1t, s2b, s2c, s2t,
    DOT_F32: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_T: tl.constexpr,
):  # fmt: skip
    """partial[chunk, m, n] = scale * sum_{(b, t) in chunk} A[b, m, t] B[b, n, t], where column
    n < K1*C1 is channel n % C1 of b1 read at t + (n // C1) * dilation - pad_left (zero outside
    [0, T)) and column K1*C1 + j is channel j of b2 at t; rowsum[chunk, m] = scale * sum A[b, m, t]."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    chunk = tl.program_id(2)
    DTYPE: tl.constexpr = a_ptr.dtype.element_ty
    N1 = K1 * C1
    N = N1 + C2
    m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = m < M
    in1 = n < N1
    in2 = (n >= N1) & (n < N)
    tap = tl.where(in1, n // C1, 0)
    ch1 = tl.where(in1, n % C1, 0)
    ch2 = tl.where(in2, n - N1, 0)
    shift = tap * dilation - pad_left
    tiles_per_row = tl.cdiv(T, BLOCK_T)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    rows = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for i in range(0, tiles_per_chunk):
        tile = chunk * tiles_per_chunk + i
        live = tile < batch * tiles_per_row
        b = (tile // tiles_per_row).to(tl.int64)
        t = (tile % tiles_per_row) * BLOCK_T + tl.arange(0, BLOCK_T)
        t_ok = (t < T) & live
        av = tl.load(a_ptr + b * sab + m[:, None].to(tl.int64) * sam + t[None, :].to(tl.int64) * sat,
                     mask=m_ok[:, None] & t_ok[None, :], other=0.0).to(tl.float32)  # fmt: skip
        src = t[:, None] + shift[None, :]  # (BLOCK_T, BLOCK_N)
        ok1 = in1[None, :] & (src >= 0) & (src < T) & t_ok[:, None]
        bv = tl.load(b1_ptr + b * s1b + ch1[None, :].to(tl.int64) * s1c + src.to(tl.int64) * s1t,
                     mask=ok1, other=0.0).to(tl.float32)  # fmt: skip
        ok2 = in2[None, :] & t_ok[:, None]
        bv += tl.load(b2_ptr + b * s2b + ch2[None, :].to(tl.int64) * s2c + t[:, None].to(tl.int64) * s2t,
                      mask=ok2, other=0.0).to(tl.float32)  # fmt: skip
        acc = _mma(av, bv, acc, DTYPE, DOT_F32)
        rows += tl.sum(av, axis=1)
    scale = tl.cast(scale, tl.float32)
    offsets = (chunk * M + m[:, None].to(tl.int64)) * N + n[None, :]
    tl.store(out_ptr + offsets, acc * scale, mask=m_ok[:, None] & (n < N)[None, :])
    tl.store(rowsum_ptr + chunk * M + m, rows * scale, mask=m_ok & (pid_n == 0))


# ------------------------------------------------------------------------------------------
# Launchers


def channel_block(half: int, residual: int, skip: int = 0) -> int:
    """The CH constexpr: the smallest listed block holding H and R. The skip channels are not held on chip
    (the skip 1x1 conv and its transpose stream them BLOCK_K rows at a time), so any S fits."""
    need = max(half, residual)
    for ch in sorted(CHANNEL_BLOCKS):
        if need <= ch:
            return ch
    raise ValueError(
        f"fastgan::wavenet_block: the kernels hold at most {max(CHANNEL_BLOCKS)} channels of gate_channels // 2 "
        f"and of residual_channels, need {need}"
    )


def _tile(ch: int, dtype: torch.dtype) -> tuple[int, int]:
    block_t, fp32_block_t, warps = CHANNEL_BLOCKS[ch]
    return (fp32_block_t if dtype == torch.float32 else block_t), warps


def _matrix(weight: torch.Tensor) -> torch.Tensor:
    return weight if weight.dim() == 2 else weight[:, :, 0]


def _pad_left(kernel_size: int, dilation: int, causal: bool) -> int:
    return (kernel_size - 1) * dilation if causal else (kernel_size - 1) // 2 * dilation


def _bias(bias: torch.Tensor | None, size: int, like: torch.Tensor) -> torch.Tensor:
    return bias if bias is not None else torch.zeros(size, dtype=like.dtype, device=like.device)


def wavenet_block_forward(x, c, w_conv, b_conv, w_aux, w_out, b_out, w_skip, b_skip, skip_sum, dilation, causal):
    """Launch the fused forward: returns (x_out, skip [+ skip_sum]), both contiguous."""
    b_conv, b_out, b_skip = contiguous(b_conv, b_out, b_skip)  # the kernels index biases by channel
    batch, residual, length = x.shape
    gate, _, kernel_size = w_conv.shape
    half = gate // 2
    w_out, w_skip = _matrix(w_out), _matrix(w_skip)
    skip_ch = w_skip.shape[0]
    ch = channel_block(half, residual, skip_ch)
    block_t, warps = _tile(ch, x.dtype)
    out = torch.empty((batch, residual, length), dtype=x.dtype, device=x.device)
    skip = torch.empty((batch, skip_ch, length), dtype=x.dtype, device=x.device)
    has_aux = c is not None
    c_arg = c if has_aux else x  # never read: A = 0
    w_aux_arg = _matrix(w_aux) if has_aux else w_out
    aux = c.shape[1] if has_aux else 0
    skip_in = skip_sum if skip_sum is not None else skip
    grid = (triton.cdiv(length, block_t), batch)
    _wavenet_block_forward_kernel[grid](
        x, c_arg, w_conv, _bias(b_conv, gate, x), w_aux_arg, w_out, _bias(b_out, residual, x), w_skip,
        _bias(b_skip, skip_ch, x), skip_in, out, skip,
        residual, half, skip_ch, aux, length, kernel_size, dilation, _pad_left(kernel_size, dilation, causal),
        *x.stride(), *c_arg.stride(), *w_conv.stride(), *w_aux_arg.stride()[:2], *w_out.stride(), *w_skip.stride(),
        *skip_in.stride(),
        int(skip_sum is not None), DOT_F32=not half_precision_dots(x), CH=ch, BLOCK_K=BLOCK_K,
        BLOCK_T=block_t, num_warps=warps,
    )  # fmt: skip
    return out, skip


def _weight_grad(a, b1, b2, taps, dilation, pad_left, scale):
    """(M, K1*C1 + C2) fp32 sum over (example, time) of A B^T, and A's row sums; see the kernel."""
    batch, rows, length = a.shape
    c1 = b1.shape[1]
    c2 = 0 if b2 is None else b2.shape[1]
    b2_arg = b1 if b2 is None else b2
    cols = taps * c1 + c2
    tiles = batch * triton.cdiv(length, WG_BLOCK_T)
    chunks = min(tiles, WG_MAX_CHUNKS)
    per_chunk = triton.cdiv(tiles, chunks)
    chunks = triton.cdiv(tiles, per_chunk)
    partial = torch.empty((chunks, rows, cols), dtype=torch.float32, device=a.device)
    rowsum = torch.empty((chunks, rows), dtype=torch.float32, device=a.device)
    grid = (triton.cdiv(rows, WG_BLOCK_M), triton.cdiv(cols, WG_BLOCK_N), chunks)
    _wavenet_block_weight_grad_kernel[grid](
        a, b1, b2_arg, partial, rowsum, float(scale),
        rows, c1, taps, c2, length, batch, dilation, pad_left, per_chunk,
        *a.stride(), *b1.stride(), *b2_arg.stride(),
        DOT_F32=not half_precision_dots(a), BLOCK_M=WG_BLOCK_M, BLOCK_N=WG_BLOCK_N, BLOCK_T=WG_BLOCK_T,
        num_warps=WG_WARPS,
    )  # fmt: skip
    return partial.sum(0), rowsum.sum(0)


def wavenet_block_backward(
    grad_x_out, grad_skip, x, c, w_conv, b_conv, w_aux, w_out, b_out, w_skip, b_skip, dilation, causal
):
    """Launch the backward kernels; returns the gradients by name (None for inputs that were None)."""
    (b_conv,) = contiguous(b_conv)  # read by the gate's recompute, indexed by channel
    batch, residual, length = x.shape
    gate, _, kernel_size = w_conv.shape
    half = gate // 2
    w_out_m, w_skip_m = _matrix(w_out), _matrix(w_skip)
    skip_ch = w_skip_m.shape[0]
    ch = channel_block(half, residual, skip_ch)
    block_t, warps = _tile(ch, x.dtype)
    pad_left = _pad_left(kernel_size, dilation, causal)
    dot_f32 = not half_precision_dots(x)
    has_aux = c is not None
    c_arg = c if has_aux else x
    w_aux_arg = _matrix(w_aux) if has_aux else w_out_m
    aux = c.shape[1] if has_aux else 0
    grid = (triton.cdiv(length, block_t), batch)

    dz = torch.empty((batch, gate, length), dtype=x.dtype, device=x.device)
    g = torch.empty((batch, half, length), dtype=x.dtype, device=x.device)
    _wavenet_block_backward_gate_kernel[grid](
        x, c_arg, w_conv, _bias(b_conv, gate, x), w_aux_arg, w_out_m, w_skip_m, grad_x_out, grad_skip, dz, g,
        residual, half, skip_ch, aux, length, kernel_size, dilation, pad_left,
        *x.stride(), *c_arg.stride(), *w_conv.stride(), *w_aux_arg.stride()[:2], *w_out_m.stride(),
        *w_skip_m.stride(), *grad_x_out.stride(), *grad_skip.stride(),
        DOT_F32=dot_f32, CH=ch, BLOCK_K=BLOCK_K, BLOCK_T=block_t, num_warps=warps,
    )  # fmt: skip

    grad_x = torch.empty((batch, residual, length), dtype=x.dtype, device=x.device)
    grad_c = torch.empty((batch, aux, length), dtype=x.dtype, device=x.device) if has_aux else grad_x
    _wavenet_block_backward_input_kernel[grid](
        dz, grad_x_out, w_conv, w_aux_arg, grad_x, grad_c,
        residual, half, aux, length, kernel_size, dilation, pad_left,
        *grad_x_out.stride(), *w_conv.stride(), *w_aux_arg.stride()[:2],
        DOT_F32=dot_f32, CH=ch, BLOCK_K=BLOCK_K, BLOCK_T=block_t, num_warps=warps,
    )  # fmt: skip

    conv_cols, conv_bias = _weight_grad(dz, x, c, kernel_size, dilation, pad_left, 1.0)
    grad_w_conv = conv_cols[:, : kernel_size * residual].reshape(gate, kernel_size, residual).permute(0, 2, 1)
    out_w, out_b = _weight_grad(grad_x_out, g, None, 1, 1, 0, SQRT_HALF)
    skip_w, skip_b = _weight_grad(grad_skip, g, None, 1, 1, 0, 1.0)
    dtype = x.dtype
    grads = {
        "x": grad_x,
        "c": grad_c if has_aux else None,
        "w_conv": grad_w_conv.to(dtype).contiguous(),
        "b_conv": None if b_conv is None else conv_bias.to(dtype),
        "w_aux": None if w_aux is None else conv_cols[:, kernel_size * residual :].to(dtype).reshape(w_aux.shape),
        "w_out": out_w.to(dtype).reshape(w_out.shape),
        "b_out": None if b_out is None else out_b.to(dtype),
        "w_skip": skip_w.to(dtype).reshape(w_skip.shape),
        "b_skip": None if b_skip is None else skip_b.to(dtype),
    }
    return grads


# ------------------------------------------------------------------------------------------
# Every configuration the launchers can use (on a GPU: dot operands in the storage dtype, fp32
# with IEEE precision for fp32 tensors).


def aot_specs() -> list[KernelSpec]:
    specs = []
    for dtype, name in TRITON_DTYPE_NAMES.items():
        p = f"*{name}"
        dot_f32 = dtype == torch.float32
        for ch in CHANNEL_BLOCKS:
            block_t, warps = _tile(ch, dtype)
            tile = {"CH": ch, "BLOCK_K": BLOCK_K, "BLOCK_T": block_t}
            geometry = {k: "i32" for k in ("R", "H", "S", "A", "T", "K", "dilation", "pad_left")}
            strides = lambda *names: {n: "i32" for n in names}
            constexprs = {"DOT_F32": dot_f32, **tile}
            signature = {
                **{k: p for k in ("x_ptr", "c_ptr", "wc_ptr", "bc_ptr", "wa_ptr", "wo_ptr", "bo_ptr", "ws_ptr",
                                  "bs_ptr", "skip_in_ptr", "out_ptr", "skip_ptr")},
                **geometry,
                **strides("sxb", "sxc", "sxt", "scb", "scc", "sct", "swg", "swr", "swk", "sag", "saa", "sor",
                          "soh", "sss", "ssh", "sib", "sic", "sit"),
                "has_skip_in": "i32",
                **{k: "constexpr" for k in constexprs},
            }  # fmt: skip
            label = f"{name} CH={ch} BLOCK_T={block_t}"
            specs.append(KernelSpec(_wavenet_block_forward_kernel, signature, constexprs, warps, 3, label))
            constexprs = {"DOT_F32": dot_f32, **tile}
            signature = {
                **{k: p for k in ("x_ptr", "c_ptr", "wc_ptr", "bc_ptr", "wa_ptr", "wo_ptr", "ws_ptr", "gxo_ptr",
                                  "gs_ptr", "dz_ptr", "g_ptr")},
                **geometry,
                **strides("sxb", "sxc", "sxt", "scb", "scc", "sct", "swg", "swr", "swk", "sag", "saa", "sor", "soh",
                          "sss", "ssh", "sgb", "sgc", "sgt", "shb", "shc", "sht"),
                **{k: "constexpr" for k in constexprs},
            }  # fmt: skip
            label = f"{name} CH={ch} BLOCK_T={block_t}"
            specs.append(KernelSpec(_wavenet_block_backward_gate_kernel, signature, constexprs, warps, 3, label))
            signature = {
                **{k: p for k in ("dz_ptr", "gxo_ptr", "wc_ptr", "wa_ptr", "gx_ptr", "gc_ptr")},
                **{k: "i32" for k in ("R", "H", "A", "T", "K", "dilation", "pad_left")},
                **strides("sgb", "sgc", "sgt", "swg", "swr", "swk", "sag", "saa"),
                **{k: "constexpr" for k in constexprs},
            }  # fmt: skip
            specs.append(KernelSpec(_wavenet_block_backward_input_kernel, signature, constexprs, warps, 3, label))
        constexprs = {"DOT_F32": dot_f32, "BLOCK_M": WG_BLOCK_M, "BLOCK_N": WG_BLOCK_N, "BLOCK_T": WG_BLOCK_T}
        signature = {
            "a_ptr": p, "b1_ptr": p, "b2_ptr": p, "out_ptr": "*fp32", "rowsum_ptr": "*fp32", "scale": "fp32",
            **{k: "i32" for k in ("M", "C1", "K1", "C2", "T", "batch", "dilation", "pad_left", "tiles_per_chunk")},
            **strides("sab", "sam", "sat", "s1b", "s1c", "s1t", "s2b", "s2c", "s2t"),
            **{k: "constexpr" for k in constexprs},
        }  # fmt: skip
        specs.append(KernelSpec(_wavenet_block_weight_grad_kernel, signature, constexprs, WG_WARPS, 3, name))
    return specs
