"""``fastgan::wavenet_block`` and its backward: Parallel WaveGAN's gated residual block as custom ops.

The forward returns ``(x_out, skip)``; given a running ``skip_sum`` it returns ``skip_sum + skip``
instead of ``skip`` (a new tensor: the op mutates nothing, so autograd and torch.compile see a
pure function, and the previous sum is freed as soon as the caller drops it — a 30-layer stack
holds one or two skip-sized tensors, never thirty). The skip sum's gradient is the incoming
skip gradient itself, so accumulating costs the backward nothing.

The backward saves only the block's inputs (x, c, weights) and recomputes the gate
pre-activations from them: the eager composition keeps five (B, G, T)-sized intermediates per
block alive for the backward; this keeps none.
"""

from __future__ import annotations

import torch

from fastgan import _backend
from fastgan._checks import FLOAT_DTYPES, check_same_device, check_tensor
from fastgan.references.upsample import BandedUpsampler
from fastgan.references.wavenet_block import wavenet_block_backward_reference, wavenet_block_reference

OP = "wavenet_block"
GRAD_NAMES = ("x", "c", "w_conv", "b_conv", "w_aux", "w_out", "b_out", "w_skip", "b_skip")
# The fused kernels keep H (gate_channels / 2) and R (residual) rows of a tile on chip, up to this
# (max(CHANNEL_BLOCKS) in kernels/wavenet_block.py: blocks of 64 and 128 channels, e.g. PWG's 64/128/64
# and the larger 128/256/128); skip rows are streamed, any number. Larger blocks take the reference
# (cuDNN on a GPU), or raise under FASTGAN_BACKEND=triton.
KERNEL_MAX_CHANNELS = 128


def _kernels():
    from fastgan.kernels import wavenet_block  # triton is imported only when a kernel runs

    return wavenet_block


def _fail(message: str, error=ValueError):
    raise error(f"fastgan::{OP}: {message}")


def _check_matrix(name: str, weight: torch.Tensor, rows: int | None, cols: int | None) -> tuple[int, int]:
    if weight.dim() not in (2, 3) or (weight.dim() == 3 and weight.shape[2] != 1):
        _fail(f"{name} must be (out, in) or a 1x1 conv weight (out, in, 1), got shape {tuple(weight.shape)}")
    out_ch, in_ch = weight.shape[0], weight.shape[1]
    if (rows is not None and out_ch != rows) or (cols is not None and in_ch != cols):
        want = f"({rows if rows is not None else 'any'}, {cols if cols is not None else 'any'}[, 1])"
        _fail(f"{name} must have shape {want}, got {tuple(weight.shape)}")
    return out_ch, in_ch


def _check_bias(name: str, bias: torch.Tensor | None, size: int) -> None:
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != size):
        _fail(f"{name} must have shape ({size},), got {tuple(bias.shape)}")


def check_inputs(x, c, w_conv, b_conv, w_aux, w_out, b_out, w_skip, b_skip, skip_sum, dilation, causal) -> None:
    """Shape, dtype and device checks; cheap, so they run at trace time too."""
    check_tensor(OP, "x", x, ndim=3, dtypes=FLOAT_DTYPES)
    batch, residual, length = x.shape
    if batch == 0 or length == 0:
        _fail(f"x must have a non-zero batch and length, got shape {tuple(x.shape)}")
    check_tensor(OP, "w_conv", w_conv, ndim=3)
    gate, in_ch, kernel_size = w_conv.shape
    if in_ch != residual:
        _fail(f"w_conv must have shape (gate_channels, {residual}, kernel_size) for x's {residual} channels, got {tuple(w_conv.shape)}")  # fmt: skip
    if gate == 0 or gate % 2:
        _fail(f"gate_channels (w_conv.shape[0]) must be even and > 0 to split into tanh and sigmoid halves, got {gate}")
    if not causal and kernel_size % 2 == 0:
        _fail(f"a non-causal block needs an odd kernel size, got {kernel_size}")
    if not isinstance(dilation, int) or dilation < 1:
        _fail(f"dilation must be a positive int, got {dilation!r}")
    half = gate // 2
    _check_bias("b_conv", b_conv, gate)
    _check_matrix("w_out", w_out, residual, half)
    _check_bias("b_out", b_out, residual)
    skip_ch, _ = _check_matrix("w_skip", w_skip, None, half)
    _check_bias("b_skip", b_skip, skip_ch)
    if (c is None) != (w_aux is None):
        _fail("c (auxiliary features) and w_aux must be given together" + (", got c without w_aux" if w_aux is None else ", got w_aux without c"))  # fmt: skip
    tensors = {"x": x, "w_conv": w_conv, "w_out": w_out, "w_skip": w_skip}
    if c is not None:
        check_tensor(OP, "c", c, ndim=3)
        _, aux = _check_matrix("w_aux", w_aux, gate, None)
        if tuple(c.shape) != (batch, aux, length):
            _fail(f"c must have shape (batch, aux_channels, time) = ({batch}, {aux}, {length}), got {tuple(c.shape)}")
        tensors |= {"c": c, "w_aux": w_aux}
    if skip_sum is not None:
        check_tensor(OP, "skip_sum", skip_sum, ndim=3)
        if tuple(skip_sum.shape) != (batch, skip_ch, length):
            _fail(f"skip_sum must have shape ({batch}, {skip_ch}, {length}), got {tuple(skip_sum.shape)}")
        tensors["skip_sum"] = skip_sum
    for name, bias in (("b_conv", b_conv), ("b_out", b_out), ("b_skip", b_skip)):
        if bias is not None:
            tensors[name] = bias
    for name, tensor in tensors.items():
        if tensor.dtype != x.dtype:
            _fail(f"{name} has dtype {tensor.dtype} but x has {x.dtype}; every tensor must share x's dtype", TypeError)
    check_same_device(OP, **tensors)


def kernel_supports(w_conv: torch.Tensor, w_out: torch.Tensor, w_skip: torch.Tensor) -> str | None:
    """Why the fused kernels cannot run these channel counts, or None if they can: gate_channels // 2 and
    residual_channels must be at most KERNEL_MAX_CHANNELS (128); the skip and aux channel counts and the kernel
    size are not limited (loop bounds: those rows are streamed, never held on chip)."""
    sizes = {"gate_channels // 2": w_conv.shape[0] // 2, "residual_channels": w_out.shape[0]}
    too_big = [f"{name}={size}" for name, size in sizes.items() if size > KERNEL_MAX_CHANNELS]
    if too_big:
        return (
            f"the fused kernels hold at most {KERNEL_MAX_CHANNELS} channels of gate_channels // 2 and of "
            f"residual_channels, got {', '.join(too_big)}; without FASTGAN_BACKEND=triton such blocks run the reference"
        )
    return None


def _use_kernel(x: torch.Tensor, w_conv, w_out, w_skip) -> bool:
    if not _backend.use_triton(x, OP):
        return False
    reason = kernel_supports(w_conv, w_out, w_skip)
    if reason is None:
        return True
    if _backend.get_backend() == "triton":
        raise _backend.BackendUnavailableError(f"fastgan::{OP}: backend 'triton' was forced, but {reason}")
    return False


@torch.library.custom_op("fastgan::wavenet_block", mutates_args=())
def wavenet_block_op(
    x: torch.Tensor,
    c: torch.Tensor | None,
    w_conv: torch.Tensor,
    b_conv: torch.Tensor | None,
    w_aux: torch.Tensor | None,
    w_out: torch.Tensor,
    b_out: torch.Tensor | None,
    w_skip: torch.Tensor,
    b_skip: torch.Tensor | None,
    skip_sum: torch.Tensor | None,
    dilation: int,
    causal: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    args = (x, c, w_conv, b_conv, w_aux, w_out, b_out, w_skip, b_skip, skip_sum, dilation, causal)
    check_inputs(*args)
    if _use_kernel(x, w_conv, w_out, w_skip):
        return _kernels().wavenet_block_forward(*args)
    return wavenet_block_reference(*args)


@wavenet_block_op.register_fake
def _(x, c, w_conv, b_conv, w_aux, w_out, b_out, w_skip, b_skip, skip_sum, dilation, causal):
    check_inputs(x, c, w_conv, b_conv, w_aux, w_out, b_out, w_skip, b_skip, skip_sum, dilation, causal)
    batch, residual, length = x.shape
    return x.new_empty((batch, residual, length)), x.new_empty((batch, w_skip.shape[0], length))


@torch.library.custom_op("fastgan::wavenet_block_backward", mutates_args=())
def wavenet_block_backward_op(
    grad_x_out: torch.Tensor,
    grad_skip: torch.Tensor,
    x: torch.Tensor,
    c: torch.Tensor | None,
    w_conv: torch.Tensor,
    b_conv: torch.Tensor | None,
    w_aux: torch.Tensor | None,
    w_out: torch.Tensor,
    b_out: torch.Tensor | None,
    w_skip: torch.Tensor,
    b_skip: torch.Tensor | None,
    dilation: int,
    causal: bool,
) -> list[torch.Tensor]:
    """Gradients in GRAD_NAMES order; an empty (0,) tensor stands for an input that was None."""
    args = (grad_x_out, grad_skip, x, c, w_conv, b_conv, w_aux, w_out, b_out, w_skip, b_skip, dilation, causal)
    if _use_kernel(x, w_conv, w_out, w_skip):
        grads = _kernels().wavenet_block_backward(*args)
    else:
        grads = wavenet_block_backward_reference(*args)
    return [x.new_empty((0,)) if grads[name] is None else _fresh(grads[name]) for name in GRAD_NAMES]


def _fresh(tensor: torch.Tensor) -> torch.Tensor:
    """Contiguous and at storage offset 0, as the fake implementation promises."""
    tensor = tensor.contiguous()
    return tensor.clone() if tensor.storage_offset() else tensor


@wavenet_block_backward_op.register_fake
def _(grad_x_out, grad_skip, x, c, w_conv, b_conv, w_aux, w_out, b_out, w_skip, b_skip, dilation, causal):
    inputs = (x, c, w_conv, b_conv, w_aux, w_out, b_out, w_skip, b_skip)
    return [x.new_empty((0,)) if t is None else t.new_empty(t.shape) for t in inputs]


def _setup_context(ctx, inputs, output):
    x, c, w_conv, b_conv, w_aux, w_out, b_out, w_skip, b_skip, skip_sum, dilation, causal = inputs
    ctx.dilation, ctx.causal = dilation, causal
    ctx.has_skip_sum = skip_sum is not None
    ctx.save_for_backward(x, c, w_conv, b_conv, w_aux, w_out, b_out, w_skip, b_skip)


def _backward(ctx, grad_x_out, grad_skip):
    x, c, w_conv, b_conv, w_aux, w_out, b_out, w_skip, b_skip = ctx.saved_tensors
    if grad_x_out is None:
        grad_x_out = torch.zeros_like(x)
    if grad_skip is None:
        grad_skip = x.new_zeros((x.shape[0], w_skip.shape[0], x.shape[2]))
    grads = wavenet_block_backward_op(
        grad_x_out, grad_skip, x, c, w_conv, b_conv, w_aux, w_out, b_out, w_skip, b_skip, ctx.dilation, ctx.causal
    )
    inputs = (x, c, w_conv, b_conv, w_aux, w_out, b_out, w_skip, b_skip)
    out = [None if t is None else g for t, g in zip(inputs, grads, strict=True)]
    return (*out, grad_skip if ctx.has_skip_sum else None, None, None)


wavenet_block_op.register_autograd(_backward, setup_context=_setup_context)


def takes_frame_rate_aux(x: torch.Tensor) -> bool:
    """True where :func:`wavenet_block` given an ``aux_upsampler`` applies the aux conv at frame rate
    (eager CPU inference on the reference); elsewhere it upsamples the frames first, so a caller that
    would upsample once for many blocks should do that instead."""
    return x.device.type == "cpu" and _backend.reference_runs_eagerly(x, OP)


def _check_frames(x: torch.Tensor, c: torch.Tensor, upsampler: BandedUpsampler) -> None:
    check_tensor(OP, "c", c, ndim=3)
    frames, length = c.shape[2], x.shape[2]
    if frames != upsampler.frames or frames * upsampler.hop != length:
        _fail(
            f"c holds {frames} frames for an aux_upsampler built for {upsampler.frames} frames of "
            f"{upsampler.hop} samples; x has {length} samples"
        )
    if upsampler.device != x.device:
        _fail(f"aux_upsampler is on {upsampler.device} but x is on {x.device}")


def wavenet_block(
    x: torch.Tensor,
    c: torch.Tensor | None,
    w_conv: torch.Tensor,
    b_conv: torch.Tensor | None,
    w_aux: torch.Tensor | None,
    w_out: torch.Tensor,
    b_out: torch.Tensor | None,
    w_skip: torch.Tensor,
    b_skip: torch.Tensor | None,
    skip_sum: torch.Tensor | None,
    dilation: int,
    causal: bool,
    aux_upsampler: BandedUpsampler | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The functional form's entry: the custom op, or -- in eager inference where the reference runs anyway --
    the reference itself after the same checks (no custom-op dispatch for each of PWG's 30 layers).

    With ``aux_upsampler``, ``c`` holds frames (B, A, F): eager CPU inference hands them to the reference
    (aux conv at frame rate); every other path upsamples them first and runs as usual.
    """
    args = (x, c, w_conv, b_conv, w_aux, w_out, b_out, w_skip, b_skip, skip_sum, dilation, causal)
    if aux_upsampler is not None and c is not None:
        _check_frames(x, c, aux_upsampler)
        if takes_frame_rate_aux(x) and not _backend.needs_grad(*args[:10]):
            # The usual checks, with a view of c stretched to x's length standing in for the upsampled c.
            check_inputs(x, c[:, :, :1].expand(-1, -1, x.shape[2]), *args[2:])
            return wavenet_block_reference(*args, aux_upsampler=aux_upsampler)
        c = aux_upsampler.apply(c)
        args = (x, c, *args[2:])
    if not _backend.needs_grad(*args[:10]) and _backend.reference_runs_eagerly(x, OP):
        check_inputs(*args)
        return wavenet_block_reference(*args)
    return wavenet_block_op(*args)
