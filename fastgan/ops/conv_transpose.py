"""``fastgan::conv_transpose1d`` and its backward: custom ops dispatching to Triton or the reference."""

from __future__ import annotations

import torch

from fastgan import _backend
from fastgan._checks import FLOAT_DTYPES, check_same_device, check_tensor
from fastgan.references.conv_transpose import (
    conv_transpose1d_backward_reference,
    conv_transpose1d_output_length,
    conv_transpose1d_reference,
)

OP = "conv_transpose1d"


def _kernels():
    from fastgan.kernels import conv_transpose  # triton is imported only when a kernel runs

    return conv_transpose


def check_inputs(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    padding: int,
    output_padding: int,
    negative_slope: float | None,
) -> int:
    """Shape, dtype, device and geometry checks; returns the output length. Cheap: runs at trace time too."""
    check_tensor(OP, "x", x, ndim=3, dtypes=FLOAT_DTYPES)
    check_tensor(OP, "weight", weight, ndim=3, dtypes=(x.dtype,))
    tensors = {"x": x, "weight": weight}
    if bias is not None:
        check_tensor(OP, "bias", bias, ndim=1, dtypes=(x.dtype,))
        tensors["bias"] = bias
    check_same_device(OP, **tensors)
    if weight.shape[0] != x.shape[1]:
        raise ValueError(
            f"fastgan::{OP}: weight must have shape (C_in, C_out, K) with C_in = x.shape[1] = {x.shape[1]} "
            f"(groups=1), got {tuple(weight.shape)}"
        )
    if bias is not None and bias.shape[0] != weight.shape[1]:
        raise ValueError(
            f"fastgan::{OP}: bias must have shape (C_out,) = ({weight.shape[1]},), got {tuple(bias.shape)}"
        )
    if weight.shape[1] == 0 or weight.shape[2] == 0:
        raise ValueError(f"fastgan::{OP}: weight must have C_out >= 1 and K >= 1, got {tuple(weight.shape)}")
    if stride < 1:
        raise ValueError(f"fastgan::{OP}: stride must be >= 1, got {stride}")
    if padding < 0:
        raise ValueError(f"fastgan::{OP}: padding must be >= 0, got {padding}")
    if not 0 <= output_padding < stride:
        raise ValueError(f"fastgan::{OP}: output_padding must be in [0, stride={stride}), got {output_padding}")
    if negative_slope is not None and not negative_slope == negative_slope:
        raise ValueError(f"fastgan::{OP}: negative_slope must be a number, got {negative_slope}")
    if x.shape[2] == 0:
        raise ValueError(f"fastgan::{OP}: x must have a non-empty time axis, got shape {tuple(x.shape)}")
    length = conv_transpose1d_output_length(x.shape[2], weight.shape[2], stride, padding, output_padding)
    if length < 1:
        raise ValueError(
            f"fastgan::{OP}: output length (L-1)*stride - 2*padding + K + output_padding = {length} < 1 "
            f"for L={x.shape[2]}, stride={stride}, padding={padding}, K={weight.shape[2]}, "
            f"output_padding={output_padding}"
        )
    return length


@torch.library.custom_op("fastgan::conv_transpose1d", mutates_args=())
def conv_transpose1d_op(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    padding: int,
    output_padding: int,
    negative_slope: float | None,
) -> torch.Tensor:
    check_inputs(x, weight, bias, stride, padding, output_padding, negative_slope)
    if _backend.use_triton(x, OP):
        return _kernels().conv_transpose1d_forward(x, weight, bias, stride, padding, output_padding, negative_slope)
    out = conv_transpose1d_reference(x, weight, bias, stride, padding, output_padding, negative_slope)
    return out.contiguous()


@conv_transpose1d_op.register_fake
def _(x, weight, bias, stride, padding, output_padding, negative_slope):
    length = check_inputs(x, weight, bias, stride, padding, output_padding, negative_slope)
    return x.new_empty((x.shape[0], weight.shape[1], length))


@torch.library.custom_op("fastgan::conv_transpose1d_backward", mutates_args=())
def conv_transpose1d_backward_op(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    stride: int,
    padding: int,
    output_padding: int,
    negative_slope: float | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_x, grad_weight, grad_bias); grad_bias is always computed (one reduction of grad_out)."""
    if _backend.use_triton(grad_out, OP):
        return _kernels().conv_transpose1d_backward(
            grad_out, x, weight, stride, padding, output_padding, negative_slope
        )
    return conv_transpose1d_backward_reference(grad_out, x, weight, stride, padding, output_padding, negative_slope)


@conv_transpose1d_backward_op.register_fake
def _(grad_out, x, weight, stride, padding, output_padding, negative_slope):
    return x.new_empty(x.shape), weight.new_empty(weight.shape), weight.new_empty((weight.shape[1],))


def _setup_context(ctx, inputs, output):
    x, weight, bias, stride, padding, output_padding, negative_slope = inputs
    ctx.geometry = (stride, padding, output_padding, negative_slope)
    ctx.has_bias = bias is not None
    ctx.save_for_backward(x, weight)


def _backward(ctx, grad_out):
    x, weight = ctx.saved_tensors
    grad_x, grad_weight, grad_bias = conv_transpose1d_backward_op(grad_out, x, weight, *ctx.geometry)
    return grad_x, grad_weight, grad_bias if ctx.has_bias else None, None, None, None, None


conv_transpose1d_op.register_autograd(_backward, setup_context=_setup_context)


def conv_transpose1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    padding: int,
    output_padding: int,
    negative_slope: float | None,
) -> torch.Tensor:
    """The functional form's entry: the custom op, or — eagerly, where the reference runs anyway — the reference itself.

    Outside torch.compile, a tensor that takes the reference (CPU without the interpreter, or
    ``FASTGAN_BACKEND=torch``) calls it directly after the same checks: its plain torch ops get
    torch's own autograd, which skips the custom op's dispatch (~70 µs a call on CPU) and its
    backward's recomputation of the LeakyReLU. The values are the op's reference path's.
    """
    if _backend.reference_runs_eagerly(x, OP):
        check_inputs(x, weight, bias, stride, padding, output_padding, negative_slope)
        return conv_transpose1d_reference(x, weight, bias, stride, padding, output_padding, negative_slope)
    return conv_transpose1d_op(x, weight, bias, stride, padding, output_padding, negative_slope)
