"""Transposed 1-D convolution with a fused input LeakyReLU, forward and backward, as implicit GEMMs.

Polyphase forward: output sample ``j`` with ``j + padding = q * s + ph`` (phase ``ph`` in [0, s)) reads
the taps ``k = ph + m * s`` at inputs ``i = q - m``, so each phase is an ordinary conv over the
input with every s-th tap. A program owns (batch, BLOCK_CO output channels, BLOCK_Q values of q,
one phase): it accumulates ``W_k (CO x CI) @ leaky(x)[:, q - m] (CI x Q)`` with ``tl.dot`` in fp32
over taps m and input-channel blocks, adds the bias and writes the phase's samples (every s-th)
straight into the interleaved output — no zero-stuffed input, no per-phase buffers; the s
programs of a tile write interleaved samples of the same lines, which L2 merges.

Backward:
* input gradient — a strided conv: ``grad_y[ci, i] = sum_{k, co} w[ci, co, k] g[co, i*s + k - p]``,
  a GEMM per tap over output-channel blocks, times the LeakyReLU's derivative (from x) on store;
* weight gradient — ``grad_w[ci, co, k] = sum_{b, i} leaky(x)[b, ci, i] g[b, co, i*s + k - p]``, a
  GEMM per tap reducing over (batch x time), split over that axis into fp32 partials when the tile
  grid alone would not fill the GPU, summed afterwards (deterministic: no atomics);
* bias gradient — ``grad_out`` summed over batch and time in fp32 (one torch reduction).

No LeakyReLU is the slope 1.0 (``where(y > 0, y, y * 1.0)`` is exact), so one kernel serves both.
On CUDA, fp16/bf16 tiles go into tensor-core dots (fp32 accumulation); fp32 tiles into 3xTF32
dots (each operand split into TF32 high and low parts: about fp32 accuracy, not TF32's 10 bits). Through the interpreter (CPU tests) every dot runs in fp32, as its bf16 dot is unreliable.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from fastgan.kernels._launch import TRITON_DTYPE_NAMES, KernelSpec, half_precision_dots

# Tile shapes per kernel and dtype class: (constexpr blocks, num_warps, num_stages). fp32 dots run
# as 3xTF32 (three tensor-core products per tile), which holds more registers, so fp32 takes
# thinner K-slices and more warps.
CONFIGS = {
    # Forward: a (BLOCK_CO x BLOCK_Q) accumulator per phase, BLOCK_CI-deep dots.
    ("forward", "fp32"): ({"BLOCK_CO": 64, "BLOCK_Q": 64, "BLOCK_CI": 16}, 8, 2),
    ("forward", "half"): ({"BLOCK_CO": 64, "BLOCK_Q": 64, "BLOCK_CI": 32}, 4, 3),
    # ... and for C_out <= 32 (the last upsampling layers): no half-empty channel tiles.
    ("forward_narrow", "fp32"): ({"BLOCK_CO": 32, "BLOCK_Q": 64, "BLOCK_CI": 16}, 4, 2),
    ("forward_narrow", "half"): ({"BLOCK_CO": 32, "BLOCK_Q": 64, "BLOCK_CI": 32}, 8, 3),
    # Input gradient: a (BLOCK_CI x BLOCK_T) accumulator, BLOCK_CO-deep dots.
    ("input", "fp32"): ({"BLOCK_CI": 64, "BLOCK_T": 64, "BLOCK_CO": 16}, 8, 2),
    ("input", "half"): ({"BLOCK_CI": 64, "BLOCK_T": 64, "BLOCK_CO": 32}, 4, 3),
    # Weight gradient: a (BLOCK_CI x BLOCK_CO) accumulator per tap, BLOCK_N-deep dots over (batch, time).
    ("weight", "fp32"): ({"BLOCK_CI": 64, "BLOCK_CO": 64, "BLOCK_N": 16}, 8, 2),
    ("weight", "half"): ({"BLOCK_CI": 64, "BLOCK_CO": 64, "BLOCK_N": 32}, 4, 3),
}


def _config(kind: str, dtype: torch.dtype) -> tuple[dict, int, int]:
    return CONFIGS[(kind, "fp32" if dtype == torch.float32 else "half")]


# Split the weight gradient's reduction until about this many programs run (2 per H100 SM).
TARGET_PROGRAMS = 264


@triton.jit
def _leaky(v, negative_slope):
    return tl.where(v > 0, v, v * tl.cast(negative_slope, tl.float32))


@triton.jit
def _dot(a, b, acc, HALF_DOT: tl.constexpr, dot_ty: tl.constexpr):
    """acc + a @ b in fp32: fp16/bf16 tensor-core operands, or fp32 operands as 3xTF32 (about fp32 accuracy)."""
    if HALF_DOT:
        return tl.dot(a.to(dot_ty), b.to(dot_ty), acc)
    return tl.dot(a, b, acc, input_precision="tf32x3")


@triton.jit
def _conv_transpose1d_forward_kernel(
    x_ptr, wt_ptr, bias_ptr, out_ptr,
    negative_slope,
    c_in, c_out, length, out_length, kernel_size, stride, padding, q_first,
    stride_xb, stride_xc, stride_xt,
    HALF_DOT: tl.constexpr,
    BLOCK_CO: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_CI: tl.constexpr,
):  # fmt: skip
    """``wt`` is the weight as (K, C_out, C_in), contiguous; ``out`` (B, C_out, L_out), contiguous."""
    pid_q = tl.program_id(0)  # time on the unbounded grid axis (axes 1 and 2 stop at 65535)
    pid_bc = tl.program_id(1)
    num_co_blocks = tl.cdiv(c_out, BLOCK_CO)
    b = (pid_bc // num_co_blocks).to(tl.int64)
    co = (pid_bc % num_co_blocks) * BLOCK_CO + tl.arange(0, BLOCK_CO)
    q = q_first + pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
    co_ok = co < c_out
    ci_range = tl.arange(0, BLOCK_CI)
    bias = tl.load(bias_ptr + co, mask=co_ok, other=0.0).to(tl.float32)
    x_row = x_ptr + b * stride_xb
    out_rows = out_ptr + (b * c_out + co.to(tl.int64))[:, None] * out_length
    dot_ty = out_ptr.dtype.element_ty
    ph = tl.program_id(2)
    acc = tl.zeros((BLOCK_CO, BLOCK_Q), dtype=tl.float32)
    # Taps k = ph, ph + s, ... < K (none when ph >= K: the phase is the bias alone).
    for m in range(0, (kernel_size - ph + stride - 1) // stride):
        k = ph + m * stride
        i = q - m
        i_ok = (i >= 0) & (i < length)
        w_ptrs = wt_ptr + (k * c_out + co).to(tl.int64)[:, None] * c_in + ci_range[None, :]
        x_ptrs = x_row + ci_range[:, None].to(tl.int64) * stride_xc + i[None, :].to(tl.int64) * stride_xt
        for ci0 in range(0, c_in, BLOCK_CI):
            ci_ok = (ci0 + ci_range) < c_in
            w = tl.load(w_ptrs, mask=co_ok[:, None] & ci_ok[None, :], other=0.0).to(tl.float32)
            y = tl.load(x_ptrs, mask=ci_ok[:, None] & i_ok[None, :], other=0.0).to(tl.float32)
            acc = _dot(w, _leaky(y, negative_slope), acc, HALF_DOT, dot_ty)
            w_ptrs += BLOCK_CI
            x_ptrs += BLOCK_CI * stride_xc
    j = q * stride + ph - padding
    j_ok = (j >= 0) & (j < out_length)
    result = acc + bias[:, None]
    tl.store(out_rows + j[None, :], result.to(dot_ty), mask=co_ok[:, None] & j_ok[None, :])


@triton.jit
def _conv_transpose1d_backward_input_kernel(
    g_ptr, x_ptr, wt_ptr, grad_x_ptr,
    negative_slope,
    c_in, c_out, length, out_length, kernel_size, stride, padding,
    stride_gb, stride_gc, stride_gt,
    stride_xb, stride_xc, stride_xt,
    HALF_DOT: tl.constexpr,
    BLOCK_CI: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_CO: tl.constexpr,
):  # fmt: skip
    """grad_x[b, ci, i] = leaky'(x) * sum_{k, co} w[ci, co, k] g[b, co, i*s + k - p]; grad_x contiguous."""
    pid_t = tl.program_id(0)  # time on the unbounded grid axis
    pid_bc = tl.program_id(1)
    num_ci_blocks = tl.cdiv(c_in, BLOCK_CI)
    b = (pid_bc // num_ci_blocks).to(tl.int64)
    ci = (pid_bc % num_ci_blocks) * BLOCK_CI + tl.arange(0, BLOCK_CI)
    i = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    ci_ok = ci < c_in
    i_ok = i < length
    co_range = tl.arange(0, BLOCK_CO)
    g_row = g_ptr + b * stride_gb
    dot_ty = grad_x_ptr.dtype.element_ty
    acc = tl.zeros((BLOCK_CI, BLOCK_T), dtype=tl.float32)
    for k in range(0, kernel_size):
        j = i * stride + k - padding
        j_ok = i_ok & (j >= 0) & (j < out_length)
        for co0 in range(0, c_out, BLOCK_CO):
            co = co0 + co_range
            co_ok = co < c_out
            # W[ci, co] = wt[k, co, ci]
            w_offsets = (k * c_out + co).to(tl.int64)[None, :] * c_in + ci[:, None]
            w = tl.load(wt_ptr + w_offsets, mask=ci_ok[:, None] & co_ok[None, :], other=0.0).to(tl.float32)
            g_offsets = co[:, None].to(tl.int64) * stride_gc + j[None, :].to(tl.int64) * stride_gt
            g = tl.load(g_row + g_offsets, mask=co_ok[:, None] & j_ok[None, :], other=0.0).to(tl.float32)
            acc = _dot(w, g, acc, HALF_DOT, dot_ty)
    mask = ci_ok[:, None] & i_ok[None, :]
    x_offsets = b * stride_xb + ci[:, None].to(tl.int64) * stride_xc + i[None, :].to(tl.int64) * stride_xt
    x = tl.load(x_ptr + x_offsets, mask=mask, other=0.0).to(tl.float32)
    acc = tl.where(x > 0, acc, acc * tl.cast(negative_slope, tl.float32))
    out_offsets = (b * c_in + ci.to(tl.int64))[:, None] * length + i[None, :]
    tl.store(grad_x_ptr + out_offsets, acc.to(dot_ty), mask=mask)


@triton.jit
def _conv_transpose1d_backward_weight_kernel(
    g_ptr, x_ptr, partial_ptr,
    negative_slope,
    batch, c_in, c_out, length, out_length, kernel_size, stride, padding, chunk,
    stride_gb, stride_gc, stride_gt,
    stride_xb, stride_xc, stride_xt,
    HALF_DOT: tl.constexpr,
    BLOCK_CI: tl.constexpr, BLOCK_CO: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """partial[split, ci, co, k] = sum over the split's (b, i) of leaky(x)[b, ci, i] g[b, co, i*s + k - p].

    ``chunk`` (a multiple of BLOCK_N) is the number of (b, i) pairs per split; partial is fp32.
    """
    pid_cc = tl.program_id(0)
    k = tl.program_id(1)
    split = tl.program_id(2)
    num_co_blocks = tl.cdiv(c_out, BLOCK_CO)
    ci = (pid_cc // num_co_blocks) * BLOCK_CI + tl.arange(0, BLOCK_CI)
    co = (pid_cc % num_co_blocks) * BLOCK_CO + tl.arange(0, BLOCK_CO)
    ci_ok = ci < c_in
    co_ok = co < c_out
    n_range = tl.arange(0, BLOCK_N)
    total = batch * length
    n_start = split * chunk
    n_stop = tl.minimum(n_start + chunk, total)
    dot_ty = x_ptr.dtype.element_ty
    acc = tl.zeros((BLOCK_CI, BLOCK_CO), dtype=tl.float32)
    for n0 in range(n_start, n_stop, BLOCK_N):
        n = n0 + n_range
        n_ok = n < n_stop
        b = (n // length).to(tl.int64)
        i = n % length
        x_offsets = b[None, :] * stride_xb + ci[:, None].to(tl.int64) * stride_xc + i[None, :].to(tl.int64) * stride_xt
        y = tl.load(x_ptr + x_offsets, mask=ci_ok[:, None] & n_ok[None, :], other=0.0).to(tl.float32)
        j = i * stride + k - padding
        j_ok = n_ok & (j >= 0) & (j < out_length)
        g_offsets = b[:, None] * stride_gb + co[None, :].to(tl.int64) * stride_gc + j[:, None].to(tl.int64) * stride_gt
        g = tl.load(g_ptr + g_offsets, mask=j_ok[:, None] & co_ok[None, :], other=0.0).to(tl.float32)
        acc = _dot(_leaky(y, negative_slope), g, acc, HALF_DOT, dot_ty)
    offsets = ((split * c_in + ci.to(tl.int64))[:, None] * c_out + co[None, :]) * kernel_size + k
    tl.store(partial_ptr + offsets, acc, mask=ci_ok[:, None] & co_ok[None, :])


def _check_grid(kernel: str, grid: tuple[int, ...]) -> None:
    """CUDA grids stop at 65535 programs along axes 1 and 2: say so instead of failing inside the launch."""
    if any(n > 65535 for n in grid[1:]):
        raise ValueError(
            f"fastgan::conv_transpose1d: the {kernel} kernel's grid {grid} passes 65535 along axis 1 or 2 "
            "(batch x channel blocks, or the stride); split the batch"
        )


def _slope(negative_slope: float | None) -> float:
    return 1.0 if negative_slope is None else float(negative_slope)


def _tap_major(weight: torch.Tensor) -> torch.Tensor:
    """(C_in, C_out, K) -> (K, C_out, C_in), contiguous: every tap's (C_out x C_in) tile is one row-major block."""
    return weight.permute(2, 1, 0).contiguous()


def conv_transpose1d_forward(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    padding: int,
    output_padding: int,
    negative_slope: float | None,
) -> torch.Tensor:
    batch, c_in, length = x.shape
    _, c_out, kernel_size = weight.shape
    out_length = (length - 1) * stride - 2 * padding + kernel_size + output_padding
    out = torch.empty((batch, c_out, out_length), dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    if bias is None:
        bias = torch.zeros(c_out, dtype=x.dtype, device=x.device)
    q_first = padding // stride
    q_count = (out_length - 1 + padding) // stride - q_first + 1
    blocks, warps, stages = _config("forward_narrow" if c_out <= 32 else "forward", x.dtype)
    # One program per (batch x output-channel block, block of q, phase): stride times the tiles of
    # a phase loop, which batch-1 upsampling layers need to fill the GPU.
    grid = (triton.cdiv(q_count, blocks["BLOCK_Q"]), batch * triton.cdiv(c_out, blocks["BLOCK_CO"]), stride)
    _check_grid("forward", grid)
    _conv_transpose1d_forward_kernel[grid](
        x, _tap_major(weight), bias.contiguous(), out, _slope(negative_slope),
        c_in, c_out, length, out_length, kernel_size, stride, padding, q_first, *x.stride(),
        HALF_DOT=half_precision_dots(x), **blocks, num_warps=warps, num_stages=stages,
    )  # fmt: skip
    return out


def _weight_grad_splits(num_tiles: int, total: int, block_n: int) -> tuple[int, int]:
    """(splits, chunk): split the (batch x time) reduction so about TARGET_PROGRAMS programs run."""
    max_splits = triton.cdiv(total, block_n)
    splits = max(1, min(max_splits, triton.cdiv(TARGET_PROGRAMS, num_tiles)))
    chunk = triton.cdiv(triton.cdiv(total, splits), block_n) * block_n
    return triton.cdiv(total, chunk), chunk


def conv_transpose1d_backward(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    stride: int,
    padding: int,
    output_padding: int,
    negative_slope: float | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    batch, c_in, length = x.shape
    _, c_out, kernel_size = weight.shape
    out_length = grad_out.shape[2]
    slope = _slope(negative_slope)
    half_dot = half_precision_dots(x)
    wt = _tap_major(weight)

    grad_x = torch.empty((batch, c_in, length), dtype=x.dtype, device=x.device)
    blocks, warps, stages = _config("input", x.dtype)
    grid = (triton.cdiv(length, blocks["BLOCK_T"]), batch * triton.cdiv(c_in, blocks["BLOCK_CI"]))
    _check_grid("input gradient", grid)
    _conv_transpose1d_backward_input_kernel[grid](
        grad_out, x, wt, grad_x, slope,
        c_in, c_out, length, out_length, kernel_size, stride, padding,
        *grad_out.stride(), *x.stride(),
        HALF_DOT=half_dot, **blocks, num_warps=warps, num_stages=stages,
    )  # fmt: skip

    blocks, warps, stages = _config("weight", x.dtype)
    num_tiles = triton.cdiv(c_in, blocks["BLOCK_CI"]) * triton.cdiv(c_out, blocks["BLOCK_CO"])
    splits, chunk = _weight_grad_splits(num_tiles * kernel_size, batch * length, blocks["BLOCK_N"])
    partial = torch.empty((splits, c_in, c_out, kernel_size), dtype=torch.float32, device=x.device)
    _conv_transpose1d_backward_weight_kernel[(num_tiles, kernel_size, splits)](
        grad_out, x, partial, slope,
        batch, c_in, c_out, length, out_length, kernel_size, stride, padding, chunk,
        *grad_out.stride(), *x.stride(),
        HALF_DOT=half_dot, **blocks, num_warps=warps, num_stages=stages,
    )  # fmt: skip
    grad_weight = (partial[0] if splits == 1 else partial.sum(0)).to(weight.dtype)
    grad_bias = grad_out.sum(dim=(0, 2), dtype=torch.float32).to(weight.dtype)
    return grad_x, grad_weight, grad_bias


def _ints(*names: str) -> dict[str, str]:
    return {name: "i32" for name in names}


def _strides(prefix: str) -> dict[str, str]:
    return _ints(f"stride_{prefix}b", f"stride_{prefix}c", f"stride_{prefix}t")


def aot_specs() -> list[KernelSpec]:
    """Every configuration the launchers above can use: one tile shape per kernel, per dtype."""
    specs = []
    for dtype, type_name in TRITON_DTYPE_NAMES.items():
        half_dot = dtype != torch.float32  # on CUDA
        pointer = f"*{type_name}"
        geometry = _ints("c_in", "c_out", "length", "out_length", "kernel_size", "stride", "padding")
        forward = {"x_ptr": pointer, "wt_ptr": pointer, "bias_ptr": pointer, "out_ptr": pointer,
                   "negative_slope": "fp32", **geometry, "q_first": "i32", **_strides("x")}  # fmt: skip
        kernels = [
            (_conv_transpose1d_forward_kernel, forward, "forward"),
            (_conv_transpose1d_forward_kernel, forward, "forward_narrow"),
            (
                _conv_transpose1d_backward_input_kernel,
                {"g_ptr": pointer, "x_ptr": pointer, "wt_ptr": pointer, "grad_x_ptr": pointer,
                 "negative_slope": "fp32", **geometry, **_strides("g"), **_strides("x")},
                "input",
            ),
            (
                _conv_transpose1d_backward_weight_kernel,
                {"g_ptr": pointer, "x_ptr": pointer, "partial_ptr": "*fp32", "negative_slope": "fp32",
                 "batch": "i32", **geometry, "chunk": "i32", **_strides("g"), **_strides("x")},
                "weight",
            ),
        ]  # fmt: skip
        for kernel, signature, kind in kernels:
            blocks, warps, stages = _config(kind, dtype)
            constexprs = {"HALF_DOT": half_dot, **blocks}
            signature = {**signature, **{name: "constexpr" for name in constexprs}}
            label = f"{type_name} " + " ".join(f"{k}={v}" for k, v in blocks.items())
            specs.append(KernelSpec(kernel, signature, constexprs, warps, stages, label))
    return specs
