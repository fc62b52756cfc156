"""Reference transposed 1-D convolution with an optional fused input LeakyReLU (MelGAN/HiFi-GAN upsampling).

``out = conv_transpose1d(leaky_relu(x, negative_slope), weight, bias, stride, padding, output_padding)``
for groups = 1 and dilation = 1. The CPU path calls torch's (oneDNN) transposed convolution once;
the backward gets the input, weight and bias gradients from one ``aten.convolution_backward`` call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def conv_transpose1d_output_length(
    length: int, kernel_size: int, stride: int, padding: int, output_padding: int
) -> int:
    """torch's output length: ``(L - 1) * stride - 2 * padding + kernel_size + output_padding``."""
    return (length - 1) * stride - 2 * padding + kernel_size + output_padding


def _activate(x: torch.Tensor, negative_slope: float | None) -> torch.Tensor:
    return x if negative_slope is None else F.leaky_relu(x, negative_slope)


def conv_transpose1d_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    padding: int,
    output_padding: int,
    negative_slope: float | None = None,
) -> torch.Tensor:
    """``x`` (B, C_in, L), ``weight`` (C_in, C_out, K), ``bias`` (C_out,) or None -> (B, C_out, L_out)."""
    return F.conv_transpose1d(_activate(x, negative_slope), weight, bias, stride, padding, output_padding)


def conv_transpose1d_backward_reference(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    stride: int,
    padding: int,
    output_padding: int,
    negative_slope: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of :func:`conv_transpose1d_reference` with respect to x, weight and bias.

    The input gradient is the strided convolution ``conv1d(grad_out, weight, stride, padding)``
    times the LeakyReLU's derivative; the bias gradient is ``grad_out`` summed over batch and time.
    """
    y = _activate(x, negative_slope)
    grad_y, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
        grad_out.contiguous(), y, weight, [weight.shape[1]],
        [stride], [padding], [1], True, [output_padding], 1, [True, True, True],
    )  # fmt: skip
    if negative_slope is not None:
        grad_y = torch.where(x > 0, grad_y, grad_y * negative_slope)
    return grad_y, grad_weight, grad_bias
