"""Reference dilated residual step (MelGAN's residual stack, HiFi-GAN's ResBlock1/ResBlock2).

One step of every block is

    a   = leaky(x)                                   (then padded: reflect / replicate / zeros)
    z   = conv_d(a, w1) + b1                         (dilation d, "same" length, or causal)
    h   = leaky(z)                                   (only when a second conv follows)
    out = conv(h, w2) + b2 + residual(x)             (w2: 1x1 in MelGAN, k taps in ResBlock1)
    out = z + residual(x)                            (no second conv: HiFi-GAN ResBlock2)

with ``residual(x) = ws @ x + bs`` (MelGAN's 1x1 shortcut) or ``x``. The second conv pads with
zeros (same or causal). This module is the CPU fallback that runs in production, so the forward is
built for speed: padding folded into ``F.conv1d`` where it is zeros, the LeakyReLU on fresh
tensors done in place, the residual added in place, and MelGAN's two 1x1 convs (of ``h`` and of
``x``) done as one GEMM over the concatenated channels. The backward recomputes the forward's
intermediates (none are kept between the passes) and runs each conv's backward once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PADDINGS = ("reflect", "replicate", "zeros")


def pad_amounts(kernel_size: int, dilation: int, causal: bool) -> tuple[int, int]:
    """(left, right) padding of a stride-1 conv that keeps the length: all on the left when causal."""
    total = (kernel_size - 1) * dilation
    return (total, 0) if causal else (total // 2, total - total // 2)


def _padded_conv(a, weight, bias, dilation: int, padding: str, causal: bool):
    left, right = pad_amounts(weight.shape[2], dilation, causal)
    if left == right == 0:
        return F.conv1d(a, weight, bias)
    if padding == "zeros" and left == right:
        return F.conv1d(a, weight, bias, padding=left, dilation=dilation)
    mode = "constant" if padding == "zeros" else padding
    return F.conv1d(F.pad(a, (left, right), mode=mode), weight, bias, dilation=dilation)


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
    tensors = (x, weight1, bias1, weight2, bias2, shortcut_weight, shortcut_bias)
    # In-place only where autograd does not watch (the custom op's forward never is).
    inplace = not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors))
    z = _padded_conv(F.leaky_relu(x, negative_slope), weight1, bias1, dilation, padding, causal)
    if weight2 is None:
        out = z
    else:
        h = F.leaky_relu_(z, negative_slope) if inplace else F.leaky_relu(z, negative_slope)
        if weight2.shape[2] == 1 and shortcut_weight is not None:
            # MelGAN: w2 @ h + ws @ x as one GEMM over [h; x] (one pass, one output).
            weight = torch.cat([weight2, shortcut_weight], dim=1)
            return F.conv1d(torch.cat([h, x], dim=1), weight, _add_bias(bias2, shortcut_bias))
        out = _padded_conv(h, weight2, bias2, 1, "zeros", causal)
    if shortcut_weight is not None:
        residual = F.conv1d(x, shortcut_weight, shortcut_bias)
        return out.add_(residual) if inplace else out + residual
    return out.add_(x) if inplace else out + x


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
