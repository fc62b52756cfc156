"""Reference dilated residual step (MelGAN's residual stack, HiFi-GAN's ResBlock1/ResBlock2).

One step of every block is

    a   = leaky(x)                                   (then padded: reflect / replicate / zeros)
    z   = conv_d(a, w1) + b1                         (dilation d, "same" length, or causal)
    h   = leaky(z)                                   (only when a second conv follows)
    out = conv(h, w2) + b2 + residual(x)             (w2: 1x1 in MelGAN, k taps in ResBlock1)
    out = z + residual(x)                            (no second conv: HiFi-GAN ResBlock2)

with ``residual(x) = ws @ x + bs`` (MelGAN's 1x1 shortcut) or ``x``. The second conv pads with
zeros (same or causal). This module is the CPU fallback that runs in production, so the forward is
built for speed: the LeakyReLU writes straight into the padded buffer (or zero padding is folded
into ``F.conv1d``), the LeakyReLU on the fresh conv output runs in place, the residual is added in
place, and MelGAN's two 1x1 convs (of ``h`` and of ``x``) are two GEMMs accumulating into one
output buffer (measured faster on CPU than oneDNN's 1x1 conv, and than one GEMM over [h; x]).
The backward recomputes the forward's intermediates (none are kept between the passes) and runs
each conv's backward once. fp16/bf16 on CPU compute in fp32 and round once (as the kernels do), except
bf16 inference on CPUs with native bf16 GEMMs (see ``fastgan.references._precision``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastgan.references._precision import cpu_compute_dtype

PADDINGS = ("reflect", "replicate", "zeros")


def pad_amounts(kernel_size: int, dilation: int, causal: bool) -> tuple[int, int]:
    """(left, right) padding of a stride-1 conv that keeps the length: all on the left when causal."""
    total = (kernel_size - 1) * dilation
    return (total, 0) if causal else (total // 2, total - total // 2)


def _leaky_padded(x: torch.Tensor, negative_slope: float, left: int, right: int, padding: str) -> torch.Tensor:
    """``pad(leaky(x))`` in one pass: the LeakyReLU writes straight into the padded buffer's middle."""
    if left == right == 0:
        return F.leaky_relu(x, negative_slope)
    if padding == "replicate":
        return F.pad(F.leaky_relu(x, negative_slope), (left, right), mode="replicate")
    batch, channels, length = x.shape
    a = x.new_empty((batch, channels, left + length + right))
    torch.ops.aten.leaky_relu.out(x, negative_slope, out=a[:, :, left : left + length])
    if padding == "reflect":
        if left:
            a[:, :, :left] = a[:, :, left + 1 : 2 * left + 1].flip(-1)
        if right:
            a[:, :, left + length :] = a[:, :, left + length - 1 - right : left + length - 1].flip(-1)
    else:
        a[:, :, :left] = 0
        a[:, :, left + length :] = 0
    return a


def _conv_same(h: torch.Tensor, weight, bias, causal: bool) -> torch.Tensor:
    """Zero-padded stride-1 conv keeping the length (dilation 1)."""
    left, right = pad_amounts(weight.shape[2], 1, causal)
    if left == right:
        return F.conv1d(h, weight, bias, padding=left)
    return F.conv1d(F.pad(h, (left, right)), weight, bias)


def _forward_fast(x, weight1, bias1, weight2, bias2, shortcut_weight, shortcut_bias, slope, dilation, padding, causal):
    """No autograd: fresh intermediates are reused in place, padding and LeakyReLU share one pass."""
    left, right = pad_amounts(weight1.shape[2], dilation, causal)
    if padding == "zeros" and left == right:
        z = F.conv1d(F.leaky_relu(x, slope), weight1, bias1, padding=left, dilation=dilation)
    else:
        z = F.conv1d(_leaky_padded(x, slope, left, right, padding), weight1, bias1, dilation=dilation)
    if weight2 is not None and weight2.shape[2] == 1 and shortcut_weight is not None:
        # MelGAN: out = w2 @ leaky(z) + ws @ x + (b2 + bs) as two GEMMs into one output buffer.
        batch, channels, _ = x.shape
        h = F.leaky_relu_(z, slope)
        bias = _add_bias(bias2, shortcut_bias)
        if batch == 1:  # 2-D GEMMs: matmul's (C, C) @ (1, C, T) broadcast copies its operands
            out = (
                torch.mm(weight2[:, :, 0], h[0]) if bias is None else torch.addmm(bias[:, None], weight2[:, :, 0], h[0])
            )
            return out.addmm_(shortcut_weight[:, :, 0], x[0]).unsqueeze(0)
        out = torch.matmul(weight2[:, :, 0], h)
        if bias is not None:
            out.add_(bias[:, None])
        return out.baddbmm_(shortcut_weight[:, :, 0].expand(batch, channels, channels), x)
    out = z if weight2 is None else _conv_same(F.leaky_relu_(z, slope), weight2, bias2, causal)
    if shortcut_weight is not None:
        return out.add_(F.conv1d(x, shortcut_weight, shortcut_bias))
    return out.add_(x)


def _cast(tensors, dtype: torch.dtype) -> list:
    return [None if t is None else t.to(dtype) for t in tensors]


def _add_bias(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    if a is None:
        return b
    return a if b is None else a + b


def leaky_dilated_residual_reference(
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
    """One residual step (see the module docstring); ``x`` (B, C, T), weights (C, C, k)."""
    args = (x, weight1, bias1, weight2, bias2, shortcut_weight, shortcut_bias)
    config = (negative_slope, dilation, padding, causal)
    # The custom op's forward never runs under autograd; a direct caller with gradients (the eager
    # CPU path) gets the plain (out-of-place) composition, differentiated by autograd.
    differentiable = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in args)
    work = cpu_compute_dtype(x, inference=not differentiable)
    if work != x.dtype:  # half precision on CPU: fp32 throughout, one rounding
        return leaky_dilated_residual_reference(*_cast(args, work), *config).to(x.dtype)
    if not differentiable:
        return _forward_fast(*args, *config)
    left, right = pad_amounts(weight1.shape[2], dilation, causal)
    mode = "constant" if padding == "zeros" else padding
    a = F.pad(F.leaky_relu(x, negative_slope), (left, right), mode=mode)
    out = F.conv1d(a, weight1, bias1, dilation=dilation)
    if weight2 is not None:
        out = _conv_same(F.leaky_relu(out, negative_slope), weight2, bias2, causal)
    return out + (x if shortcut_weight is None else F.conv1d(x, shortcut_weight, shortcut_bias))


def _conv_backward(grad, inp, weight, has_bias: bool, dilation: int, need_input: bool = True):
    """(grad wrt inp, grad wrt weight, grad wrt bias or None) of ``F.conv1d(inp, weight, bias, dilation=dilation)``."""
    bias_sizes = [weight.shape[0]] if has_bias else None
    mask = [need_input, True, has_bias]
    return torch.ops.aten.convolution_backward(grad, inp, weight, bias_sizes, [1], [0], [dilation], False, [0], 1, mask)


def _leaky_grad(grad: torch.Tensor, pre: torch.Tensor, negative_slope: float) -> torch.Tensor:
    return torch.where(pre > 0, grad, grad * negative_slope)


def leaky_dilated_residual_backward_reference(
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
) -> list[torch.Tensor | None]:
    """Gradients of :func:`leaky_dilated_residual_reference` for (x, w1, b1, w2, b2, ws, bs); None where absent.

    Recomputes the forward's intermediates (the op keeps none between passes), then runs each
    conv's backward once (input and weight gradients together).
    """
    args = (x, weight1, bias1, weight2, bias2, shortcut_weight, shortcut_bias)
    work = cpu_compute_dtype(x)
    if work != x.dtype:  # half precision on CPU: fp32 throughout, each gradient rounded once
        grads = leaky_dilated_residual_backward_reference(
            grad_out.to(work), *_cast(args, work), negative_slope, dilation, padding, causal
        )
        return [None if g is None else g.to(t.dtype) for g, t in zip(grads, args, strict=True)]
    length = x.shape[2]
    left, right = pad_amounts(weight1.shape[2], dilation, causal)
    mode = "constant" if padding == "zeros" else padding
    a = F.pad(F.leaky_relu(x, negative_slope), (left, right), mode=mode)
    z = F.conv1d(a, weight1, bias1, dilation=dilation)
    grad_w2 = grad_b2 = None
    if weight2 is not None:
        left2, right2 = pad_amounts(weight2.shape[2], 1, causal)
        h = F.pad(F.leaky_relu(z, negative_slope), (left2, right2))
        grad_h, grad_w2, grad_b2 = _conv_backward(grad_out, h, weight2, bias2 is not None, 1)
        grad_z = _leaky_grad(grad_h[:, :, left2 : left2 + length], z, negative_slope)
    else:
        grad_z = grad_out
    grad_a, grad_w1, grad_b1 = _conv_backward(grad_z, a, weight1, bias1 is not None, dilation)
    if padding == "reflect" and left + right:
        grad_a = torch.ops.aten.reflection_pad1d_backward(grad_a, x, [left, right])
    elif padding == "replicate" and left + right:
        grad_a = torch.ops.aten.replication_pad1d_backward(grad_a, x, [left, right])
    else:
        grad_a = grad_a[:, :, left : left + length]
    grad_x = _leaky_grad(grad_a, x, negative_slope)
    grad_ws = grad_bs = None
    if shortcut_weight is not None:
        grad_res, grad_ws, grad_bs = _conv_backward(grad_out, x, shortcut_weight, shortcut_bias is not None, 1)
        grad_x = grad_x + grad_res
    else:
        grad_x = grad_x + grad_out
    return [grad_x, grad_w1, grad_b1, grad_w2, grad_b2, grad_ws, grad_bs]
