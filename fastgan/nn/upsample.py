"""Parallel WaveGAN's conditioning upsampler (``UpsampleNetwork``, ``ConvInUpsampleNetwork``) on fastgan's op.

Same constructor arguments, sub-module layout and state_dict keys as parallel_wavegan 0.6.1's
``parallel_wavegan.layers.upsample`` classes (``up_layers.{i}`` holds a stretch, a 2-D smoothing
conv and an optional activation per scale; ``conv_in`` the context conv), so checkpoints load
across. With ``freq_axis_kernel_size == 1`` and ``interpolate_mode == "nearest"`` (every
published PWG configuration) each scale runs as one ``fastgan::stretch_conv1d`` pass — the stretch
and the smoothing conv folded into per-phase taps, no stretched intermediate — with a LeakyReLU or
ReLU activation fused into it. Other settings run the stretch-and-conv2d layers as written.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from fastgan import functional
from fastgan.nn._weight_norm import effective_weight
from fastgan.references.upsample import BandedUpsampler, first_offset


class Stretch2d(nn.Module):
    """Repeat (or interpolate) a (B, C, F, T) tensor by ``y_scale`` along F and ``x_scale`` along T."""

    def __init__(self, x_scale: int, y_scale: int, mode: str = "nearest"):
        super().__init__()
        self.x_scale = x_scale
        self.y_scale = y_scale
        self.mode = mode

    def extra_repr(self) -> str:
        return f"x_scale={self.x_scale}, y_scale={self.y_scale}, mode={self.mode!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=(self.y_scale, self.x_scale), mode=self.mode)


class Conv2d(nn.Conv2d):
    """The smoothing conv: a ``torch.nn.Conv2d`` initialised to a box filter (weights 1/taps, bias 0)."""

    def reset_parameters(self) -> None:
        nn.init.constant_(self.weight, 1.0 / math.prod(self.kernel_size))
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class Conv1d(nn.Conv1d):
    """``torch.nn.Conv1d`` with Kaiming-normal (ReLU gain) weights and zero bias, as parallel_wavegan initialises it."""

    def reset_parameters(self) -> None:
        nn.init.kaiming_normal_(self.weight, nonlinearity="relu")
        if self.bias is not None:
            nn.init.zeros_(self.bias)


def _integer_scales(upsample_scales, owner: str) -> list[int]:
    """The scales as ints: integral numbers (2 or 2.0) only, never truncated (2.5 is refused, not 2)."""
    scales = list(upsample_scales)
    for s in scales:
        if isinstance(s, bool) or not isinstance(s, numbers.Real):
            raise TypeError(f"{owner}: upsample scales must be integers, got {scales}")
        if not math.isfinite(s) or s != int(s):
            raise ValueError(f"{owner}: upsample scales must be integers, got {scales}")
    return [int(s) for s in scales]


def _fusable_slope(activation: nn.Module | None) -> float | None | bool:
    """The LeakyReLU slope an activation amounts to (ReLU: 0.0), None for no activation, False if not fusable."""
    if activation is None:
        return None
    if type(activation) is nn.ReLU:
        return 0.0
    if type(activation) is nn.LeakyReLU and activation.negative_slope >= 0:
        return float(activation.negative_slope)
    return False


class UpsampleNetwork(nn.Module):
    """Stretch by each scale and smooth with a 1 x (2s+1) conv (optionally F x (2s+1)), then an activation.

    ``forward(c)``: (B, C, T) -> (B, C, T * prod(upsample_scales)).
    """

    def __init__(
        self,
        upsample_scales,
        nonlinear_activation: str | None = None,
        nonlinear_activation_params: dict = {},  # noqa: B006 (parallel_wavegan's signature; copied, never mutated)
        interpolate_mode: str = "nearest",
        freq_axis_kernel_size: int = 1,
        use_causal_conv: bool = False,
    ):
        super().__init__()
        if freq_axis_kernel_size < 1 or freq_axis_kernel_size % 2 != 1:
            raise ValueError(
                f"UpsampleNetwork: freq_axis_kernel_size must be odd and >= 1, got {freq_axis_kernel_size}"
            )
        scales = _integer_scales(upsample_scales, "UpsampleNetwork")
        if any(s < 1 for s in scales):
            raise ValueError(f"UpsampleNetwork: every upsample scale must be >= 1, got {list(upsample_scales)}")
        params = dict(nonlinear_activation_params or {})
        self.upsample_scales = scales
        self.use_causal_conv = use_causal_conv
        self.interpolate_mode = interpolate_mode
        self.freq_axis_kernel_size = freq_axis_kernel_size
        self.up_layers = nn.ModuleList()
        # Per scale: (stretch, conv, activation or None) — the same indices in up_layers as parallel_wavegan.
        self._scale_layers: list[tuple[Stretch2d, Conv2d, nn.Module | None]] = []
        freq_padding = (freq_axis_kernel_size - 1) // 2
        for scale in scales:
            stretch = Stretch2d(scale, 1, interpolate_mode)
            time_padding = 2 * scale if use_causal_conv else scale
            conv = Conv2d(
                1,
                1,
                kernel_size=(freq_axis_kernel_size, 2 * scale + 1),
                padding=(freq_padding, time_padding),
                bias=False,
            )
            self.up_layers += [stretch, conv]
            activation = None
            if nonlinear_activation is not None:
                activation = getattr(nn, nonlinear_activation)(**params)
                self.up_layers += [activation]
            self._scale_layers.append((stretch, conv, activation))

    @property
    def fused(self) -> bool:
        """True when each scale runs as one ``stretch_conv1d`` pass (1-wide frequency kernel, nearest stretch)."""
        return self.freq_axis_kernel_size == 1 and self.interpolate_mode == "nearest"

    @property
    def linear(self) -> bool:
        """True when the network is a linear map shared by every channel (fused, no activations): then
        :meth:`banded_upsampler` gives it as a band matrix."""
        return self.fused and all(activation is None for _, _, activation in self._scale_layers)

    def frame_support(self) -> tuple[int, int]:
        """(first, last) frame offsets an output sample reads, relative to its own frame t // hop.

        Each scale s reads input samples q // s + d, d in {first_offset, .., first_offset + 2} (see
        ``fastgan.references.upsample``); walk every phase of one frame back through the scales.
        """
        first = first_offset(self.use_causal_conv)
        hop = math.prod(self.upsample_scales)
        lows, highs = torch.arange(hop), torch.arange(hop)
        for scale in reversed(self.upsample_scales):
            lows = torch.div(lows, scale, rounding_mode="floor") + first
            highs = torch.div(highs, scale, rounding_mode="floor") + first + 2
        return int(lows.min()), int(highs.max())

    @torch.no_grad()
    def banded_upsampler(self, frames: int, device: torch.device | str | None = None) -> BandedUpsampler:
        """This network, for inputs of ``frames`` frames, as a :class:`BandedUpsampler` (exact at the edges).

        Found by running the network itself on ``width`` comb signals (comb r: ones at frames r, r + width,
        ...): each output sample reads frames in a window of ``width`` consecutive frames, so comb r's
        output there is the weight of the one window frame congruent to r. A frame's row can differ from
        the interior one only if that window reaches past an end, so combs of at most 2 * width + 3 frames
        show every row (the right-hand ones at the same distance from the end). Costs ``width`` one-channel
        upsamplings of that length, computed in fp32.
        """
        if not self.linear:
            raise ValueError("UpsampleNetwork.banded_upsampler: only for a linear network (nearest stretch, 1-wide frequency kernel, no activation)")  # fmt: skip
        if frames < 1:
            raise ValueError(f"UpsampleNetwork.banded_upsampler: frames must be >= 1, got {frames}")
        first, last = self.frame_support()
        width, hop = last - first + 1, math.prod(self.upsample_scales)
        reach = width + 1  # frames this close to an end may read past it
        probe = min(frames, 2 * reach + 1)
        if device is None:
            device = next(self.parameters()).device
        index = torch.arange(probe, device=device)
        combs = (index % width == torch.arange(width, device=device)[:, None]).float().unsqueeze(1)  # (width, 1, P)
        responses = self.forward(combs).float().view(width, probe, hop)
        source = index[:, None] + first + torch.arange(width, device=device)  # (P, width): the frame read
        rows = responses[source % width, index[:, None]]  # (P, width, hop)
        rows = rows * ((source >= 0) & (source < probe)).unsqueeze(-1)
        interior = rows[probe // 2].clone()
        # Probe frame i stands for frame i near the left end and frames - probe + i near the right end.
        candidates = {j: j for j in range(min(reach, frames))}
        candidates |= {j: j - frames + probe for j in range(max(frames - reach, 0), frames)}
        edges = tuple((j, rows[i].clone()) for j, i in sorted(candidates.items()) if not torch.equal(rows[i], interior))
        return BandedUpsampler(frames, first, interior, edges)

    def context(self, c: torch.Tensor) -> torch.Tensor:
        """The frame-rate features the upsampling stretches: ``c`` itself here (no context conv)."""
        return c

    def phase_taps(self) -> list[torch.Tensor]:
        """Each scale's smoothing conv folded into (s, 3) phase taps (differentiable in the conv weights)."""
        return [
            functional.smoothing_to_taps(effective_weight(conv), stretch.x_scale, self.use_causal_conv)
            for stretch, conv, _ in self._scale_layers
        ]

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        if c.dim() != 3:
            raise ValueError(f"UpsampleNetwork: c must be (batch, channels, time), got shape {tuple(c.shape)}")
        if not self.fused:
            return self._forward_layers(c)
        for (_, _, activation), taps in zip(self._scale_layers, self.phase_taps(), strict=True):
            slope = _fusable_slope(activation)
            c = functional.stretch_conv1d(c, taps, self.use_causal_conv, None if slope is False else slope)
            if slope is False:
                c = activation(c)
        return c

    def _forward_layers(self, c: torch.Tensor) -> torch.Tensor:
        """The stretched 2-D formulation, for a frequency kernel wider than 1 or a non-nearest stretch."""
        x = c.unsqueeze(1)  # (B, 1, C, T)
        for stretch, conv, activation in self._scale_layers:
            x = stretch(x)
            length = x.shape[-1]
            x = conv(x)
            if self.use_causal_conv:
                x = x[..., :length]
            if activation is not None:
                x = activation(x)
        return x.squeeze(1)


class ConvInUpsampleNetwork(nn.Module):
    """A context conv over the (pre-padded) conditioning, then :class:`UpsampleNetwork`.

    ``forward(c)``: (B, aux_channels, T + 2 * aux_context_window) -> (B, aux_channels, T * prod(upsample_scales)).
    With ``use_causal_conv`` the context conv looks ``aux_context_window`` frames back only.
    """

    def __init__(
        self,
        upsample_scales,
        nonlinear_activation: str | None = None,
        nonlinear_activation_params: dict = {},  # noqa: B006 (parallel_wavegan's signature; copied, never mutated)
        interpolate_mode: str = "nearest",
        freq_axis_kernel_size: int = 1,
        aux_channels: int = 80,
        aux_context_window: int = 0,
        use_causal_conv: bool = False,
    ):
        super().__init__()
        _integer_scales(upsample_scales, "ConvInUpsampleNetwork")
        self.aux_context_window = aux_context_window
        self.use_causal_conv = use_causal_conv and aux_context_window > 0
        kernel_size = aux_context_window + 1 if use_causal_conv else 2 * aux_context_window + 1
        # No padding: the caller pads the input by the context window.
        self.conv_in = Conv1d(aux_channels, aux_channels, kernel_size=kernel_size, bias=False)
        self.upsample = UpsampleNetwork(
            upsample_scales=upsample_scales,
            nonlinear_activation=nonlinear_activation,
            nonlinear_activation_params=nonlinear_activation_params,
            interpolate_mode=interpolate_mode,
            freq_axis_kernel_size=freq_axis_kernel_size,
            use_causal_conv=use_causal_conv,
        )

    def context(self, c: torch.Tensor) -> torch.Tensor:
        """The context conv alone: the frame-rate features the upsampling stretches."""
        self._check(c)
        c = self.conv_in(c)
        if self.use_causal_conv:
            c = c[:, :, : -self.aux_context_window]
        return c

    def _check(self, c: torch.Tensor) -> None:
        """The input holds the frames plus the context window on each side (``inference`` pads it)."""
        window, channels = self.aux_context_window, self.conv_in.in_channels
        if c.dim() != 3 or c.shape[1] != channels:
            raise ValueError(
                f"ConvInUpsampleNetwork: c must be (batch, {channels}, frames + 2 * aux_context_window), "
                f"got shape {tuple(c.shape)}"
            )
        need = 2 * window + 1
        if c.shape[-1] < need:
            raise ValueError(
                f"ConvInUpsampleNetwork: c has {c.shape[-1]} frames, fewer than the {need} the context conv needs "
                f"(at least one frame plus aux_context_window={window} on each side: pad the features by "
                f"{window} frames at each end), got shape {tuple(c.shape)}"
            )

    @property
    def linear(self) -> bool:
        return self.upsample.linear

    def banded_upsampler(self, frames: int, device: torch.device | str | None = None) -> BandedUpsampler:
        """The upsampling after :meth:`context`, as a band matrix (see :meth:`UpsampleNetwork.banded_upsampler`)."""
        return self.upsample.banded_upsampler(frames, device)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.context(c))


__all__ = ["Conv1d", "Conv2d", "ConvInUpsampleNetwork", "Stretch2d", "UpsampleNetwork"]
