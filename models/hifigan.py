"""HiFi-GAN (Kong, Kim & Bae 2020): generator (V1, V2, V3) and the multi-period / multi-scale discriminators.

Drop-in for parallel_wavegan 0.6.1's ``parallel_wavegan.models.hifigan``: the same class names,
constructor arguments and defaults, and state_dict keys. Composed from :mod:`fastgan.nn`: the
LeakyReLU before each upsampling layer is fused into :class:`fastgan.nn.ConvTranspose1d`, the
residual blocks are :class:`fastgan.nn.HiFiGANResidualBlock`, the multi-receptive-field sum is
accumulated in place at inference, and discriminator activations run in place after their conv.

The three configurations of the paper are :data:`HIFIGAN_CONFIGS` (constructor keyword arguments).
"""

from __future__ import annotations

import copy
import logging

import torch
import torch.nn.functional as F
from fastgan.models._common import (
    GeneratorMixin,
    apply_spectral_norm,
    apply_weight_norm,
    leaky_slope,
    min_input_frames,
    remove_spectral_norm,
    remove_weight_norm,
    run_layers,
    upsample_conv,
)
from fastgan.models.melgan import CausalConvTranspose1d, run_conv_activation
from torch import nn

from fastgan.nn import CausalConv1d, HiFiGANResidualBlock

# The paper's generator configurations (its Table 1 / the official config_v1..v3.json files).
HIFIGAN_CONFIGS: dict[str, dict] = {
    "v1": dict(
        channels=512,
        upsample_scales=(8, 8, 2, 2),
        upsample_kernel_sizes=(16, 16, 4, 4),
        resblock_kernel_sizes=(3, 7, 11),
        resblock_dilations=[(1, 3, 5), (1, 3, 5), (1, 3, 5)],
        use_additional_convs=True,
    ),
    "v2": dict(
        channels=128,
        upsample_scales=(8, 8, 2, 2),
        upsample_kernel_sizes=(16, 16, 4, 4),
        resblock_kernel_sizes=(3, 7, 11),
        resblock_dilations=[(1, 3, 5), (1, 3, 5), (1, 3, 5)],
        use_additional_convs=True,
    ),
    "v3": dict(
        channels=256,
        upsample_scales=(8, 8, 4),
        upsample_kernel_sizes=(16, 16, 8),
        resblock_kernel_sizes=(3, 5, 7),
        resblock_dilations=[(1, 2), (2, 6), (3, 12)],
        use_additional_convs=False,
    ),
}


class HiFiGANGenerator(GeneratorMixin, nn.Module):
    """HiFi-GAN generator: mel (B, in_channels, frames) -> audio (B, out_channels, frames * prod(upsample_scales))."""

    def __init__(
        self,
        in_channels=80,
        out_channels=1,
        channels=512,
        kernel_size=7,
        upsample_scales=(8, 8, 2, 2),
        upsample_kernel_sizes=(16, 16, 4, 4),
        resblock_kernel_sizes=(3, 7, 11),
        resblock_dilations=[(1, 3, 5), (1, 3, 5), (1, 3, 5)],  # noqa: B006  (parallel_wavegan's defaults)
        use_additional_convs=True,
        bias=True,
        nonlinear_activation="LeakyReLU",
        nonlinear_activation_params={"negative_slope": 0.1},  # noqa: B006
        use_causal_conv=False,
        use_weight_norm=True,
    ):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"HiFiGANGenerator: kernel_size must be odd, got {kernel_size}")
        if len(upsample_scales) != len(upsample_kernel_sizes):
            raise ValueError("HiFiGANGenerator: upsample_scales and upsample_kernel_sizes differ in length")
        if len(resblock_dilations) != len(resblock_kernel_sizes):
            raise ValueError("HiFiGANGenerator: resblock_dilations and resblock_kernel_sizes differ in length")
        self.num_upsamples = len(upsample_kernel_sizes)
        self.num_blocks = len(resblock_kernel_sizes)
        self.use_causal_conv = use_causal_conv
        self.upsample_scales = list(upsample_scales)
        if use_causal_conv:
            self.input_conv = CausalConv1d(in_channels, channels, kernel_size, bias=bias)
        else:
            self.input_conv = nn.Conv1d(in_channels, channels, kernel_size, bias=bias, padding=(kernel_size - 1) // 2)
        self.upsamples = nn.ModuleList()
        self.blocks = nn.ModuleList()
        for i, (scale, up_kernel) in enumerate(zip(upsample_scales, upsample_kernel_sizes, strict=True)):
            if up_kernel != 2 * scale:
                raise ValueError(f"HiFiGANGenerator: upsample_kernel_sizes[{i}]={up_kernel} must be 2 x {scale}")
            in_chs, out_chs = channels // (2**i), channels // (2 ** (i + 1))
            act = getattr(nn, nonlinear_activation)(**nonlinear_activation_params)
            if use_causal_conv:
                up = CausalConvTranspose1d(
                    in_chs, out_chs, up_kernel, scale, bias=bias, negative_slope=leaky_slope(act)
                )
            else:
                up = upsample_conv(act, in_chs, out_chs, up_kernel, scale, padding=scale // 2 + scale % 2,
                                   output_padding=scale % 2, bias=bias)  # fmt: skip
            self.upsamples.append(nn.Sequential(act, up))
            for kernel, dilations in zip(resblock_kernel_sizes, resblock_dilations, strict=True):
                self.blocks.append(
                    HiFiGANResidualBlock(
                        kernel_size=kernel,
                        channels=out_chs,
                        dilations=dilations,
                        bias=bias,
                        use_additional_convs=use_additional_convs,
                        nonlinear_activation=nonlinear_activation,
                        nonlinear_activation_params=nonlinear_activation_params,
                        use_causal_conv=use_causal_conv,
                    )
                )
        last = channels // (2**self.num_upsamples)
        if use_causal_conv:
            final = CausalConv1d(last, out_channels, kernel_size, bias=bias)
        else:
            final = nn.Conv1d(last, out_channels, kernel_size, bias=bias, padding=(kernel_size - 1) // 2)
        # The official model's final LeakyReLU has torch's default slope (0.01), not 0.1.
        self.output_conv = nn.Sequential(nn.LeakyReLU(), final, nn.Tanh())

        self.in_channels = in_channels
        stages = [self.input_conv]
        for i, up in enumerate(self.upsamples):
            stages += [up, *self.blocks[i * self.num_blocks : (i + 1) * self.num_blocks]]
        self.min_frames = min_input_frames(m for stage in [*stages, self.output_conv] for m in stage.modules())

        if use_weight_norm:
            self.apply_weight_norm()
        self.reset_parameters()

    @classmethod
    def from_config(cls, version: str, **overrides) -> HiFiGANGenerator:
        """``HiFiGANGenerator.from_config("v1" | "v2" | "v3", in_channels=80, ...)``."""
        key = version.lower()
        if key not in HIFIGAN_CONFIGS:
            raise ValueError(
                f"HiFiGANGenerator: unknown configuration {version!r}; expected one of {list(HIFIGAN_CONFIGS)}"
            )
        return cls(**{**copy.deepcopy(HIFIGAN_CONFIGS[key]), **overrides})

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, T) -> (B, out_channels, T * prod(upsample_scales)); T >= ``min_frames``."""
        self._check_forward(c)
        inplace = not torch.is_grad_enabled()
        c = self.input_conv(c)
        for i in range(self.num_upsamples):
            c = run_layers(self.upsamples[i], c)
            blocks = self.blocks[i * self.num_blocks : (i + 1) * self.num_blocks]
            total = blocks[0](c)
            for block in blocks[1:]:
                total = total.add_(block(c)) if inplace else total + block(c)
            c = total.div_(self.num_blocks) if inplace else total / self.num_blocks
        return run_layers(self.output_conv, c)

    def apply_weight_norm(self) -> None:
        apply_weight_norm(self, (nn.Conv1d, nn.ConvTranspose1d))

    def reset_parameters(self) -> None:
        """The official initialisation: N(0, 0.01) conv weights."""
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
                m.weight.data.normal_(0.0, 0.01)

    def inference(self, c, normalize_before: bool = False) -> torch.Tensor:
        """(frames, in_channels) -> (samples, out_channels)."""
        return self.forward(self._features(c, normalize_before)).squeeze(0).transpose(1, 0)


class HiFiGANPeriodDiscriminator(nn.Module):
    """One period discriminator: the signal folded to (T / period, period), 2-D convs along time."""

    def __init__(
        self,
        in_channels=1,
        out_channels=1,
        period=3,
        kernel_sizes=[5, 3],  # noqa: B006  (parallel_wavegan's signature and defaults)
        channels=32,
        downsample_scales=[3, 3, 3, 3, 1],  # noqa: B006
        max_downsample_channels=1024,
        bias=True,
        nonlinear_activation="LeakyReLU",
        nonlinear_activation_params={"negative_slope": 0.1},  # noqa: B006
        use_weight_norm=True,
        use_spectral_norm=False,
    ):
        super().__init__()
        if len(kernel_sizes) != 2 or kernel_sizes[0] % 2 != 1 or kernel_sizes[1] % 2 != 1:
            raise ValueError(f"HiFiGANPeriodDiscriminator: kernel_sizes must be two odd sizes, got {kernel_sizes}")
        if use_weight_norm and use_spectral_norm:
            raise ValueError("Either use use_weight_norm or use_spectral_norm.")
        self.period = period
        self.convs = nn.ModuleList()
        in_chs, out_chs = in_channels, channels
        for scale in downsample_scales:
            # parallel_wavegan builds these with the default bias=True whatever ``bias`` says; so do we.
            self.convs.append(
                nn.Sequential(
                    nn.Conv2d(
                        in_chs, out_chs, (kernel_sizes[0], 1), (scale, 1), padding=((kernel_sizes[0] - 1) // 2, 0)
                    ),
                    getattr(nn, nonlinear_activation)(**nonlinear_activation_params),
                )
            )
            in_chs = out_chs
            out_chs = min(out_chs * 4, max_downsample_channels)
        self.output_conv = nn.Conv2d(
            out_chs, out_channels, (kernel_sizes[1] - 1, 1), 1, padding=((kernel_sizes[1] - 1) // 2, 0)
        )
        if use_weight_norm:
            self.apply_weight_norm()
        if use_spectral_norm:
            self.apply_spectral_norm()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b, c, t = x.shape
        if t % self.period != 0:
            n_pad = self.period - (t % self.period)
            x = F.pad(x, (0, n_pad), "reflect")
            t += n_pad
        x = x.view(b, c, t // self.period, self.period)
        outs = []
        for layer in self.convs:
            x = run_conv_activation(layer, x)
            outs.append(x)
        outs.append(torch.flatten(self.output_conv(x), 1, -1))
        return outs

    def apply_weight_norm(self) -> None:
        apply_weight_norm(self, (nn.Conv2d,))

    def apply_spectral_norm(self) -> None:
        apply_spectral_norm(self, (nn.Conv2d,))


class HiFiGANMultiPeriodDiscriminator(nn.Module):
    def __init__(
        self,
        periods=[2, 3, 5, 7, 11],  # noqa: B006  (parallel_wavegan's signature and defaults)
        discriminator_params={  # noqa: B006
            "in_channels": 1,
            "out_channels": 1,
            "kernel_sizes": [5, 3],
            "channels": 32,
            "downsample_scales": [3, 3, 3, 3, 1],
            "max_downsample_channels": 1024,
            "bias": True,
            "nonlinear_activation": "LeakyReLU",
            "nonlinear_activation_params": {"negative_slope": 0.1},
            "use_weight_norm": True,
            "use_spectral_norm": False,
        },
    ):
        super().__init__()
        self.discriminators = nn.ModuleList()
        for period in periods:
            params = copy.deepcopy(discriminator_params)
            params["period"] = period
            self.discriminators.append(HiFiGANPeriodDiscriminator(**params))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        return [f(x) for f in self.discriminators]


class HiFiGANScaleDiscriminator(nn.Module):
    def __init__(
        self,
        in_channels=1,
        out_channels=1,
        kernel_sizes=[15, 41, 5, 3],  # noqa: B006  (parallel_wavegan's signature and defaults)
        channels=128,
        max_downsample_channels=1024,
        max_groups=16,
        bias=True,
        downsample_scales=[2, 2, 4, 4, 1],  # noqa: B006
        nonlinear_activation="LeakyReLU",
        nonlinear_activation_params={"negative_slope": 0.1},  # noqa: B006
        use_weight_norm=True,
        use_spectral_norm=False,
    ):
        super().__init__()
        if len(kernel_sizes) != 4 or any(k % 2 != 1 for k in kernel_sizes):
            raise ValueError(f"HiFiGANScaleDiscriminator: kernel_sizes must be four odd sizes, got {kernel_sizes}")
        if use_weight_norm and use_spectral_norm:
            raise ValueError("Either use use_weight_norm or use_spectral_norm.")

        def activation():
            return getattr(nn, nonlinear_activation)(**nonlinear_activation_params)

        self.layers = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv1d(in_channels, channels, kernel_sizes[0], bias=bias, padding=(kernel_sizes[0] - 1) // 2),
                    activation(),
                )
            ]
        )
        in_chs = out_chs = channels
        groups = 4
        for scale in downsample_scales:
            self.layers.append(
                nn.Sequential(
                    nn.Conv1d(
                        in_chs,
                        out_chs,
                        kernel_size=kernel_sizes[1],
                        stride=scale,
                        padding=(kernel_sizes[1] - 1) // 2,
                        groups=groups,
                        bias=bias,
                    ),  # fmt: skip
                    activation(),
                )
            )
            in_chs = out_chs
            out_chs = min(in_chs * 2, max_downsample_channels)
            groups = min(groups * 4, max_groups)
        out_chs = min(in_chs * 2, max_downsample_channels)
        self.layers.append(
            nn.Sequential(
                nn.Conv1d(
                    in_chs,
                    out_chs,
                    kernel_size=kernel_sizes[2],
                    stride=1,
                    padding=(kernel_sizes[2] - 1) // 2,
                    bias=bias,
                ),  # fmt: skip
                activation(),
            )
        )
        self.layers.append(
            nn.Conv1d(
                out_chs,
                out_channels,
                kernel_size=kernel_sizes[3],
                stride=1,
                padding=(kernel_sizes[3] - 1) // 2,
                bias=bias,
            )  # fmt: skip
        )
        self.use_weight_norm = use_weight_norm
        if use_weight_norm:
            self.apply_weight_norm()
        self.use_spectral_norm = use_spectral_norm
        if use_spectral_norm:
            self.apply_spectral_norm()
        self._register_load_state_dict_pre_hook(self._load_state_dict_pre_hook)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for layer in self.layers:
            x = run_conv_activation(layer, x)
            outs.append(x)
        return outs

    def apply_weight_norm(self) -> None:
        apply_weight_norm(self, (nn.Conv1d,))

    def apply_spectral_norm(self) -> None:
        apply_spectral_norm(self, (nn.Conv1d,))

    def remove_weight_norm(self) -> None:
        remove_weight_norm(self)

    def remove_spectral_norm(self) -> None:
        remove_spectral_norm(self)

    def _load_state_dict_pre_hook(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                  error_msgs):  # fmt: skip
        """parallel_wavegan's compatibility rule: a checkpoint trained without the norm the config
        names (its keys lack ``weight_g`` / ``weight_u``) loads after removing that norm here."""
        keys = [k for k in state_dict if k.startswith(prefix)]
        if self.use_weight_norm and not any("weight_g" in k for k in keys):
            logging.warning("HiFiGANScaleDiscriminator: checkpoint has no weight norm; removing it from the model")
            self.remove_weight_norm()
            self.use_weight_norm = False
        if self.use_spectral_norm and not any("weight_u" in k for k in keys):
            logging.warning("HiFiGANScaleDiscriminator: checkpoint has no spectral norm; removing it from the model")
            self.remove_spectral_norm()
            self.use_spectral_norm = False


class HiFiGANMultiScaleDiscriminator(nn.Module):
    def __init__(
        self,
        scales=3,
        downsample_pooling="AvgPool1d",
        downsample_pooling_params={"kernel_size": 4, "stride": 2, "padding": 2},  # noqa: B006
        discriminator_params={  # noqa: B006
            "in_channels": 1,
            "out_channels": 1,
            "kernel_sizes": [15, 41, 5, 3],
            "channels": 128,
            "max_downsample_channels": 1024,
            "max_groups": 16,
            "bias": True,
            "downsample_scales": [2, 2, 4, 4, 1],
            "nonlinear_activation": "LeakyReLU",
            "nonlinear_activation_params": {"negative_slope": 0.1},
        },
        follow_official_norm=False,
    ):
        super().__init__()
        self.discriminators = nn.ModuleList()
        for i in range(scales):
            params = copy.deepcopy(discriminator_params)
            if follow_official_norm:
                params["use_weight_norm"] = i != 0
                params["use_spectral_norm"] = i == 0
            self.discriminators.append(HiFiGANScaleDiscriminator(**params))
        self.pooling = getattr(nn, downsample_pooling)(**downsample_pooling_params)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        outs = []
        for i, discriminator in enumerate(self.discriminators):
            outs.append(discriminator(x))
            if i + 1 < len(self.discriminators):  # the last pooled signal would go unused
                x = self.pooling(x)
        return outs


class HiFiGANMultiScaleMultiPeriodDiscriminator(nn.Module):
    def __init__(
        self,
        scales=3,
        scale_downsample_pooling="AvgPool1d",
        scale_downsample_pooling_params={"kernel_size": 4, "stride": 2, "padding": 2},  # noqa: B006
        scale_discriminator_params={  # noqa: B006
            "in_channels": 1,
            "out_channels": 1,
            "kernel_sizes": [15, 41, 5, 3],
            "channels": 128,
            "max_downsample_channels": 1024,
            "max_groups": 16,
            "bias": True,
            "downsample_scales": [2, 2, 4, 4, 1],
            "nonlinear_activation": "LeakyReLU",
            "nonlinear_activation_params": {"negative_slope": 0.1},
        },
        follow_official_norm=True,
        periods=[2, 3, 5, 7, 11],  # noqa: B006
        period_discriminator_params={  # noqa: B006
            "in_channels": 1,
            "out_channels": 1,
            "kernel_sizes": [5, 3],
            "channels": 32,
            "downsample_scales": [3, 3, 3, 3, 1],
            "max_downsample_channels": 1024,
            "bias": True,
            "nonlinear_activation": "LeakyReLU",
            "nonlinear_activation_params": {"negative_slope": 0.1},
            "use_weight_norm": True,
            "use_spectral_norm": False,
        },
    ):
        super().__init__()
        self.msd = HiFiGANMultiScaleDiscriminator(
            scales=scales,
            downsample_pooling=scale_downsample_pooling,
            downsample_pooling_params=scale_downsample_pooling_params,
            discriminator_params=scale_discriminator_params,
            follow_official_norm=follow_official_norm,
        )
        self.mpd = HiFiGANMultiPeriodDiscriminator(periods=periods, discriminator_params=period_discriminator_params)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        return self.msd(x) + self.mpd(x)
