"""Exact streaming synthesis: ``StreamingVocoder(generator, chunk_frames=N)``.

Every layer of the generator becomes a *stream node* that keeps the left context it needs from
earlier chunks (cached convolution state) and emits only the output samples whose whole receptive
field it has seen. The right context therefore shows up as a fixed look-ahead: after ``n`` mel
frames have been pushed, exactly ``n * hop - lookahead_samples`` samples have come out (once the
stream is past its start), and :meth:`StreamingVocoder.flush` applies each layer's right padding
and emits the tail. Padding at the start (reflect, replicate or zeros) is applied by each layer to
its own first samples, as the whole-utterance model does, so the concatenated output equals
``generator.inference(mel)`` to fp32 rounding for every chunk size — no overlap-add, no crossfade.

Nodes are generic over the layer types the generators are built from: ``Conv1d`` (with its own
padding or after a ``ReflectionPad1d``/``ReplicationPad1d``/``ConstantPad1d``), ``CausalConv1d``,
pointwise activations, ``ConvTranspose1d`` (torch's or fastgan's with a fused LeakyReLU) and
MelGAN's causal transposed conv, MelGAN's ``ResidualStack``, HiFi-GAN's residual blocks and
multi-receptive-field sum, Parallel WaveGAN's conditioning upsampler and WaveNet stack, and PQMF
synthesis. MelGAN, Multi-band MelGAN, HiFi-GAN and Parallel WaveGAN (fastgan's or parallel_wavegan
0.6.1's classes — the module trees are the same) are wired from them; their causal variants
(``use_causal_conv=True``: MelGAN, Parallel WaveGAN) stream with no look-ahead at all.

The state of every node depends only on the shapes of its cached tensors, so in steady state a
fixed-size chunk step always has the same shapes: on CUDA :meth:`StreamingVocoder.capture` records
it as a CUDA graph (the cached state is copied back in place at the end of the graph).
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["StreamingVocoder"]


# ----------------------------------------------------------------------------------------------
# Stream nodes. ``step(x, final)``: x (B, C, n) holds the next n input samples (n may be 0);
# returns every output sample that is now fully determined. ``final=True`` marks the end of the
# input: the node applies its right padding and emits everything left. ``count(n)`` is the number
# of output samples emitted after n input samples without ``final`` (for the look-ahead).
# ``state()``/``load_state(s)`` expose the cached tensors (for CUDA-graph capture).
# ----------------------------------------------------------------------------------------------


class _Node:
    def reset(self) -> None:
        pass

    def state(self) -> list:
        return []

    def load_state(self, state: list) -> None:
        pass


def _empty_like(x: torch.Tensor, channels: int | None = None, length: int = 0) -> torch.Tensor:
    return x.new_zeros(x.shape[0], x.shape[1] if channels is None else channels, length)


class _Pointwise(_Node):
    """A stateless per-sample function (activation, 1x1 conv without context, scaling)."""

    def __init__(self, fn):
        self.fn = fn

    def step(self, x, final):
        return self.fn(x) if x.shape[-1] else x

    def count(self, n):
        return n


class _Seq(_Node):
    def __init__(self, nodes):
        self.nodes = [n for n in nodes if n is not None]

    def step(self, x, final):
        for node in self.nodes:
            x = node.step(x, final)
        return x

    def count(self, n):
        for node in self.nodes:
            n = node.count(n)
        return n

    def reset(self):
        for node in self.nodes:
            node.reset()

    def state(self):
        return [node.state() for node in self.nodes]

    def load_state(self, state):
        for node, s in zip(self.nodes, state, strict=True):
            node.load_state(s)


class _Align:
    """Pending outputs of several streams that start at the same sample; pops the common prefix."""

    def __init__(self, k):
        self.k = k
        self.reset()

    def reset(self):
        self.pending = [None] * self.k

    def push(self, i, x):
        if x is None:
            return
        self.pending[i] = (
            x if self.pending[i] is None or self.pending[i].shape[-1] == 0 else torch.cat((self.pending[i], x), -1)
        )

    def pop(self):
        n = min(p.shape[-1] for p in self.pending)
        out = [p[..., :n] for p in self.pending]
        self.pending = [p[..., n:] for p in self.pending]
        return out

    def state(self):
        return list(self.pending)

    def load_state(self, state):
        self.pending = list(state)


class _Parallel(_Node):
    """The same input through several branches; their outputs aligned and combined (a residual sum, a mean)."""

    def __init__(self, branches, combine):
        self.branches = branches
        self.combine = combine
        self.align = _Align(len(branches))

    def step(self, x, final):
        for i, branch in enumerate(self.branches):
            self.align.push(i, branch.step(x, final))
        return self.combine(self.align.pop())

    def count(self, n):
        return min(b.count(n) for b in self.branches)

    def reset(self):
        self.align.reset()
        for b in self.branches:
            b.reset()

    def state(self):
        return [self.align.state()] + [b.state() for b in self.branches]

    def load_state(self, state):
        self.align.load_state(state[0])
        for b, s in zip(self.branches, state[1:], strict=True):
            b.load_state(s)


class _Repeat(_Node):
    """Nearest-neighbour stretch in time: each sample repeated ``scale`` times (stateless)."""

    def __init__(self, scale):
        self.scale = scale

    def step(self, x, final):
        return x.repeat_interleave(self.scale, dim=-1) if x.shape[-1] else x

    def count(self, n):
        return n * self.scale


class _Identity(_Node):
    def step(self, x, final):
        return x

    def count(self, n):
        return n


def _sum(parts):
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total


class _Conv(_Node):
    """A stride-1 (dilated, grouped) conv over [left pad, input, right pad], fed in pieces.

    ``buf`` holds the padded sequence from the first sample the next output needs (plus, for
    reflect/replicate, enough raw samples to build the right pad); ``skip`` outputs of the next
    conv over ``buf`` were already emitted. Before the left pad can be built (reflection needs
    ``pad_left + 1`` samples) the raw input waits in ``buf`` with ``started`` False.
    """

    def __init__(self, weight, bias, dilation=1, pad_left=0, pad_right=0, mode="zeros", groups=1, pre=None, value=0.0):
        if mode not in ("zeros", "constant", "reflect", "replicate"):
            raise ValueError(f"StreamingVocoder: unsupported padding mode {mode!r}")
        self.weight, self.bias, self.dilation, self.groups = weight, bias, dilation, groups
        self.pad_left, self.pad_right, self.mode, self.value = pad_left, pad_right, mode, value
        self.pre = pre
        self.span = (weight.shape[-1] - 1) * dilation  # receptive field - 1
        need_raw = {"reflect": pad_right + 1, "replicate": 1}.get(mode, 0) if pad_right else 0
        self.keep = max(self.span, need_raw)
        self.reset()

    def reset(self):
        self.buf = None
        self.started = False
        self.skip = 0

    def state(self):
        return [self.buf]

    def load_state(self, state):
        self.buf = state[0]

    def _pad(self, x, left, right):
        if self.mode in ("zeros", "constant"):
            return F.pad(x, (left, right), mode="constant", value=self.value)
        if self.mode == "reflect" and x.shape[-1] <= max(left, right):
            raise ValueError(
                f"StreamingVocoder: reflection padding of {max(left, right)} needs more than that many samples "
                f"of input, the stream has {x.shape[-1]} (the utterance is too short for this model)"
            )
        return F.pad(x, (left, right), mode=self.mode)

    def _left_ready(self, n_raw):
        if self.pad_left == 0 or self.mode in ("zeros", "constant"):
            return True
        return n_raw >= (self.pad_left + 1 if self.mode == "reflect" else 1)

    def step(self, x, final):
        if self.pre is not None and x.shape[-1]:
            x = self.pre(x)
        buf = x if self.buf is None else torch.cat((self.buf, x), -1)
        if not self.started:
            if not (self._left_ready(buf.shape[-1]) or (final and buf.shape[-1])):
                self.buf = buf
                return _empty_like(x, self.weight.shape[0])
            buf = self._pad(buf, self.pad_left, 0) if self.pad_left else buf
            self.started = True
        if final:
            raw = buf if self.pad_right == 0 else self._pad_right(buf)
            skip = self.skip
            self.reset()
            if raw.shape[-1] - self.span - skip <= 0:
                return _empty_like(x, self.weight.shape[0])
            return self._conv(raw)[..., skip:]
        n_out = buf.shape[-1] - self.span - self.skip
        if n_out <= 0:
            self.buf = buf
            return _empty_like(x, self.weight.shape[0])
        out = self._conv(buf)[..., self.skip :]
        keep = min(self.keep, buf.shape[-1])
        self.skip = keep - self.span
        self.buf = buf[..., buf.shape[-1] - keep :]
        return out

    def _pad_right(self, buf):
        if self.mode in ("zeros", "constant"):
            return F.pad(buf, (0, self.pad_right), value=self.value)
        return self._pad(buf, 0, self.pad_right)

    def _conv(self, x):
        return F.conv1d(x, self.weight, self.bias, dilation=self.dilation, groups=self.groups)

    def count(self, n):
        if not self._left_ready(n):
            return 0
        return max(0, n + self.pad_left - self.span)


class _ConvTranspose(_Node):
    """``conv_transpose1d(x, stride, padding, output_padding)`` fed in pieces.

    Output t sums inputs i with ``i * stride + k = t + padding`` (k < K): it is final once input
    ``floor((t + padding) / stride)`` is in. ``buf`` keeps the last ``floor((K - 1) / stride)``
    inputs; ``u_start`` is where the next output starts in the transposed conv over ``buf``.
    ``pad_left`` replicate-pads the stream's first sample (MelGAN's causal transposed conv).
    """

    def __init__(self, weight, bias, stride, padding=0, output_padding=0, pre=None, pad_left=0):
        self.weight, self.bias, self.stride = weight, bias, stride
        self.padding, self.output_padding, self.pre, self.pad_left = padding, output_padding, pre, pad_left
        self.kernel = weight.shape[-1]
        self.context = (self.kernel - 1) // stride
        self.reset()

    def reset(self):
        self.buf = None
        self.u_start = self.padding
        self.started = False

    def state(self):
        return [self.buf]

    def load_state(self, state):
        self.buf = state[0]

    def step(self, x, final):
        if self.pre is not None and x.shape[-1]:
            x = self.pre(x)
        if not self.started and x.shape[-1] and self.pad_left:
            x = F.pad(x, (self.pad_left, 0), mode="replicate")
        if x.shape[-1]:
            self.started = True
        buf = x if self.buf is None else torch.cat((self.buf, x), -1)
        m, s = buf.shape[-1], self.stride
        out_channels = self.weight.shape[1]
        if m == 0:
            return _empty_like(x, out_channels)
        u_end = (m - 1) * s + self.kernel - self.padding + self.output_padding if final else m * s
        if u_end <= self.u_start:
            self.buf = buf
            if final:
                self.reset()
            return _empty_like(x, out_channels)
        src = buf
        extra = u_end - ((m - 1) * s + self.kernel)
        if extra > 0:  # output_padding past the last tap: those samples are bias only
            src = F.pad(buf, (0, -(-extra // s)))
        out = F.conv_transpose1d(src, self.weight, self.bias, stride=s)[..., self.u_start : u_end]
        if final:
            self.reset()
            return out
        keep = min(self.context, m)
        self.buf = buf[..., m - keep :]
        self.u_start = keep * s
        return out

    def count(self, n):
        n = n + self.pad_left if n else 0
        return max(0, n * self.stride - self.padding)


class _WaveNet(_Node):
    """Parallel WaveGAN's WaveNet stack over two streams: noise (after the first 1x1 conv) and the
    upsampled features. Each layer's dilated conv is a :class:`_Conv`; the residual input, the
    features and the running skip sum wait in an aligner until the conv's output catches up."""

    def __init__(self, layers, first, last, feature_net, scale, residual_channels, out_channels):
        self.layers = layers  # [(conv node, w_aux, w_out, b_out, w_skip, b_skip)]
        self.residual_channels, self.out_channels = residual_channels, out_channels
        self.first, self.last, self.features, self.scale = first, last, feature_net, scale
        self.aligns = [_Align(4) for _ in layers]
        self.noise_align = _Align(2)

    def reset(self):
        self.features.reset()
        self.noise_align.reset()
        for a in self.aligns:
            a.reset()
        for layer in self.layers:
            layer[0].reset()

    def state(self):
        return [self.features.state(), self.noise_align.state()] + [
            [a.state(), layer[0].state()] for a, layer in zip(self.aligns, self.layers, strict=True)
        ]

    def load_state(self, state):
        self.features.load_state(state[0])
        self.noise_align.load_state(state[1])
        for a, layer, s in zip(self.aligns, self.layers, state[2:], strict=True):
            a.load_state(s[0])
            layer[0].load_state(s[1])

    def step(self, inputs, final):
        mel, noise = inputs
        c = self.features.step(mel, final)
        # Noise is given as it comes; the features lag: keep both aligned from here on.
        self.noise_align.push(0, noise)
        self.noise_align.push(1, c)
        z, c = self.noise_align.pop()
        x = self.first(z) if z.shape[-1] else z.new_zeros(z.shape[0], self.residual_channels, 0)
        skips = None
        for align, (conv, w_aux, w_out, b_out, w_skip, b_skip) in zip(self.aligns, self.layers, strict=True):
            h = conv.step(x, final)
            align.push(0, h)
            align.push(1, x)
            align.push(2, c)
            align.push(3, skips if skips is not None else x.new_zeros(x.shape[0], w_skip.shape[0], x.shape[-1]))
            h, x, c, skips = align.pop()
            if h.shape[-1] == 0:  # nothing new is complete here yet: later layers still see the step
                continue
            if w_aux is not None:
                h = h + F.conv1d(c, w_aux)
            a, b = h.split(h.shape[1] // 2, dim=1)
            g = torch.tanh(a) * torch.sigmoid(b)
            skips = skips + F.conv1d(g, w_skip, b_skip)
            x = (F.conv1d(g, w_out, b_out) + x) * math.sqrt(0.5)
        if skips.shape[-1] == 0:
            return skips.new_zeros(skips.shape[0], self.out_channels, 0)
        return self.last(skips * self.scale)

    def count(self, n):
        return 0  # computed by StreamingVocoder from the parts (see _pwg_lookahead)


# ----------------------------------------------------------------------------------------------
# Module -> node conversion (works on a copy of the generator with weight norm folded).
# ----------------------------------------------------------------------------------------------

_PADS = {
    nn.ReflectionPad1d: "reflect",
    nn.ReplicationPad1d: "replicate",
    nn.ConstantPad1d: "constant",
    nn.ZeroPad1d: "zeros",
}


_TARGET: dict = {}  # device/dtype the nodes are built for (set while a StreamingVocoder is built)


def _tensor(t: torch.Tensor | None) -> torch.Tensor | None:
    """A detached copy of a weight on the vocoder's device and dtype."""
    if t is None:
        return None
    return t.detach().to(**_TARGET).clone()


def _effective_weight(module) -> torch.Tensor:
    """The weight a conv computes with, under either weight-norm form (the model is left unchanged)."""
    from torch.nn.utils.weight_norm import WeightNorm

    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, WeightNorm):
            return hook.compute_weight(module)
    return module.weight  # plain, or parametrized (the property computes it)


def _weights(module):
    return _tensor(_effective_weight(module)), _tensor(module.bias)


def _is_activation(module) -> bool:
    return isinstance(module, (nn.LeakyReLU, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Identity, nn.ELU, nn.GELU, nn.SiLU))


def _activation(module):
    if type(module) is nn.LeakyReLU:
        slope = module.negative_slope
        return lambda x: F.leaky_relu(x, slope)
    if type(module) is nn.ReLU:
        return torch.relu
    if type(module) is nn.Tanh:
        return torch.tanh
    return lambda x: module(x.clone()) if getattr(module, "inplace", False) else module(x)


def _conv1d_node(conv: nn.Conv1d, pad_left=0, pad_right=0, mode="zeros", value=0.0, pre=None):
    if conv.stride != (1,):
        raise ValueError(f"StreamingVocoder: strided Conv1d {conv} is not supported in a generator")
    w, b = _weights(conv)
    p = conv.padding[0] if isinstance(conv.padding, tuple) else None
    if p is None:
        raise ValueError(f"StreamingVocoder: Conv1d padding {conv.padding!r} is not supported")
    if p:
        if pad_left or pad_right:
            raise ValueError(f"StreamingVocoder: {conv} has its own padding after a padding layer")
        pad_left = pad_right = p
        mode = {"zeros": "zeros", "reflect": "reflect", "replicate": "replicate"}[conv.padding_mode]
    return _Conv(w, b, conv.dilation[0], pad_left, pad_right, mode, conv.groups, pre=pre, value=value)


def _fused_slope(module):
    slope = getattr(module, "negative_slope", None)
    return None if slope is None else float(slope)


def _convt_node(module, pre=None):
    """torch's/fastgan's ConvTranspose1d, or MelGAN's causal one (``pad`` + ``deconv``, cropped by stride)."""
    pad_left = 0
    if hasattr(module, "deconv"):
        pad = module.pad
        if not isinstance(pad, nn.ReplicationPad1d) or tuple(pad.padding) != (1, 0):
            raise ValueError(f"StreamingVocoder: unsupported causal transposed conv padding {pad}")
        conv, pad_left = module.deconv, 1
        padding, output_padding = module.stride, 0
        if conv.padding[0] != 0:
            raise ValueError("StreamingVocoder: causal transposed conv with its own padding")
    else:
        conv = module
        padding, output_padding = conv.padding[0], conv.output_padding[0]
    if conv.groups != 1 or conv.dilation[0] != 1:
        raise ValueError(f"StreamingVocoder: ConvTranspose1d with groups/dilation is not supported: {conv}")
    slope = _fused_slope(conv)
    if slope is not None:
        fused = lambda x: F.leaky_relu(x, slope)  # noqa: E731
        pre = fused if pre is None else (lambda x, p=pre: fused(p(x)))
    w, b = _weights(conv)
    return _ConvTranspose(w, b, conv.stride[0], padding, output_padding, pre=pre, pad_left=pad_left)


def _sequence_nodes(modules) -> _Seq:
    """A list of layers in order: pads merge into the conv after them, activations fused into a
    fastgan ConvTranspose1d (``negative_slope``) are skipped, residual blocks become parallel nodes."""
    modules = list(modules)
    nodes = []
    i = 0
    while i < len(modules):
        m = modules[i]
        nxt = modules[i + 1] if i + 1 < len(modules) else None
        if type(m) in _PADS:
            if not isinstance(nxt, nn.Conv1d):
                raise ValueError(f"StreamingVocoder: a padding layer must precede a Conv1d, got {nxt}")
            left, right = m.padding
            value = float(getattr(m, "value", 0.0))
            nodes.append(_conv1d_node(nxt, left, right, _PADS[type(m)], value=value))
            i += 2
            continue
        if _is_activation(m):
            target = getattr(nxt, "deconv", nxt)
            if type(m) is nn.LeakyReLU and _fused_slope(target) == float(m.negative_slope) and _is_convt(nxt):
                i += 1  # applied by the fused transposed conv after it
                continue
            nodes.append(_Pointwise(_activation(m)))
        else:
            nodes.append(_module_node(m))
        i += 1
    return _Seq(nodes)


def _is_convt(m) -> bool:
    return isinstance(m, nn.ConvTranspose1d) or isinstance(getattr(m, "deconv", None), nn.ConvTranspose1d)


def _module_node(m) -> _Node:
    name = type(m).__name__
    if isinstance(m, nn.Sequential):
        return _sequence_nodes(m)
    if _is_activation(m):
        return _Pointwise(_activation(m))
    if _is_convt(m):
        return _convt_node(m)
    if name == "CausalConv1d":
        pad = m.pad
        left = pad.padding[0]
        mode = _PADS.get(type(pad))
        if mode is None:
            raise ValueError(f"StreamingVocoder: unsupported causal padding {pad}")
        return _conv1d_node(m.conv, left, 0, mode, value=float(getattr(pad, "value", 0.0)))
    if isinstance(m, nn.Conv1d):
        return _conv1d_node(m)
    if name == "ResidualStack":
        return _Parallel([_sequence_nodes(m.stack), _module_node(m.skip_layer)], _sum)
    if name == "HiFiGANResidualBlock":
        steps = []
        for i in range(len(m.convs1)):
            body = [m.convs1[i]] + ([m.convs2[i]] if getattr(m, "use_additional_convs", False) else [])
            steps.append(_Parallel([_sequence_nodes(body), _Identity()], _sum))
        return _Seq(steps)
    raise ValueError(f"StreamingVocoder: no streaming form for layer {name}")


def _pqmf_node(pqmf) -> _ConvTranspose:
    """PQMF synthesis as one transposed conv: interpolation and the band filters together."""
    filt = _tensor(pqmf.synthesis_filter)  # (1, subbands, taps + 1)
    subbands = int(pqmf.subbands)
    taps = filt.shape[-1] - 1
    weight = (filt.flip(2) * subbands).transpose(0, 1).contiguous()
    return _ConvTranspose(weight, None, subbands, padding=taps // 2, output_padding=subbands - 1)


# ----------------------------------------------------------------------------------------------


def _chunk_frames(chunk_frames) -> int:
    """A whole number of frames >= 1 (an integral float such as 4.0 too); never truncated."""
    message = f"StreamingVocoder: chunk_frames must be an integer >= 1, got {chunk_frames!r}"
    if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, numbers.Real):
        raise TypeError(message)
    if not math.isfinite(chunk_frames) or chunk_frames != int(chunk_frames) or chunk_frames < 1:
        raise ValueError(message)
    return int(chunk_frames)


def _real_floating(t: torch.Tensor, name: str) -> None:
    """A cast to the vocoder's dtype would drop an imaginary part or make a mask into numbers: refuse."""
    if not t.is_floating_point():
        raise TypeError(f"StreamingVocoder.push: {name} must be real floating-point, got dtype {t.dtype}")


class StreamingVocoder:
    """Exact chunked synthesis with a generator: ``push(mel_chunk) -> audio``, then ``flush()``.

    ``generator``: a MelGAN, Multi-band MelGAN (``generator.pqmf`` set, or ``pqmf=``), HiFi-GAN or
    Parallel WaveGAN generator (fastgan's or parallel_wavegan's). Its weights are copied with
    weight norm folded when the vocoder is built, so later changes to ``generator`` are not seen.

    ``push`` takes (frames, mel) like ``generator.inference`` (returns (samples,)) or
    (batch, mel, frames) (returns (batch, 1, samples)); any number of frames, ``chunk_frames`` is
    the nominal size (what :meth:`capture` records and what the latency figures assume). For
    Parallel WaveGAN pass the matching noise as ``push(mel, noise=...)`` ((samples,) or
    (batch, 1, samples), frames x hop samples), or leave it out to draw N(0, 1) noise.

    ``lookahead_samples`` / ``lookahead_frames`` / ``lookahead_ms``: the algorithmic look-ahead
    (right context): output for frame f is complete once frame ``f + lookahead_frames`` is in.
    ``latency_ms``: look-ahead plus one chunk of buffering.
    """

    def __init__(
        self,
        generator: nn.Module,
        chunk_frames: int = 10,
        *,
        pqmf: nn.Module | None = None,
        sample_rate: int = 22050,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        self.chunk_frames = _chunk_frames(chunk_frames)
        self.sample_rate = int(sample_rate)
        model = generator
        parameter = next(model.parameters(), None)
        if parameter is None:
            raise ValueError(
                f"StreamingVocoder: {type(generator).__name__} has no parameters; expected a MelGAN, Multi-band "
                "MelGAN, HiFi-GAN or Parallel WaveGAN generator"
            )
        self.device = torch.device(device) if device is not None else parameter.device
        self.dtype = dtype if dtype is not None else parameter.dtype
        self.kind = type(generator).__name__
        self._graph = None
        pqmf = pqmf if pqmf is not None else getattr(model, "pqmf", None)
        _TARGET.update(device=self.device, dtype=self.dtype)
        try:
            self._build(model, pqmf)
        finally:
            _TARGET.clear()
        self._is_pwg = isinstance(self._root, _WaveNet)
        self.lookahead_samples = self._lookahead()
        self.reset()

    def _build(self, model, pqmf) -> None:
        with torch.no_grad():
            if hasattr(model, "melgan"):
                self._root = _sequence_nodes(model.melgan)
                scale = math.prod(model.upsample_scales) if hasattr(model, "upsample_scales") else None
                self.in_channels = self._in_channels_of(model)
            elif hasattr(model, "upsamples") and hasattr(model, "blocks"):
                self._root = self._hifigan(model)
                scale = math.prod(model.upsample_scales) if hasattr(model, "upsample_scales") else None
                self.in_channels = self._in_channels_of(model)
            elif hasattr(model, "conv_layers") and hasattr(model, "first_conv"):
                self._root = self._pwg(model)
                scale = model.upsample_factor
                self.in_channels = model.aux_channels
            else:
                raise ValueError(f"StreamingVocoder: unsupported generator {type(model).__name__}")
            if scale is None:  # parallel_wavegan's MelGAN/HiFi-GAN keep no upsample_scales attribute
                scale = self._probe_scale(model)
            self.subbands = 1
            if pqmf is not None:
                self._root = _Seq([self._root, _pqmf_node(pqmf)])
                self.subbands = int(pqmf.subbands)
        self.hop_size = int(scale) * self.subbands

    # -- wiring ---------------------------------------------------------------------------------

    @staticmethod
    def _probe_scale(model) -> int:
        x = torch.zeros(1, StreamingVocoder._in_channels_of(model), 4, device=next(model.parameters()).device)
        with torch.no_grad():
            return model(x).shape[-1] // 4

    @staticmethod
    def _in_channels_of(model) -> int:
        for m in model.modules():
            if isinstance(m, nn.Conv1d):
                return m.in_channels
        raise ValueError("StreamingVocoder: generator has no Conv1d")

    @staticmethod
    def _hifigan(model) -> _Node:
        nodes = [_module_node(model.input_conv)]
        num_blocks = len(model.blocks) // len(model.upsamples)
        for i, up in enumerate(model.upsamples):
            nodes.append(_sequence_nodes(up))
            blocks = [_module_node(b) for b in model.blocks[i * num_blocks : (i + 1) * num_blocks]]
            nodes.append(_Parallel(blocks, lambda parts, k=num_blocks: _sum(parts) / k))
        nodes.append(_sequence_nodes(model.output_conv))
        return _Seq(nodes)

    @staticmethod
    def _pwg(model) -> _WaveNet:
        up = model.upsample_net
        feature_nodes = []
        if up is None:
            raise ValueError("StreamingVocoder: Parallel WaveGAN without a conditioning upsampler is not supported")
        if type(up).__name__ == "MelGANGenerator":
            feature_nodes.append(_sequence_nodes(up.melgan))
        else:
            acw = int(getattr(model, "aux_context_window", 0))
            upsample = up
            if hasattr(up, "conv_in"):
                # inference() replicate-pads the features by the context window on both sides; the causal
                # context conv (acw + 1 taps) drops its last acw outputs, so it reads the left padding only.
                right = 0 if getattr(up, "use_causal_conv", False) else acw
                feature_nodes.append(_Conv(_weights(up.conv_in)[0], None, 1, acw, right, "replicate"))
                upsample = up.upsample
            layers = list(upsample.up_layers)
            causal = bool(getattr(upsample, "use_causal_conv", False))
            i = 0
            while i < len(layers):
                stretch, conv = layers[i], layers[i + 1]
                if getattr(stretch, "mode", "nearest") != "nearest" or stretch.y_scale != 1:
                    raise ValueError("StreamingVocoder: only nearest time stretch is supported in the upsampler")
                if conv.kernel_size[0] != 1:
                    raise ValueError("StreamingVocoder: only freq_axis_kernel_size=1 is supported in the upsampler")
                s = stretch.x_scale
                feature_nodes.append(_Repeat(s))
                w = _weights(conv)[0][:, :, 0, :]  # (1, 1, 2s+1): the same filter on every feature channel
                wb = w.expand(model.aux_channels, 1, w.shape[-1]).contiguous()
                pad = conv.padding[1]
                feature_nodes.append(_Conv(wb, None, 1, pad, 0 if causal else pad, "zeros", groups=model.aux_channels))
                i += 2
                if i < len(layers) and _is_activation(layers[i]):
                    feature_nodes.append(_Pointwise(_activation(layers[i])))
                    i += 1
        features = _Seq(feature_nodes)
        wf, bf = _weights(model.first_conv)
        first = lambda z: F.conv1d(z, wf, bf)  # noqa: E731
        layers = []
        for block in model.conv_layers:
            if getattr(block, "use_causal_conv", False):
                # padded (k - 1) * d on both sides, the right part cropped: the left padding alone
                w, b = _weights(block.conv)
                conv = _Conv(w, b, block.conv.dilation[0], block.conv.padding[0], 0, "zeros")
            else:
                conv = _conv1d_node(block.conv)
            aux = _weights(block.conv1x1_aux)[0] if block.conv1x1_aux is not None else None
            layers.append((conv, aux, *_weights(block.conv1x1_out), *_weights(block.conv1x1_skip)))
        last = _sequence_nodes(model.last_conv_layers)
        last_fn = lambda x: last.step(x, False)  # noqa: E731  (1x1 convs and ReLUs: stateless)
        return _WaveNet(layers, first, last_fn, features, math.sqrt(1.0 / len(layers)), wf.shape[0],
                        model.last_conv_layers[-1].out_channels)  # fmt: skip

    def _lookahead(self) -> int:
        n = 4096
        if self._is_pwg:
            feat = self._root.features.count(n)  # upsampled-feature samples out after n frames
            conv_lag = sum(layer[0].pad_right for layer in self._root.layers)
            out = feat - conv_lag
        else:
            out = self._root.count(n)
        return n * self.hop_size - out

    # -- streaming ------------------------------------------------------------------------------

    @property
    def lookahead_frames(self) -> int:
        return -(-self.lookahead_samples // self.hop_size)

    @property
    def lookahead_ms(self) -> float:
        return 1000.0 * self.lookahead_samples / self.sample_rate

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency: one chunk of buffering plus the look-ahead."""
        return 1000.0 * (self.chunk_frames * self.hop_size + self.lookahead_samples) / self.sample_rate

    def reset(self) -> None:
        """Start a new utterance."""
        self._root.reset()
        self._batched = None
        self._frames = 0
        self._emitted = 0

    def _prepare(self, mel: torch.Tensor, noise) -> tuple:
        if not isinstance(mel, torch.Tensor):
            mel = torch.as_tensor(mel)
        given = tuple(mel.shape)  # errors quote the caller's shape, not the batched view below
        if mel.dim() == 2:
            batched = False
            mel = mel.transpose(0, 1).unsqueeze(0)
        elif mel.dim() == 3:
            batched = True
        else:
            raise ValueError(
                f"StreamingVocoder.push: mel must be (frames, {self.in_channels}) or (batch, {self.in_channels}, frames), "
                f"got shape {tuple(mel.shape)}"
            )
        if self.in_channels is not None and mel.shape[1] != self.in_channels:
            raise ValueError(
                f"StreamingVocoder.push: the generator takes {self.in_channels} mel channels, got shape {given}"
            )
        if self._batched is not None and batched != self._batched:
            raise ValueError(
                "StreamingVocoder.push: mixing (frames, mel) and (batch, mel, frames) chunks in one stream"
            )
        if self._batched is not None and mel.shape[0] != self._batch:
            raise ValueError(
                f"StreamingVocoder.push: a chunk with a batch of {mel.shape[0]} (shape {given}), but this utterance "
                f"has batch {self._batch}; flush() or reset() first to start one with another batch"
            )
        _real_floating(mel, "mel")
        self._batched = batched
        self._batch = mel.shape[0]
        mel = mel.to(device=self.device, dtype=self.dtype)
        if self._is_pwg:
            samples = mel.shape[-1] * self.hop_size
            if noise is None:
                noise = torch.randn(mel.shape[0], 1, samples, device=self.device, dtype=self.dtype)
            else:
                noise = torch.as_tensor(noise)
                _real_floating(noise, "noise")
                noise = noise.to(device=self.device, dtype=self.dtype)
                noise = noise.reshape(1, 1, -1) if noise.dim() <= 2 and not batched else noise
                if noise.shape != (mel.shape[0], 1, samples):
                    raise ValueError(
                        f"StreamingVocoder.push: noise must hold {samples} samples per item (frames x hop), "
                        f"got shape {tuple(noise.shape)}"
                    )
        elif noise is not None:
            raise ValueError(f"StreamingVocoder.push: noise is only for Parallel WaveGAN, not {self.kind}")
        return mel, noise

    def _finish(self, audio: torch.Tensor) -> torch.Tensor:
        self._emitted += audio.shape[-1]
        return audio if self._batched else audio.reshape(-1)

    @torch.no_grad()
    def push(self, mel_chunk, noise=None) -> torch.Tensor:
        """Feed the next mel frames; returns every audio sample they complete (possibly none)."""
        mel, noise = self._prepare(mel_chunk, noise)
        self._frames += mel.shape[-1]
        if self._graph is not None and self._graph.matches(mel, noise):
            return self._finish(self._graph.replay(mel, noise))
        return self._finish(self._step(mel, noise, False))

    def _step(self, mel, noise, final):
        if self._is_pwg:
            return self._root.step((mel, noise), final)
        return self._root.step(mel, final)

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        """End of utterance: apply the right padding, return the remaining samples, and reset."""
        if self._batched is None:
            raise ValueError("StreamingVocoder.flush: nothing was pushed")
        empty = torch.zeros(self._batch, self.in_channels, 0, device=self.device, dtype=self.dtype)
        noise = torch.zeros(self._batch, 1, 0, device=self.device, dtype=self.dtype) if self._is_pwg else None
        out = self._finish(self._step(empty, noise, True))
        expected = self._frames * self.hop_size
        if self._emitted != expected:
            raise RuntimeError(
                f"StreamingVocoder: emitted {self._emitted} samples for {self._frames} frames, expected {expected}"
            )
        self.reset()
        return out

    def stream(self, mel, noise=None):
        """Push ``mel`` (frames, mel) in ``chunk_frames`` pieces and flush; yields each piece of audio.

        ``mel`` and ``noise`` may be tensors or arrays, as :meth:`push` takes them."""
        mel = mel if isinstance(mel, torch.Tensor) else torch.as_tensor(mel)
        if noise is not None and not isinstance(noise, torch.Tensor):
            noise = torch.as_tensor(noise)
        frames = mel.shape[0] if mel.dim() == 2 else mel.shape[-1]
        for start in range(0, frames, self.chunk_frames):
            piece = (
                mel[start : start + self.chunk_frames]
                if mel.dim() == 2
                else mel[..., start : start + self.chunk_frames]
            )
            z = None
            if noise is not None:
                lo, hi = start * self.hop_size, min(start + self.chunk_frames, frames) * self.hop_size
                z = noise[lo:hi] if noise.dim() == 1 else noise[..., lo:hi]
            yield self.push(piece, z)
        yield self.flush()

    # -- CUDA graphs ----------------------------------------------------------------------------

    @torch.no_grad()
    def capture(self, batch: int = 1, *, emulate: bool = False) -> bool:
        """Record the steady-state ``chunk_frames`` step as a CUDA graph (CUDA only).

        Call at the start of an utterance (after :meth:`reset`); it pushes warm-up chunks of zeros
        internally and resets again. Returns False (and changes nothing) off CUDA. Later pushes of
        exactly ``chunk_frames`` frames whose cached state has the steady-state shapes replay it.
        ``emulate=True`` (any device, for tests) runs the same static-state step eagerly instead.
        """
        if self.device.type != "cuda" and not emulate:
            return False
        self._graph = _GraphStep(self, batch, emulate=emulate or self.device.type != "cuda")
        self.reset()
        return True


def _flatten(state):
    for s in state:
        if isinstance(s, list):
            yield from _flatten(s)
        else:
            yield s


def _shapes(state):
    return [None if s is None else tuple(s.shape) for s in _flatten(state)]


class _GraphStep:
    """One captured steady-state chunk step; the cached tensors it reads are updated in place."""

    def __init__(self, vocoder: StreamingVocoder, batch: int, emulate: bool = False):
        v = vocoder
        self.v = v
        frames = v.chunk_frames
        c = v.in_channels or 1
        self.mel = torch.zeros(batch, c, frames, device=v.device, dtype=v.dtype)
        self.noise = torch.zeros(batch, 1, frames * v.hop_size, device=v.device, dtype=v.dtype) if v._is_pwg else None
        # Warm up until the state's shapes stop changing (past every layer's start).
        v.reset()
        previous = None
        for _ in range(64):
            v._step(self.mel, self.noise, False)
            shapes = _shapes(v._root.state())
            if shapes == previous:
                break
            previous = shapes
        else:
            raise RuntimeError("StreamingVocoder.capture: the stream state did not reach a steady shape")
        self.shapes = previous
        if not emulate:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):  # one more warm-up step on a side stream, as torch recommends
                v._step(self.mel, self.noise, False)
            torch.cuda.current_stream().wait_stream(stream)
        # The static state: the tensors the graph reads at the start of a step and overwrites at its end.
        self.static = [t.clone() if isinstance(t, torch.Tensor) else t for t in _flatten(v._root.state())]
        v._root.load_state(_rebuild(v._root.state(), iter(self.static)))
        self.graph, self.out = None, None
        if not emulate:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.out = self._body()
        v._root.load_state(_rebuild(v._root.state(), iter(self.static)))

    def _body(self) -> torch.Tensor:
        """One step from the static state; the new state is copied back into it in place."""
        v = self.v
        out = v._step(self.mel, self.noise, False)
        for old, new in zip(self.static, _flatten(v._root.state()), strict=True):
            if isinstance(old, torch.Tensor):
                old.copy_(new)
        return out

    def matches(self, mel, noise) -> bool:
        return mel.shape == self.mel.shape and _shapes(self.v._root.state()) == self.shapes

    def replay(self, mel, noise) -> torch.Tensor:
        v = self.v
        # The graph reads and writes the static state tensors: copy the live state in if it is not them.
        live = list(_flatten(v._root.state()))
        for old, new in zip(self.static, live, strict=True):
            if isinstance(old, torch.Tensor) and new is not old:
                old.copy_(new)
        v._root.load_state(_rebuild(v._root.state(), iter(self.static)))
        self.mel.copy_(mel)
        if noise is not None:
            self.noise.copy_(noise)
        if self.graph is None:  # emulation (tests on CPU): run the recorded body eagerly
            out = self._body()
            v._root.load_state(_rebuild(v._root.state(), iter(self.static)))
            return out.clone()
        self.graph.replay()
        return self.out.clone()


def _rebuild(structure, values):
    return [_rebuild(s, values) if isinstance(s, list) else next(values) for s in structure]
