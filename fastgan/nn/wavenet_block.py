"""Parallel WaveGAN's WaveNet gated residual block, drop-in for parallel_wavegan 0.6.1's layer.

Same class name, constructor arguments and defaults, forward signature and state_dict keys as
``parallel_wavegan.layers.WaveNetResidualBlock`` (submodules ``conv``, ``conv1x1_aux``,
``conv1x1_out``, ``conv1x1_skip``, so either weight-norm form applied over them by a model shows
under the same keys), but ``forward`` runs the whole block as one op,
:func:`fastgan.functional.wavenet_block`. Active dropout (training with p > 0) and convs carrying
a hook other than weight norm run the plain composition instead, exactly as parallel_wavegan does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fastgan import functional
from fastgan.nn._weight_norm import effective_weight, fold_weight_norm
from fastgan.references.upsample import BandedUpsampler

_SQRT_HALF = math.sqrt(0.5)


def _init_conv(conv: nn.Conv1d) -> nn.Conv1d:
    # parallel_wavegan's Conv1d initialisation: He-normal weights for ReLU gain, zero biases.
    nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


class WaveNetResidualBlock(nn.Module):
    """WaveNet's gated residual block: ``forward(x, c, skip_sum=None) -> (x_out, skip)``.

    dropout -> dilated conv to gate channels (+ 1x1 conv of the aux features ``c``) -> split ->
    tanh * sigmoid -> 1x1 convs to skip and residual channels -> ``(out + x) * sqrt(0.5)``.
    ``c`` may be None (the aux conv is then skipped, as parallel_wavegan does); a block built with
    ``aux_channels <= 0`` has no aux conv and rejects a ``c``. Given ``skip_sum`` (B, S, T), the
    returned skip is ``skip_sum + skip``: a stack accumulates its skip connections without keeping
    one tensor per layer. :meth:`fold_weight_norm` folds either weight-norm form into plain
    weights once, for inference.
    """

    def __init__(
        self,
        kernel_size: int = 3,
        residual_channels: int = 64,
        gate_channels: int = 128,
        skip_channels: int = 64,
        aux_channels: int = 80,
        dropout: float = 0.0,
        dilation: int = 1,
        bias: bool = True,
        use_causal_conv: bool = False,
    ):
        super().__init__()
        if use_causal_conv:
            padding = (kernel_size - 1) * dilation
        else:
            if (kernel_size - 1) % 2:
                raise ValueError(
                    f"WaveNetResidualBlock: a non-causal block needs an odd kernel_size, got {kernel_size}"
                )
            padding = (kernel_size - 1) // 2 * dilation
        if gate_channels % 2:
            raise ValueError(f"WaveNetResidualBlock: gate_channels must be even (tanh and sigmoid halves), got {gate_channels}")  # fmt: skip
        self.dropout = dropout
        self.use_causal_conv = use_causal_conv
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.conv = _init_conv(
            nn.Conv1d(residual_channels, gate_channels, kernel_size, padding=padding, dilation=dilation, bias=bias)
        )
        self.conv1x1_aux = (
            _init_conv(nn.Conv1d(aux_channels, gate_channels, 1, bias=False)) if aux_channels > 0 else None
        )
        half = gate_channels // 2
        self.conv1x1_out = _init_conv(nn.Conv1d(half, residual_channels, 1, bias=bias))
        self.conv1x1_skip = _init_conv(nn.Conv1d(half, skip_channels, 1, bias=bias))

    def extra_repr(self) -> str:
        return f"dilation={self.dilation}, dropout={self.dropout}, use_causal_conv={self.use_causal_conv}"

    def fold_weight_norm(self) -> WaveNetResidualBlock:
        """Replace weight-normed convs' (g, v) by their plain weight, once (for inference); returns self."""
        return fold_weight_norm(self)

    def _plain(self, x, c, skip_sum):
        """The composition of the submodules, as parallel_wavegan runs it."""
        residual = x
        h = F.dropout(x, p=self.dropout, training=self.training)
        h = self.conv(h)
        if self.use_causal_conv:
            h = h[:, :, : residual.size(-1)]
        if c is not None:
            h = h + self.conv1x1_aux(c)
        a, b = h.split(h.size(1) // 2, dim=1)
        g = torch.tanh(a) * torch.sigmoid(b)
        skip = self.conv1x1_skip(g)
        if skip_sum is not None:
            skip = skip_sum + skip
        return (self.conv1x1_out(g) + residual) * _SQRT_HALF, skip

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor | None = None,
        skip_sum: torch.Tensor | None = None,
        aux_upsampler: BandedUpsampler | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Given ``aux_upsampler``, ``c`` holds the frames it upsamples (see :func:`fastgan.functional.wavenet_block`)."""
        if c is not None and self.conv1x1_aux is None:
            raise ValueError("WaveNetResidualBlock: got aux features c, but the block was built with aux_channels <= 0")
        convs = [self.conv, self.conv1x1_out, self.conv1x1_skip]
        if c is not None:
            convs.append(self.conv1x1_aux)
        weights = [effective_weight(conv) for conv in convs]
        if (self.training and self.dropout > 0) or any(w is None for w in weights):
            return self._plain(x, c if aux_upsampler is None or c is None else aux_upsampler.apply(c), skip_sum)
        w_conv, w_out, w_skip = weights[:3]
        w_aux = weights[3] if c is not None else None
        out, skip = functional.wavenet_block(
            x, c, w_conv, self.conv.bias, w_aux, w_out, self.conv1x1_out.bias, w_skip, self.conv1x1_skip.bias,
            dilation=self.dilation, causal=self.use_causal_conv, skip_sum=skip_sum, aux_upsampler=aux_upsampler,
        )  # fmt: skip
        # Under autocast the op runs in the autocast dtype; the residual comes back in x's dtype, as
        # parallel_wavegan's ``(x + residual) * sqrt(0.5)`` promotes (a no-op in the generator, whose x is bf16).
        return out.to(x.dtype), skip

    @staticmethod
    def takes_frame_rate_aux(x: torch.Tensor) -> bool:
        """Whether blocks given an ``aux_upsampler`` apply the aux conv at frame rate for ``x`` (eager CPU inference)."""
        return functional.wavenet_takes_frame_rate_aux(x)
