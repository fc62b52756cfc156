"""Phase shuffle (WaveGAN) forward and backward, with an optional fused LeakyReLU.

Forward: ``out[b, c, t] = y[b, c, reflect(t - shift[b])]``. Backward gathers instead of
scattering: each input sample s collects the (at most two) output samples that read it, so the
kernel needs no atomics and its fp32 sums are exact and deterministic.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from fastgan.kernels._launch import TRITON_DTYPE_NAMES, KernelSpec, contiguous, next_power_of_2

# One tile holds TILE_ELEMENTS samples: BLOCK_T along time (a power of two in [16, 1024]) and
# TILE_ELEMENTS // BLOCK_T channels, so short late-layer signals still fill a program.
TILE_ELEMENTS = 4096
MIN_BLOCK_T, MAX_BLOCK_T = 16, 1024
NUM_WARPS = 8


@triton.jit
def _reflect(position, length):
    last = length - 1
    position = tl.where(position < 0, -position, position)
    return tl.where(position > last, 2 * last - position, position)


@triton.jit
def _phase_shuffle_forward_kernel(
    x_ptr,
    shifts_ptr,
    out_ptr,
    negative_slope,
    channels,
    length,
    stride_xb,
    stride_xc,
    stride_xt,
    HAS_SLOPE: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_T: tl.constexpr,
):
    pid_bc = tl.program_id(0)
    pid_t = tl.program_id(1)
    num_c_blocks = tl.cdiv(channels, BLOCK_C)
    b = (pid_bc // num_c_blocks).to(tl.int64)
    c = (pid_bc % num_c_blocks) * BLOCK_C + tl.arange(0, BLOCK_C)
    t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    mask = (c < channels)[:, None] & (t < length)[None, :]

    shift = tl.load(shifts_ptr + b)
    source = _reflect(t.to(tl.int64) - shift, length)
    x_offsets = b * stride_xb + c[:, None].to(tl.int64) * stride_xc + source[None, :] * stride_xt
    y = tl.load(x_ptr + x_offsets, mask=mask, other=0.0).to(tl.float32)
    if HAS_SLOPE:
        y = tl.where(y > 0, y, y * tl.cast(negative_slope, tl.float32))
    out_offsets = (b * channels + c[:, None]) * length + t[None, :]
    tl.store(out_ptr + out_offsets, y.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _phase_shuffle_backward_kernel(
    grad_out_ptr,
    x_ptr,
    shifts_ptr,
    grad_x_ptr,
    negative_slope,
    channels,
    length,
    stride_gb,
    stride_gc,
    stride_gt,
    stride_xb,
    stride_xc,
    stride_xt,
    HAS_SLOPE: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_T: tl.constexpr,
):
    pid_bc = tl.program_id(0)
    pid_t = tl.program_id(1)
    num_c_blocks = tl.cdiv(channels, BLOCK_C)
    b = (pid_bc // num_c_blocks).to(tl.int64)
    c = (pid_bc % num_c_blocks) * BLOCK_C + tl.arange(0, BLOCK_C)
    s = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    c_ok = (c < channels)[:, None]
    s_ok = s < length
    mask = c_ok & s_ok[None, :]

    shift = tl.load(shifts_ptr + b)
    s64 = s.to(tl.int64)
    last = length - 1
    row = grad_out_ptr + b * stride_gb + c[:, None].to(tl.int64) * stride_gc
    # Output t reads s directly when t - shift == s.
    t_direct = s64 + shift
    ok = s_ok & (t_direct >= 0) & (t_direct < length)
    grad = tl.load(row + t_direct[None, :] * stride_gt, mask=c_ok & ok[None, :], other=0.0).to(tl.float32)
    # ... through the left reflection when t - shift == -s (s > 0) ...
    t_left = shift - s64
    ok = s_ok & (s64 > 0) & (t_left >= 0) & (t_left < length)
    grad += tl.load(row + t_left[None, :] * stride_gt, mask=c_ok & ok[None, :], other=0.0).to(tl.float32)
    # ... and through the right one when t - shift == 2 * last - s (s < last).
    t_right = 2 * last - s64 + shift
    ok = s_ok & (s64 < last) & (t_right >= 0) & (t_right < length)
    grad += tl.load(row + t_right[None, :] * stride_gt, mask=c_ok & ok[None, :], other=0.0).to(tl.float32)

    if HAS_SLOPE:
        x_offsets = b * stride_xb + c[:, None].to(tl.int64) * stride_xc + s64[None, :] * stride_xt
        x = tl.load(x_ptr + x_offsets, mask=mask, other=0.0).to(tl.float32)
        grad = tl.where(x > 0, grad, grad * tl.cast(negative_slope, tl.float32))
    out_offsets = (b * channels + c[:, None]) * length + s[None, :]
    tl.store(grad_x_ptr + out_offsets, grad.to(grad_x_ptr.dtype.element_ty), mask=mask)


def _tile(length: int) -> tuple[int, int]:
    block_t = min(max(next_power_of_2(length), MIN_BLOCK_T), MAX_BLOCK_T)
    return TILE_ELEMENTS // block_t, block_t


def _grid(batch: int, channels: int, length: int) -> tuple[tuple[int, int], int, int]:
    block_c, block_t = _tile(length)
    return (batch * triton.cdiv(channels, block_c), triton.cdiv(length, block_t)), block_c, block_t


def phase_shuffle_forward(x: torch.Tensor, shifts: torch.Tensor, negative_slope: float | None) -> torch.Tensor:
    """Launch the forward kernel. ``x``: (B, C, T) float; ``shifts``: (B,) int64 with |shift| < T."""
    (shifts,) = contiguous(shifts)  # indexed by example (x: by its strides)
    batch, channels, length = x.shape
    out = torch.empty((batch, channels, length), dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    grid, block_c, block_t = _grid(batch, channels, length)
    _phase_shuffle_forward_kernel[grid](
        x, shifts, out, 0.0 if negative_slope is None else float(negative_slope),
        channels, length, *x.stride(),
        HAS_SLOPE=negative_slope is not None, BLOCK_C=block_c, BLOCK_T=block_t, num_warps=NUM_WARPS,
    )  # fmt: skip
    return out


def phase_shuffle_backward(
    grad_out: torch.Tensor, x: torch.Tensor | None, shifts: torch.Tensor, negative_slope: float | None
) -> torch.Tensor:
    """Launch the backward kernel; ``x`` is read only for the LeakyReLU's gradient."""
    (shifts,) = contiguous(shifts)  # indexed by example (grad_out and x: by their strides)
    batch, channels, length = grad_out.shape
    grad_x = torch.empty((batch, channels, length), dtype=grad_out.dtype, device=grad_out.device)
    if grad_x.numel() == 0:
        return grad_x
    has_slope = negative_slope is not None
    x_arg = x if has_slope else grad_out  # never read without a slope
    grid, block_c, block_t = _grid(batch, channels, length)
    _phase_shuffle_backward_kernel[grid](
        grad_out, x_arg, shifts, grad_x, float(negative_slope) if has_slope else 0.0,
        channels, length, *grad_out.stride(), *x_arg.stride(),
        HAS_SLOPE=has_slope, BLOCK_C=block_c, BLOCK_T=block_t, num_warps=NUM_WARPS,
    )  # fmt: skip
    return grad_x


def aot_specs() -> list[KernelSpec]:
    """Every configuration the launchers above can use."""
    specs = []
    block_t = MIN_BLOCK_T
    while block_t <= MAX_BLOCK_T:
        block_c = TILE_ELEMENTS // block_t
        for type_name in TRITON_DTYPE_NAMES.values():
            for has_slope in (False, True):
                constexprs = {"HAS_SLOPE": has_slope, "BLOCK_C": block_c, "BLOCK_T": block_t}
                label = f"{type_name} slope={int(has_slope)} BLOCK_C={block_c} BLOCK_T={block_t}"
                forward = {
                    "x_ptr": f"*{type_name}", "shifts_ptr": "*i64", "out_ptr": f"*{type_name}",
                    "negative_slope": "fp32", "channels": "i32", "length": "i32",
                    "stride_xb": "i32", "stride_xc": "i32", "stride_xt": "i32",
                }  # fmt: skip
                backward = {
                    "grad_out_ptr": f"*{type_name}", "x_ptr": f"*{type_name}", "shifts_ptr": "*i64",
                    "grad_x_ptr": f"*{type_name}", "negative_slope": "fp32", "channels": "i32",
                    "length": "i32", "stride_gb": "i32", "stride_gc": "i32", "stride_gt": "i32",
                    "stride_xb": "i32", "stride_xc": "i32", "stride_xt": "i32",
                }  # fmt: skip
                for kernel, signature in (
                    (_phase_shuffle_forward_kernel, forward),
                    (_phase_shuffle_backward_kernel, backward),
                ):
                    signature = {**signature, **{k: "constexpr" for k in constexprs}}
                    specs.append(KernelSpec(kernel, signature, constexprs, NUM_WARPS, 3, label))
        block_t *= 2
    return specs
