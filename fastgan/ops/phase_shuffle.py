"""``fastgan::phase_shuffle`` and its backward: custom ops dispatching to Triton or the reference."""

from __future__ import annotations

import torch

from fastgan import _backend
from fastgan._checks import FLOAT_DTYPES, check_same_device, check_tensor
from fastgan.references.phase_shuffle import phase_shuffle_backward_reference, phase_shuffle_reference

OP = "phase_shuffle"


def _kernels():
    from fastgan.kernels import phase_shuffle  # triton is imported only when a kernel runs

    return phase_shuffle


def check_inputs(x: torch.Tensor, shifts: torch.Tensor) -> None:
    """Shape, dtype and device checks; cheap, so they run at trace time too."""
    check_tensor(OP, "x", x, ndim=3, dtypes=FLOAT_DTYPES)
    check_tensor(OP, "shifts", shifts, ndim=1, dtypes=(torch.int64,))
    check_same_device(OP, x=x, shifts=shifts)
    if shifts.shape[0] != x.shape[0]:
        raise ValueError(f"fastgan::{OP}: shifts must have shape (batch,) = ({x.shape[0]},), got {tuple(shifts.shape)}")


def check_shift_range(shifts: torch.Tensor, length: int) -> None:
    """|shift| < T, or reflection would read outside the signal. Reads the values (a sync on CUDA)."""
    if shifts.numel() and int(shifts.abs().max()) >= length:
        raise ValueError(
            f"fastgan::{OP}: every |shift| must be < the signal length {length}, "
            f"got shifts {shifts.tolist() if shifts.numel() <= 16 else 'with max |shift| ' + str(int(shifts.abs().max()))}"
        )


@torch.library.custom_op("fastgan::phase_shuffle", mutates_args=())
def phase_shuffle_op(
    x: torch.Tensor, shifts: torch.Tensor, negative_slope: float | None, check_shifts: bool
) -> torch.Tensor:
    check_inputs(x, shifts)
    if check_shifts:
        check_shift_range(shifts, x.shape[2])
    if _backend.use_triton(x, OP):
        return _kernels().phase_shuffle_forward(x, shifts, negative_slope)
    return phase_shuffle_reference(x, shifts, negative_slope).contiguous()


@phase_shuffle_op.register_fake
def _(x, shifts, negative_slope, check_shifts):
    check_inputs(x, shifts)
    return x.new_empty(x.shape)


@torch.library.custom_op("fastgan::phase_shuffle_backward", mutates_args=())
def phase_shuffle_backward_op(
    grad_out: torch.Tensor, x: torch.Tensor | None, shifts: torch.Tensor, negative_slope: float | None
) -> torch.Tensor:
    if _backend.use_triton(grad_out, OP):
        return _kernels().phase_shuffle_backward(grad_out, x, shifts, negative_slope)
    if negative_slope is None:
        x = grad_out  # only its shape is read
    return phase_shuffle_backward_reference(grad_out, x, shifts, negative_slope)


@phase_shuffle_backward_op.register_fake
def _(grad_out, x, shifts, negative_slope):
    return grad_out.new_empty(grad_out.shape)


def _setup_context(ctx, inputs, output):
    x, shifts, negative_slope, _ = inputs
    ctx.negative_slope = negative_slope
    # x itself is needed only for the LeakyReLU's gradient; otherwise keep it out of memory.
    ctx.save_for_backward(x if negative_slope is not None else None, shifts)


def _backward(ctx, grad_out):
    x, shifts = ctx.saved_tensors
    grad_x = phase_shuffle_backward_op(grad_out, x, shifts, ctx.negative_slope)
    return grad_x, None, None, None


phase_shuffle_op.register_autograd(_backward, setup_context=_setup_context)


def _backward_setup_context(ctx, inputs, output):
    _, x, shifts, negative_slope = inputs
    ctx.negative_slope = negative_slope
    ctx.save_for_backward(x, shifts)


def _backward_backward(ctx, grad_grad_x):
    """The backward is linear in grad_out (the transposed shuffle, then the LeakyReLU's mask), so its
    own gradient is the forward shuffle of the mask-weighted incoming gradient; the mask is piecewise
    constant in x, so x gets none. WGAN-GP's gradient penalty needs this double backward."""
    x, shifts = ctx.saved_tensors
    if ctx.negative_slope is not None:
        grad_grad_x = torch.where(x > 0, grad_grad_x, grad_grad_x * ctx.negative_slope)
    return phase_shuffle_op(grad_grad_x, shifts, None, False), None, None, None


phase_shuffle_backward_op.register_autograd(_backward_backward, setup_context=_backward_setup_context)


def phase_shuffle(x: torch.Tensor, shifts: torch.Tensor, negative_slope: float | None, check_shifts: bool):
    """The functional form's entry: the custom op, or — eagerly, where the reference runs anyway —
    the reference itself after the same checks, under torch's own autograd (no custom-op dispatch,
    and autograd's fused LeakyReLU backward)."""
    if _backend.reference_runs_eagerly(x, OP):
        check_inputs(x, shifts)
        if check_shifts:
            check_shift_range(shifts, x.shape[2])
        return phase_shuffle_reference(x, shifts, negative_slope)
    return phase_shuffle_op(x, shifts, negative_slope, check_shifts)
