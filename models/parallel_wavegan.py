"""Parallel WaveGAN (Yamamoto, Song & Kim 2020): generator and discriminator.

Drop-in for parallel_wavegan 0.6.1's ``parallel_wavegan.models.parallel_wavegan``: the same class
names, constructor arguments and defaults, and state_dict keys. Composed from :mod:`fastgan.nn`:
the 30 WaveNet layers are :class:`fastgan.nn.WaveNetResidualBlock` accumulating their skip
connections into one running sum (no per-layer skip tensors kept), the conditioning upsampler is
:class:`fastgan.nn.ConvInUpsampleNetwork` / :class:`fastgan.nn.UpsampleNetwork` (or this package's
:class:`MelGANGenerator`), and activations after the convs run in place. In CPU inference with a
linear upsampler (every published configuration) the blocks get the frames and the upsampler as a band
matrix instead of the upsampled features, and apply their aux convs at frame rate.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from fastgan.models._common import GeneratorMixin, apply_weight_norm, remove_weight_norm, run_layers
from torch import nn

import fastgan.nn
from fastgan.nn import WaveNetResidualBlock


def _kaiming_conv(*args, **kwargs) -> nn.Conv1d:
    """parallel_wavegan's ``Conv1d``: He-normal weights (ReLU gain), zero bias."""
    conv = nn.Conv1d(*args, **kwargs)
    nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def _conv1x1(in_channels: int, out_channels: int, bias: bool) -> nn.Conv1d:
    return _kaiming_conv(in_channels, out_channels, kernel_size=1, padding=0, dilation=1, bias=bias)


class ParallelWaveGANGenerator(GeneratorMixin, nn.Module):
    """``forward(z, c)``: noise (B, in_channels, T) and features (B, aux_channels, T') -> (B, out_channels, T)."""

    def __init__(
        self,
        in_channels=1,
        out_channels=1,
        kernel_size=3,
        layers=30,
        stacks=3,
        residual_channels=64,
        gate_channels=128,
        skip_channels=64,
        aux_channels=80,
        aux_context_window=2,
        dropout=0.0,
        bias=True,
        use_weight_norm=True,
        use_causal_conv=False,
        upsample_conditional_features=True,
        upsample_net="ConvInUpsampleNetwork",
        upsample_params={"upsample_scales": [4, 4, 4, 4]},  # noqa: B006  (parallel_wavegan's signature)
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.aux_channels = aux_channels
        self.aux_context_window = aux_context_window
        self.layers = layers
        self.stacks = stacks
        self.kernel_size = kernel_size
        if layers % stacks != 0:
            raise ValueError(f"ParallelWaveGANGenerator: layers={layers} must be a multiple of stacks={stacks}")
        layers_per_stack = layers // stacks

        self.first_conv = _conv1x1(in_channels, residual_channels, bias=True)

        if upsample_conditional_features:
            # A copy: parallel_wavegan updates the (shared default) dict in place.
            params = copy.deepcopy(dict(upsample_params))
            params["use_causal_conv"] = use_causal_conv
            if upsample_net == "MelGANGenerator":
                from fastgan.models.melgan import MelGANGenerator

                if aux_context_window != 0:
                    raise ValueError("ParallelWaveGANGenerator: a MelGANGenerator upsampler needs aux_context_window=0")
                params.update(use_weight_norm=False, use_final_nonlinear_activation=False)
                self.upsample_net = MelGANGenerator(**params)
            elif upsample_net in ("ConvInUpsampleNetwork", "UpsampleNetwork"):
                if upsample_net == "ConvInUpsampleNetwork":
                    params.update(aux_channels=aux_channels, aux_context_window=aux_context_window)
                self.upsample_net = getattr(fastgan.nn, upsample_net)(**params)
            else:
                raise ValueError(f"ParallelWaveGANGenerator: unknown upsample_net {upsample_net!r}")
            self.upsample_factor = int(math.prod(params["upsample_scales"]))
        else:
            self.upsample_net = None
            self.upsample_factor = 1

        self.conv_layers = nn.ModuleList(
            WaveNetResidualBlock(
                kernel_size=kernel_size,
                residual_channels=residual_channels,
                gate_channels=gate_channels,
                skip_channels=skip_channels,
                aux_channels=aux_channels,
                dilation=2 ** (layer % layers_per_stack),
                dropout=dropout,
                bias=bias,
                use_causal_conv=use_causal_conv,
            )
            for layer in range(layers)
        )
        self.last_conv_layers = nn.ModuleList(
            [
                nn.ReLU(inplace=True),
                _conv1x1(skip_channels, skip_channels, bias=True),
                nn.ReLU(inplace=True),
                _conv1x1(skip_channels, out_channels, bias=True),
            ]
        )
        # The fewest frames inference takes: a MelGAN upsampler's reflection pads need some, the others one.
        self.min_frames = int(getattr(self.upsample_net, "min_frames", 1))
        if use_weight_norm:
            self.apply_weight_norm()

    def _feature_channels(self) -> int:
        return self.aux_channels

    def forward(self, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        self._check_forward_inputs(z, c)
        aux_upsampler = None
        if c is not None and self.upsample_net is not None:
            if self._aux_at_frame_rate(z, c):
                c = self.upsample_net.context(c)
                aux_upsampler = self.upsample_net.banded_upsampler(c.size(-1), c.device)
                length = c.size(-1) * aux_upsampler.hop
            else:
                c = self.upsample_net(c)
                length = c.size(-1)
            if length != z.size(-1):
                raise ValueError(
                    f"ParallelWaveGANGenerator: upsampled features have {length} samples, noise z has {z.size(-1)}"
                )
        x = self.first_conv(z)
        skips = None
        for layer in self.conv_layers:
            x, skips = layer(x, c, skip_sum=skips, aux_upsampler=aux_upsampler)
        scale = math.sqrt(1.0 / len(self.conv_layers))
        skips = skips.mul_(scale) if not torch.is_grad_enabled() else skips * scale
        return run_layers(self.last_conv_layers, skips)

    def _check_forward_inputs(self, z: torch.Tensor, c: torch.Tensor | None) -> None:
        """Shapes, dtypes and devices of ``forward``'s inputs (the upsampler checks the feature frames)."""
        where = f"{type(self).__name__}.forward"
        if not isinstance(z, torch.Tensor) or z.dim() != 3 or z.shape[1] != self.in_channels:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"{where}: z must be (batch, {self.in_channels}, samples), got shape {shape}")
        self._check_tensor("z", z, where)
        if c is None:
            return
        if self.upsample_net is None:
            length = "samples"
        elif self.aux_context_window and hasattr(self.upsample_net, "conv_in"):
            length = "frames + 2 * aux_context_window"
        else:
            length = "frames"
        if not isinstance(c, torch.Tensor) or c.dim() != 3 or c.shape[1] != self.aux_channels:
            shape = tuple(c.shape) if isinstance(c, torch.Tensor) else type(c).__name__
            raise ValueError(f"{where}: c must be (batch, {self.aux_channels}, {length}), got shape {shape}")
        if c.shape[0] != z.shape[0]:
            raise ValueError(f"{where}: z and c differ in batch size: shapes {tuple(z.shape)} and {tuple(c.shape)}")
        self._check_tensor("c", c, where)

    def _aux_at_frame_rate(self, z: torch.Tensor, c: torch.Tensor) -> bool:
        """Whether the blocks get the frames and the upsampler as a band instead of the upsampled features.

        The upsampler without activations is linear and shared by every channel, so each block's aux
        1x1 conv can run before it, at frame rate: a quarter of the stack's products saved in CPU
        inference (where the blocks do this; see ``fastgan.references.wavenet_block``). Training and
        the other paths upsample once, as parallel_wavegan does.
        """
        if not getattr(self.upsample_net, "linear", False) or not WaveNetResidualBlock.takes_frame_rate_aux(z):
            return False
        if self.training and any(layer.dropout > 0 for layer in self.conv_layers):
            return False
        tensors = (z, c, *self.parameters())
        return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))

    def apply_weight_norm(self) -> None:
        apply_weight_norm(self, (nn.Conv1d, nn.Conv2d))

    @staticmethod
    def _get_receptive_field_size(layers, stacks, kernel_size, dilation=lambda x: 2**x):
        layers_per_cycle = layers // stacks
        return (kernel_size - 1) * sum(dilation(i % layers_per_cycle) for i in range(layers)) + 1

    @property
    def receptive_field_size(self) -> int:
        return self._get_receptive_field_size(self.layers, self.stacks, self.kernel_size)

    def inference(self, c=None, x=None, normalize_before: bool = False) -> torch.Tensor:
        """Features (frames, aux_channels) and/or noise (samples, 1) -> (samples, out_channels)."""
        where = f"{type(self).__name__}.inference"
        parameter = next(self.parameters())
        device = parameter.device
        dtype = parameter.dtype if parameter.is_floating_point() else torch.float
        if c is not None:
            features = self._features(c, normalize_before)  # checked before any noise is drawn
        if x is not None:
            if not isinstance(x, torch.Tensor):
                x = torch.tensor(np.asarray(x), dtype=dtype, device=device)
            if x.dim() != 2 or x.shape[1] != self.in_channels:
                raise ValueError(f"{where}: x must be (samples, {self.in_channels}), got shape {tuple(x.shape)}")
            self._check_tensor("x", x, where)
            x = x.transpose(1, 0).unsqueeze(0)
        else:
            if c is None:
                raise ValueError(f"{where}: pass features c, noise x, or both")
            x = torch.randn(1, 1, len(c) * self.upsample_factor, device=device, dtype=dtype)
        if c is not None:
            c = nn.functional.pad(features, (self.aux_context_window, self.aux_context_window), mode="replicate")
        return self.forward(x, c).squeeze(0).transpose(1, 0)


class ParallelWaveGANDiscriminator(nn.Module):
    """Non-causal dilated conv stack: (B, in_channels, T) -> (B, out_channels, T) logits."""

    def __init__(
        self,
        in_channels=1,
        out_channels=1,
        kernel_size=3,
        layers=10,
        conv_channels=64,
        dilation_factor=1,
        nonlinear_activation="LeakyReLU",
        nonlinear_activation_params={"negative_slope": 0.2},  # noqa: B006  (parallel_wavegan's signature)
        bias=True,
        use_weight_norm=True,
    ):
        super().__init__()
        if (kernel_size - 1) % 2 != 0:
            raise ValueError(f"ParallelWaveGANDiscriminator: kernel_size must be odd, got {kernel_size}")
        if dilation_factor <= 0:
            raise ValueError(f"ParallelWaveGANDiscriminator: dilation_factor must be > 0, got {dilation_factor}")
        self.conv_layers = nn.ModuleList()
        conv_in_channels = in_channels
        for i in range(layers - 1):
            if i == 0:
                dilation = 1
            else:
                dilation = i if dilation_factor == 1 else dilation_factor**i
                conv_in_channels = conv_channels
            padding = (kernel_size - 1) // 2 * dilation
            self.conv_layers.append(
                _kaiming_conv(
                    conv_in_channels,
                    conv_channels,
                    kernel_size=kernel_size,
                    padding=padding,
                    dilation=dilation,
                    bias=bias,
                )  # fmt: skip
            )
            self.conv_layers.append(getattr(nn, nonlinear_activation)(inplace=True, **nonlinear_activation_params))
        self.conv_layers.append(
            _kaiming_conv(
                conv_in_channels, out_channels, kernel_size=kernel_size, padding=(kernel_size - 1) // 2, bias=bias
            )  # fmt: skip
        )
        if use_weight_norm:
            self.apply_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_layers(self.conv_layers, x)

    def apply_weight_norm(self) -> None:
        apply_weight_norm(self, (nn.Conv1d, nn.Conv2d))

    def remove_weight_norm(self) -> None:
        remove_weight_norm(self)
