"""``fastgan::stretch_conv1d`` and its backward: one scale of Parallel WaveGAN's conditioning upsampler.

Nearest-neighbour stretch by s and the (2s+1)-tap smoothing conv in one pass, given the smoothing
conv folded into (s, 3) phase taps (:func:`fastgan.references.upsample.smoothing_to_taps`), with an
optional output LeakyReLU (slope >= 0, so its derivative can be read from the output).
"""

from __future__ import annotations

import torch

from fastgan import _backend
from fastgan._checks import FLOAT_DTYPES, check_same_device, check_tensor
from fastgan.references.upsample import stretch_conv1d_backward_reference, stretch_conv1d_reference

OP = "stretch_conv1d"


def _kernels():
    from fastgan.kernels import upsample  # triton is imported only when a kernel runs

    return upsample


def check_inputs(c: torch.Tensor, taps: torch.Tensor, negative_slope: float | None) -> None:
    """Shape, dtype and device checks; cheap, so they run at trace time too."""
    check_tensor(OP, "c", c, ndim=3, dtypes=FLOAT_DTYPES)
    check_tensor(OP, "taps", taps, ndim=2, dtypes=FLOAT_DTYPES)
    check_same_device(OP, c=c, taps=taps)
    if taps.shape[1] != 3 or taps.shape[0] < 1:
        raise ValueError(f"fastgan::{OP}: taps must have shape (scale, 3) with scale >= 1, got {tuple(taps.shape)}")
    if negative_slope is not None and not negative_slope >= 0:
        raise ValueError(
            f"fastgan::{OP}: negative_slope must be >= 0 (its gradient is read from the output's sign), "
            f"got {negative_slope}"
        )


def _use_kernel(c: torch.Tensor, taps: torch.Tensor) -> bool:
    return _backend.use_triton(c, OP) and taps.shape[0] <= _kernels().MAX_SCALE


@torch.library.custom_op("fastgan::stretch_conv1d", mutates_args=())
def stretch_conv1d_op(c: torch.Tensor, taps: torch.Tensor, causal: bool, negative_slope: float | None) -> torch.Tensor:
    check_inputs(c, taps, negative_slope)
    if _use_kernel(c, taps):
        return _kernels().stretch_conv1d_forward(c, taps, causal, negative_slope)
    return stretch_conv1d_reference(c, taps, causal, negative_slope)


@stretch_conv1d_op.register_fake
def _(c, taps, causal, negative_slope):
    check_inputs(c, taps, negative_slope)
    return c.new_empty((c.shape[0], c.shape[1], c.shape[2] * taps.shape[0]))


@torch.library.custom_op("fastgan::stretch_conv1d_backward", mutates_args=())
def stretch_conv1d_backward_op(
    grad_out: torch.Tensor,
    c: torch.Tensor,
    taps: torch.Tensor,
    out: torch.Tensor | None,
    causal: bool,
    negative_slope: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    if _use_kernel(grad_out, taps):
        return _kernels().stretch_conv1d_backward(grad_out, c, taps, out, causal, negative_slope)
    return stretch_conv1d_backward_reference(grad_out, c, taps, out, causal, negative_slope)


@stretch_conv1d_backward_op.register_fake
def _(grad_out, c, taps, out, causal, negative_slope):
    return c.new_empty(c.shape), taps.new_empty(taps.shape)


def _setup_context(ctx, inputs, output):
    c, taps, causal, negative_slope = inputs
    ctx.causal = causal
    ctx.negative_slope = negative_slope
    # The output is kept only for the LeakyReLU's derivative.
    ctx.save_for_backward(c, taps, output if negative_slope is not None else None)


def _backward(ctx, grad_out):
    c, taps, out = ctx.saved_tensors
    grad_c, grad_taps = stretch_conv1d_backward_op(grad_out, c, taps, out, ctx.causal, ctx.negative_slope)
    return grad_c, grad_taps, None, None


stretch_conv1d_op.register_autograd(_backward, setup_context=_setup_context)


def stretch_conv1d(c: torch.Tensor, taps: torch.Tensor, causal: bool, negative_slope: float | None) -> torch.Tensor:
    """The functional form's entry: the custom op, or — eagerly, where the reference runs anyway — the reference itself.

    Outside torch.compile and without autograd (inference), a tensor that takes the reference (CPU
    without the interpreter, or ``FASTGAN_BACKEND=torch``) calls it directly after the same checks,
    skipping the custom op's dispatch. With autograd the op runs: its explicit backward beats
    torch's autograd through the reference's broadcasts. The values are the op's reference path's.
    """
    if not _backend.needs_grad(c, taps) and _backend.reference_runs_eagerly(c, OP):
        check_inputs(c, taps, negative_slope)
        return stretch_conv1d_reference(c, taps, causal, negative_slope)
    return stretch_conv1d_op(c, taps, causal, negative_slope)
