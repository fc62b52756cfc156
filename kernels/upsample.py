"""One scale of Parallel WaveGAN's conditioning upsampler — nearest stretch by s, (2s+1)-tap smoothing
conv, optional LeakyReLU — in one pass, forward and backward, with no stretched intermediate.

The stretch and the smoothing conv fold into (s, 3) phase taps (see
``fastgan/references/upsample.py``): ``out[row, t*s + r] = act(sum_m taps[r, m] * c[row, t + first + m])``
with ``first`` = -1 (centred) or -2 (causal). A program owns BLOCK_R rows x BLOCK_T input frames x
all s phases (S_BLOCK = s rounded up to a power of two): it reads its three shifted frame vectors
once and writes the (BLOCK_T x s) output samples of each row as one contiguous run.

Backward, in one kernel: ``grad_c[t] = sum_m sum_r taps[r, m] g'[(t - first - m)*s + r]`` with
``g' = grad_out * act'(out)`` (the LeakyReLU's derivative read from the output's sign, slope >= 0),
and each program's share of ``grad_taps[r, m] = sum_{row, t} g'[t*s + r] c[t + first + m]`` into an
fp32 partial row, summed afterwards (deterministic: no atomics).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from fastgan.kernels._launch import TRITON_DTYPE_NAMES, KernelSpec, next_power_of_2

# Each program covers TILE_ELEMENTS output samples: BLOCK_R rows x BLOCK_T frames x S_BLOCK phases.
TILE_ELEMENTS = 4096
BLOCK_R = 4
S_BLOCKS = (4, 8, 16)
MAX_SCALE = S_BLOCKS[-1]  # larger scales take the reference (published configurations use 2 to 8)
FORWARD_WARPS = 4
BACKWARD_WARPS = 8  # the backward holds four (BLOCK_R x BLOCK_T x S_BLOCK) fp32 tiles at once


@triton.jit
def _stretch_conv1d_forward_kernel(
    c_ptr, taps_ptr, out_ptr,
    negative_slope,
    rows, channels, length, scale, first,
    stride_cb, stride_cc, stride_ct,
    BLOCK_R: tl.constexpr, BLOCK_T: tl.constexpr, S_BLOCK: tl.constexpr,
):  # fmt: skip
    """``taps`` (s, 3) fp32 contiguous; ``out`` (B, C, T*s) contiguous; a slope of 1.0 is no activation."""
    row = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    t = tl.program_id(1) * BLOCK_T + tl.arange(0, BLOCK_T)
    ph = tl.arange(0, S_BLOCK)
    row_ok = row < rows
    ph_ok = ph < scale
    row64 = row.to(tl.int64)
    c_rows = c_ptr + (row64 // channels) * stride_cb + (row64 % channels) * stride_cc
    acc = tl.zeros((BLOCK_R, BLOCK_T, S_BLOCK), dtype=tl.float32)
    for m in tl.static_range(3):
        w = tl.load(taps_ptr + ph * 3 + m, mask=ph_ok, other=0.0)
        source = t + first + m
        ok = (source >= 0) & (source < length)
        c = tl.load(c_rows[:, None] + source[None, :].to(tl.int64) * stride_ct, mask=row_ok[:, None] & ok[None, :],
                    other=0.0).to(tl.float32)  # fmt: skip
        acc += c[:, :, None] * w[None, None, :]
    acc = tl.where(acc > 0, acc, acc * tl.cast(negative_slope, tl.float32))
    out_length = length * scale
    j = t[:, None] * scale + ph[None, :]
    mask = row_ok[:, None, None] & ((t < length)[:, None] & ph_ok[None, :])[None, :, :]
    offsets = (row64 * out_length)[:, None, None] + j[None, :, :]
    tl.store(out_ptr + offsets, acc.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _stretch_conv1d_backward_kernel(
    g_ptr, out_ptr, c_ptr, taps_ptr, grad_c_ptr, partial_ptr,
    negative_slope,
    rows, channels, length, scale, first,
    stride_gb, stride_gc, stride_gt,
    stride_cb, stride_cc, stride_ct,
    BLOCK_R: tl.constexpr, BLOCK_T: tl.constexpr, S_BLOCK: tl.constexpr,
):  # fmt: skip
    """grad_c (B, C, T) contiguous; partial (programs, 3, S_BLOCK) fp32: this program's grad_taps share.

    ``out`` is the forward's output (contiguous), read for the LeakyReLU's derivative; without an
    activation the launcher passes grad_out itself and a slope of 1.0.
    """
    pid_r = tl.program_id(0)
    pid_t = tl.program_id(1)
    row = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    ph = tl.arange(0, S_BLOCK)
    row_ok = row < rows
    ph_ok = ph < scale
    row64 = row.to(tl.int64)
    batch_index = row64 // channels
    channel_index = row64 % channels
    g_rows = g_ptr + batch_index * stride_gb + channel_index * stride_gc
    c_rows = c_ptr + batch_index * stride_cb + channel_index * stride_cc
    out_rows = out_ptr + row64 * (length * scale)
    slope = tl.cast(negative_slope, tl.float32)
    grad_c = tl.zeros((BLOCK_R, BLOCK_T), dtype=tl.float32)
    for m in tl.static_range(3):
        w = tl.load(taps_ptr + ph * 3 + m, mask=ph_ok, other=0.0)
        # Frame t fed output frame u = t - first - m through tap m.
        u = t - first - m
        u_ok = (u >= 0) & (u < length)
        j = u[:, None] * scale + ph[None, :]
        mask = row_ok[:, None, None] & (u_ok[:, None] & ph_ok[None, :])[None, :, :]
        g = tl.load(g_rows[:, None, None] + j[None, :, :].to(tl.int64) * stride_gt, mask=mask, other=0.0)
        o = tl.load(out_rows[:, None, None] + j[None, :, :], mask=mask, other=0.0)
        g = g.to(tl.float32)
        g = tl.where(o.to(tl.float32) > 0, g, g * slope)
        grad_c += tl.sum(g * w[None, None, :], axis=2)
    t_ok = t < length
    mask_rt = row_ok[:, None] & t_ok[None, :]
    grad_c_offsets = (row64 * length)[:, None] + t[None, :]
    tl.store(grad_c_ptr + grad_c_offsets, grad_c.to(grad_c_ptr.dtype.element_ty), mask=mask_rt)

    # This program's share of grad_taps: its own output frames t against c[t + first + m].
    j = t[:, None] * scale + ph[None, :]
    mask = row_ok[:, None, None] & (t_ok[:, None] & ph_ok[None, :])[None, :, :]
    g = tl.load(g_rows[:, None, None] + j[None, :, :].to(tl.int64) * stride_gt, mask=mask, other=0.0)
    o = tl.load(out_rows[:, None, None] + j[None, :, :], mask=mask, other=0.0)
    g = g.to(tl.float32)
    g = tl.where(o.to(tl.float32) > 0, g, g * slope)
    program = (pid_r * tl.num_programs(1) + pid_t).to(tl.int64)
    for m in tl.static_range(3):
        source = t + first + m
        ok = (source >= 0) & (source < length)
        c = tl.load(c_rows[:, None] + source[None, :].to(tl.int64) * stride_ct, mask=row_ok[:, None] & ok[None, :],
                    other=0.0).to(tl.float32)  # fmt: skip
        share = tl.sum(tl.sum(g * c[:, :, None], axis=1), axis=0)  # (S_BLOCK,)
        tl.store(partial_ptr + (program * 3 + m) * S_BLOCK + ph, share)


def _tile(scale: int) -> tuple[int, int]:
    s_block = max(S_BLOCKS[0], next_power_of_2(scale))
    return TILE_ELEMENTS // (BLOCK_R * s_block), s_block


def _slope(negative_slope: float | None) -> float:
    return 1.0 if negative_slope is None else float(negative_slope)


def stretch_conv1d_forward(
    c: torch.Tensor, taps: torch.Tensor, causal: bool, negative_slope: float | None
) -> torch.Tensor:
    batch, channels, length = c.shape
    scale = taps.shape[0]
    out = torch.empty((batch, channels, length * scale), dtype=c.dtype, device=c.device)
    if out.numel() == 0:
        return out
    block_t, s_block = _tile(scale)
    rows = batch * channels
    grid = (triton.cdiv(rows, BLOCK_R), triton.cdiv(length, block_t))
    _stretch_conv1d_forward_kernel[grid](
        c, taps.detach().float().contiguous(), out, _slope(negative_slope),
        rows, channels, length, scale, -2 if causal else -1, *c.stride(),
        BLOCK_R=BLOCK_R, BLOCK_T=block_t, S_BLOCK=s_block, num_warps=FORWARD_WARPS,
    )  # fmt: skip
    return out


def stretch_conv1d_backward(
    grad_out: torch.Tensor,
    c: torch.Tensor,
    taps: torch.Tensor,
    out: torch.Tensor | None,
    causal: bool,
    negative_slope: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    batch, channels, length = c.shape
    scale = taps.shape[0]
    grad_c = torch.empty((batch, channels, length), dtype=c.dtype, device=c.device)
    if grad_c.numel() == 0:
        return grad_c, torch.zeros_like(taps)
    block_t, s_block = _tile(scale)
    rows = batch * channels
    grid = (triton.cdiv(rows, BLOCK_R), triton.cdiv(length, block_t))
    partial = torch.empty((grid[0] * grid[1], 3, s_block), dtype=torch.float32, device=c.device)
    # Without an activation, g' = grad_out: pass it as "out" too (where(g > 0, g, g * 1.0) == g).
    if negative_slope is None:
        grad_out = grad_out.contiguous()
    sign_source = grad_out if negative_slope is None else out.contiguous()
    _stretch_conv1d_backward_kernel[grid](
        grad_out, sign_source, c, taps.detach().float().contiguous(), grad_c, partial, _slope(negative_slope),
        rows, channels, length, scale, -2 if causal else -1, *grad_out.stride(), *c.stride(),
        BLOCK_R=BLOCK_R, BLOCK_T=block_t, S_BLOCK=s_block, num_warps=BACKWARD_WARPS,
    )  # fmt: skip
    grad_taps = partial.sum(0)[:, :scale].t().contiguous().to(taps.dtype)
    return grad_c, grad_taps


def aot_specs() -> list[KernelSpec]:
    """Every configuration the launchers above can use: one tile per power-of-two scale block, per dtype."""
    specs = []
    ints = ("rows", "channels", "length", "scale", "first")
    for s_block in S_BLOCKS:
        block_t = TILE_ELEMENTS // (BLOCK_R * s_block)
        constexprs = {"BLOCK_R": BLOCK_R, "BLOCK_T": block_t, "S_BLOCK": s_block}
        for type_name in TRITON_DTYPE_NAMES.values():
            pointer = f"*{type_name}"
            label = f"{type_name} BLOCK_R={BLOCK_R} BLOCK_T={block_t} S_BLOCK={s_block}"
            forward = {"c_ptr": pointer, "taps_ptr": "*fp32", "out_ptr": pointer, "negative_slope": "fp32",
                       **{name: "i32" for name in ints},
                       "stride_cb": "i32", "stride_cc": "i32", "stride_ct": "i32"}  # fmt: skip
            backward = {"g_ptr": pointer, "out_ptr": pointer, "c_ptr": pointer, "taps_ptr": "*fp32",
                        "grad_c_ptr": pointer, "partial_ptr": "*fp32", "negative_slope": "fp32",
                        **{name: "i32" for name in ints},
                        "stride_gb": "i32", "stride_gc": "i32", "stride_gt": "i32",
                        "stride_cb": "i32", "stride_cc": "i32", "stride_ct": "i32"}  # fmt: skip
            for kernel, signature, warps in (
                (_stretch_conv1d_forward_kernel, forward, FORWARD_WARPS),
                (_stretch_conv1d_backward_kernel, backward, BACKWARD_WARPS),
            ):
                signature = {**signature, **{k: "constexpr" for k in constexprs}}
                specs.append(KernelSpec(kernel, signature, constexprs, warps, 3, label))
    return specs
