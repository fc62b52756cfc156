"""``fastgan::leaky_dilated_residual`` and its backward: one dilated residual step (MelGAN, HiFi-GAN).

See :mod:`fastgan.references.residual_block` for the exact computation. The Triton path covers
zero and reflect padding; replicate padding always takes the reference.
"""

from __future__ import annotations

import torch

from fastgan import _backend
from fastgan._checks import FLOAT_DTYPES, check_same_device, check_tensor
from fastgan.references.residual_block import (
    PADDINGS,
    leaky_dilated_residual_backward_reference,
    leaky_dilated_residual_reference,
    pad_amounts,
)

OP = "leaky_dilated_residual"
TRITON_PADDINGS = ("reflect", "zeros")
_NAMES = ("x", "weight1", "bias1", "weight2", "bias2", "shortcut_weight", "shortcut_bias")


def _kernels():
    from fastgan.kernels import residual_block  # triton is imported only when a kernel runs

    return residual_block


def _fail(kind, message):
    raise kind(f"fastgan::{OP}: {message}")


def check_inputs(
    x, weight1, bias1, weight2, bias2, shortcut_weight, shortcut_bias, negative_slope, dilation, padding, causal
):
    """Shape, dtype, device and argument checks; cheap, so they run at trace time too."""
    check_tensor(OP, "x", x, ndim=3, dtypes=FLOAT_DTYPES)
    check_tensor(OP, "weight1", weight1, ndim=3, dtypes=FLOAT_DTYPES)
    batch, channels, length = x.shape
    present = {"x": x, "weight1": weight1}
    for name, tensor, ndim in (
        ("bias1", bias1, 1), ("weight2", weight2, 3), ("bias2", bias2, 1),
        ("shortcut_weight", shortcut_weight, 3), ("shortcut_bias", shortcut_bias, 1),
    ):  # fmt: skip
        if tensor is not None:
            check_tensor(OP, name, tensor, ndim=ndim, dtypes=FLOAT_DTYPES)
            present[name] = tensor
    check_same_device(OP, **present)
    for name, tensor in present.items():
        if tensor.dtype != x.dtype:
            _fail(TypeError, f"{name} has dtype {tensor.dtype}, but x has {x.dtype}; all tensors must share one dtype")
    kernel_size = weight1.shape[2]
    if tuple(weight1.shape[:2]) != (channels, channels) or kernel_size < 1:
        _fail(ValueError, f"weight1 must have shape ({channels}, {channels}, k) for x's {channels} channels, "
                          f"got {tuple(weight1.shape)}")  # fmt: skip
    if weight2 is not None and (tuple(weight2.shape[:2]) != (channels, channels) or weight2.shape[2] < 1):
        _fail(ValueError, f"weight2 must have shape ({channels}, {channels}, k2), got {tuple(weight2.shape)}")
    if weight2 is not None and not causal and weight2.shape[2] % 2 == 0:
        _fail(ValueError, f"weight2's kernel size must be odd unless causal, got {weight2.shape[2]}")
    if shortcut_weight is not None and tuple(shortcut_weight.shape) != (channels, channels, 1):
        _fail(
            ValueError,
            f"shortcut_weight must have shape ({channels}, {channels}, 1), got {tuple(shortcut_weight.shape)}",
        )
    for name, bias, owner in (("bias1", bias1, weight1), ("bias2", bias2, weight2), ("shortcut_bias", shortcut_bias, shortcut_weight)):  # fmt: skip
        if bias is not None and owner is None:
            _fail(ValueError, f"{name} is given without its weight")
        if bias is not None and tuple(bias.shape) != (channels,):
            _fail(ValueError, f"{name} must have shape ({channels},), got {tuple(bias.shape)}")
    if not isinstance(dilation, int) or dilation < 1:
        _fail(ValueError, f"dilation must be a positive int, got {dilation!r}")
    if padding not in PADDINGS:
        _fail(ValueError, f"padding must be one of {PADDINGS}, got {padding!r}")
    if not causal and kernel_size % 2 == 0:
        _fail(ValueError, f"weight1's kernel size must be odd unless causal, got {kernel_size}")
    if length < 1:
        _fail(ValueError, f"x must have at least one time step, got shape {tuple(x.shape)}")
    left, right = pad_amounts(kernel_size, dilation, causal)
    if padding in ("reflect",) and max(left, right) >= length:
        _fail(ValueError, f"reflect padding of {max(left, right)} (kernel {kernel_size}, dilation {dilation}"
                          f"{', causal' if causal else ''}) must be < the signal length {length}")  # fmt: skip
    if padding == "replicate" and length < 1:
        _fail(ValueError, "replicate padding needs a non-empty signal")


def _use_triton(x: torch.Tensor, padding: str) -> bool:
    if padding not in TRITON_PADDINGS or x.numel() == 0:  # nothing to launch for an empty batch
        return False
    return _backend.use_triton(x, OP)


@torch.library.custom_op("fastgan::leaky_dilated_residual", mutates_args=())
def leaky_dilated_residual_op(
    x: torch.Tensor,
    weight1: torch.Tensor,
    bias1: torch.Tensor | None,
    weight2: torch.Tensor | None,
    bias2: torch.Tensor | None,
    shortcut_weight: torch.Tensor | None,
    shortcut_bias: torch.Tensor | None,
    negative_slope: float,
    dilation: int,
    padding: str,
    causal: bool,
) -> torch.Tensor:
    args = (
        x,
        weight1,
        bias1,
        weight2,
        bias2,
        shortcut_weight,
        shortcut_bias,
        negative_slope,
        dilation,
        padding,
        causal,
    )
    check_inputs(*args)
    if _use_triton(x, padding):
        return _kernels().leaky_dilated_residual_forward(*args)
    return leaky_dilated_residual_reference(*args).contiguous()


@leaky_dilated_residual_op.register_fake
def _(x, weight1, bias1, weight2, bias2, shortcut_weight, shortcut_bias, negative_slope, dilation, padding, causal):
    check_inputs(
        x, weight1, bias1, weight2, bias2, shortcut_weight, shortcut_bias, negative_slope, dilation, padding, causal
    )
    return x.new_empty(x.shape)


@torch.library.custom_op("fastgan::leaky_dilated_residual_backward", mutates_args=())
def leaky_dilated_residual_backward_op(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    weight1: torch.Tensor,
    bias1: torch.Tensor | None,
    weight2: torch.Tensor | None,
    bias2: torch.Tensor | None,
    shortcut_weight: torch.Tensor | None,
    shortcut_bias: torch.Tensor | None,
    negative_slope: float,
    dilation: int,
    padding: str,
    causal: bool,
) -> list[torch.Tensor]:
    """Gradients for (x, w1, b1, w2, b2, ws, bs); an absent tensor's gradient is an empty tensor."""
    args = (
        x,
        weight1,
        bias1,
        weight2,
        bias2,
        shortcut_weight,
        shortcut_bias,
        negative_slope,
        dilation,
        padding,
        causal,
    )
    if grad_out.shape != x.shape:
        _fail(ValueError, f"grad_out must have x's shape {tuple(x.shape)}, got {tuple(grad_out.shape)}")
    if _use_triton(grad_out, padding):
        grads = _kernels().leaky_dilated_residual_backward(grad_out, *args)
    else:
        grads = leaky_dilated_residual_backward_reference(grad_out, *args)
    return [x.new_empty(0) if g is None else g.contiguous() for g in grads]


@leaky_dilated_residual_backward_op.register_fake
def _(
    grad_out,
    x,
    weight1,
    bias1,
    weight2,
    bias2,
    shortcut_weight,
    shortcut_bias,
    negative_slope,
    dilation,
    padding,
    causal,
):
    tensors = (x, weight1, bias1, weight2, bias2, shortcut_weight, shortcut_bias)
    return [
        x.new_empty(0) if t is None else torch.empty_like(t, memory_format=torch.contiguous_format) for t in tensors
    ]


def _setup_context(ctx, inputs, output):
    *tensors, negative_slope, dilation, padding, causal = inputs
    ctx.present = [t is not None for t in tensors]
    ctx.config = (negative_slope, dilation, padding, causal)
    ctx.save_for_backward(*tensors)


def _backward(ctx, grad_out):
    tensors = ctx.saved_tensors
    grads = leaky_dilated_residual_backward_op(grad_out, *tensors, *ctx.config)
    result = [g if present else None for g, present in zip(grads, ctx.present, strict=True)]
    return (*result, None, None, None, None)


leaky_dilated_residual_op.register_autograd(_backward, setup_context=_setup_context)


def leaky_dilated_residual(
    x: torch.Tensor,
    weight1: torch.Tensor,
    bias1: torch.Tensor | None,
    weight2: torch.Tensor | None,
    bias2: torch.Tensor | None,
    shortcut_weight: torch.Tensor | None,
    shortcut_bias: torch.Tensor | None,
    negative_slope: float,
    dilation: int,
    padding: str,
    causal: bool,
) -> torch.Tensor:
    """The functional form's entry: the custom op, or -- eagerly, where the reference runs anyway (CPU) -- the
    reference itself after the same checks, skipping the custom op's dispatch. With autograd that means torch's
    autograd through the reference's composition, which stores its intermediates: on CPU measured faster than the
    op's recomputing backward (a tiny MelGAN training step went from 0.72x to 0.88x parallel_wavegan's), and
    memory is not what bounds CPU training. The kernels (GPU) keep the recomputing, memory-lean backward."""
    args = (
        x,
        weight1,
        bias1,
        weight2,
        bias2,
        shortcut_weight,
        shortcut_bias,
        negative_slope,
        dilation,
        padding,
        causal,
    )
    if _backend.reference_runs_eagerly(x, OP):
        check_inputs(*args)
        return leaky_dilated_residual_reference(*args).contiguous()
    return leaky_dilated_residual_op(*args)
