"""MelGAN (Kumar et al. 2019) and Multi-band MelGAN (Yang et al. 2021): generator and discriminators.

Drop-in for parallel_wavegan 0.6.1's ``parallel_wavegan.models.melgan``: the same class names,
constructor arguments and defaults, and state_dict keys (``melgan.{i}...``, ``layers.{i}...``,
``discriminators.{j}.layers.{i}...``, weight norm's ``weight_g``/``weight_v``). The computation
is composed from :mod:`fastgan.nn`: each LeakyReLU before an upsampling layer is fused into
:class:`fastgan.nn.ConvTranspose1d`, the residual stacks are :class:`fastgan.nn.ResidualStack`,
and activations that follow a conv run in place.

Multi-band MelGAN is ``MelGANGenerator(out_channels=4, ...)`` with a :class:`fastgan.nn.PQMF` set
as ``generator.pqmf`` (what :func:`fastgan.load_generator` does for a multi-band checkpoint):
``inference`` then returns the synthesised full-band waveform.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from fastgan.models._common import (
    GeneratorMixin,
    apply_weight_norm,
    leaky_slope,
    min_input_frames,
    normal_init,
    remove_weight_norm,
    run_layers,
    upsample_conv,
)
from torch import nn

from fastgan.nn import CausalConv1d, ResidualStack


class CausalConvTranspose1d(nn.Module):
    """parallel_wavegan's causal transposed conv (keys ``deconv.*``): replicate-pad one frame on
    the left, transposed conv, drop ``stride`` samples at each end. ``negative_slope`` fuses a
    LeakyReLU before it (it commutes with the replicate pad)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, bias=True, pad="ReplicationPad1d",
                 pad_params={}, negative_slope=None):  # noqa: B006  (parallel_wavegan's signature)  # fmt: skip
        super().__init__()
        self.pad = getattr(nn, pad)((1, 0), **pad_params)
        self.deconv = upsample_conv(
            nn.LeakyReLU(negative_slope) if negative_slope is not None else nn.Identity(),
            in_channels, out_channels, kernel_size, stride, bias=bias,
        )  # fmt: skip
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.pad(x))[:, :, self.stride : -self.stride]


class MelGANGenerator(GeneratorMixin, nn.Module):
    """MelGAN generator: mel (B, in_channels, frames) -> audio (B, out_channels, frames * prod(upsample_scales))."""

    def __init__(
        self,
        in_channels=80,
        out_channels=1,
        kernel_size=7,
        channels=512,
        bias=True,
        upsample_scales=[8, 8, 2, 2],  # noqa: B006  (parallel_wavegan's signature and defaults)
        stack_kernel_size=3,
        stacks=3,
        nonlinear_activation="LeakyReLU",
        nonlinear_activation_params={"negative_slope": 0.2},  # noqa: B006
        pad="ReflectionPad1d",
        pad_params={},  # noqa: B006
        use_final_nonlinear_activation=True,
        use_weight_norm=True,
        use_causal_conv=False,
    ):
        super().__init__()
        if channels < math.prod(upsample_scales):
            raise ValueError(f"MelGANGenerator: channels={channels} must be >= prod(upsample_scales)")
        if channels % (2 ** len(upsample_scales)) != 0:
            raise ValueError(f"MelGANGenerator: channels={channels} must be divisible by 2**len(upsample_scales)")
        if not use_causal_conv and (kernel_size - 1) % 2 != 0:
            raise ValueError(f"MelGANGenerator: kernel_size must be odd unless causal, got {kernel_size}")

        def activation():
            return getattr(nn, nonlinear_activation)(**nonlinear_activation_params)

        layers: list[nn.Module] = []
        if use_causal_conv:
            layers.append(CausalConv1d(in_channels, channels, kernel_size, bias=bias, pad=pad, pad_params=pad_params))
        else:
            layers += [
                getattr(nn, pad)((kernel_size - 1) // 2, **pad_params),
                nn.Conv1d(in_channels, channels, kernel_size, bias=bias),
            ]
        out_chs = channels
        for i, scale in enumerate(upsample_scales):
            in_chs, out_chs = channels // (2**i), channels // (2 ** (i + 1))
            act = activation()
            layers.append(act)
            if use_causal_conv:
                layers.append(
                    CausalConvTranspose1d(
                        in_chs, out_chs, scale * 2, stride=scale, bias=bias, negative_slope=leaky_slope(act)
                    )  # fmt: skip
                )
            else:
                layers.append(
                    upsample_conv(
                        act,
                        in_chs,
                        out_chs,
                        scale * 2,
                        stride=scale,
                        padding=scale // 2 + scale % 2,
                        output_padding=scale % 2,
                        bias=bias,
                    )  # fmt: skip
                )
            for j in range(stacks):
                layers.append(
                    ResidualStack(
                        kernel_size=stack_kernel_size,
                        channels=out_chs,
                        dilation=stack_kernel_size**j,
                        bias=bias,
                        nonlinear_activation=nonlinear_activation,
                        nonlinear_activation_params=nonlinear_activation_params,
                        pad=pad,
                        pad_params=pad_params,
                        use_causal_conv=use_causal_conv,
                    )
                )
        layers.append(activation())
        if use_causal_conv:
            layers.append(CausalConv1d(out_chs, out_channels, kernel_size, bias=bias, pad=pad, pad_params=pad_params))
        else:
            layers += [
                getattr(nn, pad)((kernel_size - 1) // 2, **pad_params),
                nn.Conv1d(out_chs, out_channels, kernel_size, bias=bias),
            ]
        if use_final_nonlinear_activation:
            layers.append(nn.Tanh())
        self.melgan = nn.Sequential(*layers)
        self.upsample_scales = list(upsample_scales)
        self.in_channels = in_channels
        self.min_frames = min_input_frames(self.melgan.modules())  # the reflection pads' limit

        if use_weight_norm:
            self.apply_weight_norm()
        self.reset_parameters()
        self.pqmf = None  # set a fastgan.nn.PQMF for Multi-band MelGAN inference

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, T) -> (B, out_channels, T * prod(upsample_scales)); T >= ``min_frames``."""
        self._check_forward(c)
        return run_layers(self.melgan, c)

    def apply_weight_norm(self) -> None:
        apply_weight_norm(self, (nn.Conv1d, nn.ConvTranspose1d))

    def reset_parameters(self) -> None:
        """MelGAN's official initialisation, as parallel_wavegan applies it: N(0, 0.02) conv weights."""
        normal_init(self, 0.02)

    def inference(self, c, normalize_before: bool = False) -> torch.Tensor:
        """(frames, in_channels) -> (samples, out_channels), or (samples, 1) through ``self.pqmf``."""
        x = self.forward(self._features(c, normalize_before))
        if self.pqmf is not None:
            x = self.pqmf.synthesis(x)
        return x.squeeze(0).transpose(1, 0)


def run_conv_activation(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A (conv, activation) Sequential with the activation in place: the conv's output is its own
    temporary and a conv's backward does not read it, so this is autograd-safe."""
    if isinstance(layer, nn.Sequential) and len(layer) == 2 and type(layer[1]) is nn.LeakyReLU:
        return F.leaky_relu_(layer[0](x), layer[1].negative_slope)
    if isinstance(layer, nn.Sequential) and len(layer) == 3 and type(layer[2]) is nn.LeakyReLU:
        return F.leaky_relu_(layer[1](layer[0](x)), layer[2].negative_slope)
    return layer(x)


class MelGANDiscriminator(nn.Module):
    """One MelGAN scale discriminator: ``forward(x) -> [each layer's output]``."""

    def __init__(
        self,
        in_channels=1,
        out_channels=1,
        kernel_sizes=[5, 3],  # noqa: B006  (parallel_wavegan's signature and defaults)
        channels=16,
        max_downsample_channels=1024,
        bias=True,
        downsample_scales=[4, 4, 4, 4],  # noqa: B006
        nonlinear_activation="LeakyReLU",
        nonlinear_activation_params={"negative_slope": 0.2},  # noqa: B006
        pad="ReflectionPad1d",
        pad_params={},  # noqa: B006
    ):
        super().__init__()
        if len(kernel_sizes) != 2 or kernel_sizes[0] % 2 != 1 or kernel_sizes[1] % 2 != 1:
            raise ValueError(f"MelGANDiscriminator: kernel_sizes must be two odd sizes, got {kernel_sizes}")

        def activation():
            return getattr(nn, nonlinear_activation)(**nonlinear_activation_params)

        first = int(math.prod(kernel_sizes))
        self.layers = nn.ModuleList(
            [
                nn.Sequential(
                    getattr(nn, pad)((first - 1) // 2, **pad_params),
                    nn.Conv1d(in_channels, channels, first, bias=bias),
                    activation(),
                )
            ]
        )
        in_chs = channels
        for scale in downsample_scales:
            out_chs = min(in_chs * scale, max_downsample_channels)
            self.layers.append(
                nn.Sequential(
                    nn.Conv1d(
                        in_chs,
                        out_chs,
                        kernel_size=scale * 10 + 1,
                        stride=scale,
                        padding=scale * 5,
                        groups=in_chs // 4,
                        bias=bias,
                    ),  # fmt: skip
                    activation(),
                )
            )
            in_chs = out_chs
        out_chs = min(in_chs * 2, max_downsample_channels)
        self.layers.append(
            nn.Sequential(
                nn.Conv1d(in_chs, out_chs, kernel_sizes[0], padding=(kernel_sizes[0] - 1) // 2, bias=bias),
                activation(),
            )
        )
        self.layers.append(
            nn.Conv1d(out_chs, out_channels, kernel_sizes[1], padding=(kernel_sizes[1] - 1) // 2, bias=bias)
        )
        self.reset_parameters()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for layer in self.layers:
            x = run_conv_activation(layer, x)
            outs.append(x)
        return outs

    def reset_parameters(self) -> None:
        normal_init(self, 0.02)


class MelGANMultiScaleDiscriminator(nn.Module):
    """MelGAN's discriminators at ``scales`` average-pooled resolutions: ``forward(x) -> [[outputs]]``."""

    def __init__(
        self,
        in_channels=1,
        out_channels=1,
        scales=3,
        downsample_pooling="AvgPool1d",
        downsample_pooling_params={"kernel_size": 4, "stride": 2, "padding": 1, "count_include_pad": False},  # noqa: B006
        kernel_sizes=[5, 3],  # noqa: B006
        channels=16,
        max_downsample_channels=1024,
        bias=True,
        downsample_scales=[4, 4, 4, 4],  # noqa: B006
        nonlinear_activation="LeakyReLU",
        nonlinear_activation_params={"negative_slope": 0.2},  # noqa: B006
        pad="ReflectionPad1d",
        pad_params={},  # noqa: B006
        use_weight_norm=True,
    ):
        super().__init__()
        self.discriminators = nn.ModuleList(
            MelGANDiscriminator(
                in_channels=in_channels,
                out_channels=out_channels,
                kernel_sizes=kernel_sizes,
                channels=channels,
                max_downsample_channels=max_downsample_channels,
                bias=bias,
                downsample_scales=downsample_scales,
                nonlinear_activation=nonlinear_activation,
                nonlinear_activation_params=nonlinear_activation_params,
                pad=pad,
                pad_params=pad_params,
            )
            for _ in range(scales)
        )
        self.pooling = getattr(nn, downsample_pooling)(**downsample_pooling_params)
        if use_weight_norm:
            self.apply_weight_norm()
        self.reset_parameters()

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        outs = []
        for i, discriminator in enumerate(self.discriminators):
            outs.append(discriminator(x))
            if i + 1 < len(self.discriminators):  # the last pooled signal would go unused
                x = self.pooling(x)
        return outs

    def remove_weight_norm(self) -> None:
        remove_weight_norm(self)

    def apply_weight_norm(self) -> None:
        apply_weight_norm(self, (nn.Conv1d, nn.ConvTranspose1d))

    def reset_parameters(self) -> None:
        normal_init(self, 0.02)
