"""MelGAN's residual stack and HiFi-GAN's residual block, drop-in for parallel_wavegan 0.6.1's layers.

Same class names, constructor arguments and defaults, forward signatures and state_dict keys as
``parallel_wavegan.layers.ResidualStack`` and ``parallel_wavegan.layers.HiFiGANResidualBlock``:
the modules keep the same submodule lists (so both weight-norm forms, applied by a model over
them, show up under the same keys), but ``forward`` runs each dilation step as one fused op,
:func:`fastgan.functional.leaky_dilated_residual`, whenever the activation is LeakyReLU and the
padding is one the op knows (reflect, replicate, zeros). Anything else runs the plain composition
of the submodules, exactly as parallel_wavegan does.
"""

from __future__ import annotations

import torch
from torch import nn

from fastgan import functional
from fastgan._checks import FLOAT_DTYPES
from fastgan.nn._weight_norm import effective_weight, fold_weight_norm


class CausalConv1d(nn.Module):
    """parallel_wavegan's CausalConv1d: pad both sides by (k - 1) * dilation, conv, keep the first T samples."""

    def __init__(self, in_channels, out_channels, kernel_size, dilation=1, bias=True, pad="ConstantPad1d",
                 pad_params={"value": 0.0}):  # noqa: B006  (parallel_wavegan's signature)  # fmt: skip
        super().__init__()
        self.pad = getattr(nn, pad)((kernel_size - 1) * dilation, **pad_params)
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))[:, :, : x.size(2)]


def _padding_mode(pad: nn.Module) -> str | None:
    """The fused op's name for a padding module, or None when the op cannot express it."""
    if isinstance(pad, nn.ReflectionPad1d):
        return "reflect"
    if isinstance(pad, nn.ReplicationPad1d):
        return "replicate"
    if isinstance(pad, nn.ConstantPad1d) and float(pad.value) == 0.0:  # ZeroPad1d included
        return "zeros"
    return None


def _leaky_slope(activation: nn.Module) -> float | None:
    return float(activation.negative_slope) if type(activation) is nn.LeakyReLU else None


def _plain_conv(conv: nn.Conv1d, kernel_size: int, dilation: int, padding: int) -> bool:
    return (conv.stride == (1,) and conv.dilation == (dilation,) and conv.padding == (padding,)
            and conv.groups == 1 and conv.padding_mode == "zeros" and conv.kernel_size == (kernel_size,))  # fmt: skip


def _fusable(x: torch.Tensor) -> bool:
    return x.dim() == 3 and (x.dtype in FLOAT_DTYPES or torch.is_autocast_enabled(x.device.type))


def _dtypes_match(x: torch.Tensor, tensors) -> bool:
    """The op needs one dtype; otherwise (float64, mixed without autocast) the composition runs as torch would."""
    if torch.is_autocast_enabled(x.device.type):
        return True
    return all(t is None or t.dtype == x.dtype for t in tensors)


def _step(x, tensors, slope: float, dilation: int, padding: str, causal: bool, keep_dtype: bool = False):
    """One fused step (under autocast it runs in the autocast dtype, as the convs would); with
    ``keep_dtype`` the result is cast back to x's dtype, as parallel_wavegan's ``conv(x) + x`` promotes."""
    out = functional.leaky_dilated_residual(
        x, *tensors, negative_slope=slope, dilation=dilation, padding=padding, causal=causal
    )
    return out.to(x.dtype) if keep_dtype else out


class ResidualStack(nn.Module):
    """MelGAN's residual stack: leaky → pad → dilated conv → leaky → 1x1 conv, plus a 1x1 shortcut conv."""

    def __init__(
        self,
        kernel_size=3,
        channels=32,
        dilation=1,
        bias=True,
        nonlinear_activation="LeakyReLU",
        nonlinear_activation_params={"negative_slope": 0.2},  # noqa: B006  (parallel_wavegan's signature)
        pad="ReflectionPad1d",
        pad_params={},  # noqa: B006
        use_causal_conv=False,
    ):
        super().__init__()
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.use_causal_conv = use_causal_conv
        activation = getattr(nn, nonlinear_activation)
        if not use_causal_conv:
            if (kernel_size - 1) % 2 != 0:
                raise ValueError(f"ResidualStack: kernel_size must be odd unless causal, got {kernel_size}")
            self.stack = nn.Sequential(
                activation(**nonlinear_activation_params),
                getattr(nn, pad)((kernel_size - 1) // 2 * dilation, **pad_params),
                nn.Conv1d(channels, channels, kernel_size, dilation=dilation, bias=bias),
                activation(**nonlinear_activation_params),
                nn.Conv1d(channels, channels, 1, bias=bias),
            )
        else:
            self.stack = nn.Sequential(
                activation(**nonlinear_activation_params),
                CausalConv1d(
                    channels, channels, kernel_size, dilation=dilation, bias=bias, pad=pad, pad_params=pad_params
                ),  # fmt: skip
                activation(**nonlinear_activation_params),
                nn.Conv1d(channels, channels, 1, bias=bias),
            )
        self.skip_layer = nn.Conv1d(channels, channels, 1, bias=bias)

    def fold_weight_norm(self) -> ResidualStack:
        """Fold weight norm into plain weights once, for inference (see :func:`fold_weight_norm`)."""
        return fold_weight_norm(self)

    remove_weight_norm = fold_weight_norm

    def _fused_arguments(self):
        if self.use_causal_conv:
            pad, conv1, conv2 = self.stack[1].pad, self.stack[1].conv, self.stack[3]
            expected_pad = (self.kernel_size - 1) * self.dilation
        else:
            pad, conv1, conv2 = self.stack[1], self.stack[2], self.stack[4]
            expected_pad = (self.kernel_size - 1) // 2 * self.dilation
        slope = _leaky_slope(self.stack[0])
        padding = _padding_mode(pad)
        if slope is None or slope != _leaky_slope(self.stack[-2]) or padding is None:
            return None
        if tuple(pad.padding) != (expected_pad, expected_pad):
            return None
        if not (_plain_conv(conv1, self.kernel_size, self.dilation, 0) and _plain_conv(conv2, 1, 1, 0)
                and _plain_conv(self.skip_layer, 1, 1, 0)):  # fmt: skip
            return None
        weights = [effective_weight(conv) for conv in (conv1, conv2, self.skip_layer)]
        if any(w is None for w in weights):
            return None
        w1, w2, ws = weights
        return (w1, conv1.bias, w2, conv2.bias, ws, self.skip_layer.bias), slope, padding

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        """(B, channels, T) → (B, channels, T)."""
        fused = self._fused_arguments() if _fusable(c) else None
        if fused is None or not _dtypes_match(c, fused[0]):
            return self.stack(c) + self.skip_layer(c)
        tensors, slope, padding = fused
        return _step(c, tensors, slope, self.dilation, padding, self.use_causal_conv)


class HiFiGANResidualBlock(nn.Module):
    """HiFi-GAN's residual block: ResBlock1 (``use_additional_convs=True``) or ResBlock2.

    For each dilation d: ``x = conv2(leaky(conv1_d(leaky(x)))) + x`` (ResBlock1) or
    ``x = conv1_d(leaky(x)) + x`` (ResBlock2), with zero "same" (or causal) padding.
    """

    def __init__(
        self,
        kernel_size=3,
        channels=512,
        dilations=(1, 3, 5),
        bias=True,
        use_additional_convs=True,
        nonlinear_activation="LeakyReLU",
        nonlinear_activation_params={"negative_slope": 0.1},  # noqa: B006  (parallel_wavegan's signature)
        use_causal_conv=False,
    ):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"HiFiGANResidualBlock: kernel_size must be odd, got {kernel_size}")
        self.kernel_size = kernel_size
        self.dilations = tuple(dilations)
        self.use_additional_convs = use_additional_convs
        self.use_causal_conv = use_causal_conv
        activation = getattr(nn, nonlinear_activation)

        def layer(dilation):
            if use_causal_conv:
                conv = CausalConv1d(channels, channels, kernel_size, dilation=dilation, bias=bias)
            else:
                conv = nn.Conv1d(channels, channels, kernel_size, 1, dilation=dilation, bias=bias,
                                 padding=(kernel_size - 1) // 2 * dilation)  # fmt: skip
            return nn.Sequential(activation(**nonlinear_activation_params), conv)

        self.convs1 = nn.ModuleList()
        if use_additional_convs:
            self.convs2 = nn.ModuleList()
        for dilation in dilations:
            self.convs1.append(layer(dilation))
            if use_additional_convs:
                self.convs2.append(layer(1))

    def fold_weight_norm(self) -> HiFiGANResidualBlock:
        """Fold weight norm into plain weights once, for inference (see :func:`fold_weight_norm`)."""
        return fold_weight_norm(self)

    remove_weight_norm = fold_weight_norm

    def _unpack(self, layer: nn.Sequential, dilation: int):
        """(weight, bias, slope) of one activation+conv layer, or None when it cannot be fused."""
        slope = _leaky_slope(layer[0])
        conv = layer[1]
        if self.use_causal_conv:
            if _padding_mode(conv.pad) != "zeros":
                return None
            expected = (self.kernel_size - 1) * dilation
            if tuple(conv.pad.padding) != (expected, expected):
                return None
            conv = conv.conv
            padding = 0
        else:
            padding = (self.kernel_size - 1) // 2 * dilation
        if slope is None or not _plain_conv(conv, self.kernel_size, dilation, padding):
            return None
        weight = effective_weight(conv)
        return None if weight is None else (weight, conv.bias, slope)

    def _fused_steps(self):
        steps = []
        for index, dilation in enumerate(self.dilations):
            first = self._unpack(self.convs1[index], dilation)
            if first is None:
                return None
            second = (None, None, first[2])
            if self.use_additional_convs:
                second = self._unpack(self.convs2[index], 1)
                if second is None or second[2] != first[2]:
                    return None
            steps.append((first[0], first[1], second[0], second[1], first[2], dilation))
        return steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, channels, T) → (B, channels, T)."""
        steps = self._fused_steps() if _fusable(x) else None
        if steps is None or not all(_dtypes_match(x, step[:4]) for step in steps):
            for index in range(len(self.convs1)):
                xt = self.convs1[index](x)
                if self.use_additional_convs:
                    xt = self.convs2[index](xt)
                x = xt + x
            return x
        for w1, b1, w2, b2, slope, dilation in steps:
            x = _step(x, (w1, b1, w2, b2, None, None), slope, dilation, "zeros", self.use_causal_conv, True)
        return x
