"""A drop-in ``torch.nn.ConvTranspose1d`` whose forward is fastgan's fused (LeakyReLU +) transposed conv."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastgan import functional


class ConvTranspose1d(nn.ConvTranspose1d):
    """``torch.nn.ConvTranspose1d`` with an optional fused input LeakyReLU.

    Same constructor arguments, parameters and state_dict keys as torch's module (so
    ``torch.nn.utils.weight_norm`` and ``torch.nn.utils.parametrizations.weight_norm`` work on it),
    plus the keyword-only ``negative_slope``: when set, ``forward(x)`` computes
    ``conv_transpose1d(leaky_relu(x, negative_slope))`` in one pass — the LeakyReLU that MelGAN and
    HiFi-GAN put before each upsampling layer.

    The fused op covers groups = 1 and dilation = 1 with any stride, kernel size, padding and
    output_padding. Other combinations (groups > 1, dilation > 1) are not an error: they run
    torch's own ``leaky_relu`` + ``conv_transpose1d`` unchanged, so the answer is always torch's
    (``self.fused`` says which path a module takes). torch itself rejects padding modes other
    than ``"zeros"`` for transposed convolutions.
    """

    def __init__(self, *args, negative_slope: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if negative_slope is not None:
            negative_slope = float(negative_slope)
        self.negative_slope = negative_slope

    @property
    def fused(self) -> bool:
        """True when forward runs fastgan's op; False for groups > 1 or dilation > 1 (torch's path)."""
        return self.groups == 1 and self.dilation[0] == 1 and self.padding_mode == "zeros"

    def extra_repr(self) -> str:
        slope = "" if self.negative_slope is None else f", negative_slope={self.negative_slope}"
        return super().extra_repr() + slope

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if input.dim() not in (2, 3):
            raise ValueError(
                f"ConvTranspose1d: input must be (batch, channels, time) or (channels, time), got shape {tuple(input.shape)}"
            )
        unbatched = input.dim() == 2
        x = input.unsqueeze(0) if unbatched else input
        output_padding = self._output_padding(
            x, output_size, self.stride, self.padding, self.kernel_size, 1, self.dilation
        )[0]
        # float64 (gradcheck, reference runs) takes torch's path, as the parent class would: the op is fp32/fp16/bf16.
        if self.fused and x.dtype != torch.float64:
            out = functional.conv_transpose1d(
                x, self.weight, self.bias, self.stride[0], self.padding[0], output_padding, self.negative_slope
            )
        else:
            y = x if self.negative_slope is None else F.leaky_relu(x, self.negative_slope)
            out = F.conv_transpose1d(
                y, self.weight, self.bias, self.stride, self.padding, [output_padding], self.groups, self.dilation
            )
        return out.squeeze(0) if unbatched else out
