"""Plain-PyTorch reference implementations: the CPU fallback of every op and the oracle of its tests."""

from fastgan.references.conv_transpose import conv_transpose1d_backward_reference, conv_transpose1d_reference
from fastgan.references.phase_shuffle import (
    phase_shuffle_backward_reference,
    phase_shuffle_reference,
    reflect_index,
)
from fastgan.references.residual_block import (
    leaky_dilated_residual_backward_reference,
    leaky_dilated_residual_reference,
)
from fastgan.references.stft_loss import stft_loss_backward_reference, stft_loss_sums_reference
from fastgan.references.upsample import (
    smoothing_to_taps,
    stretch_conv1d_backward_reference,
    stretch_conv1d_reference,
)
from fastgan.references.wavenet_block import wavenet_block_backward_reference, wavenet_block_reference

__all__ = [
    "wavenet_block_backward_reference",
    "wavenet_block_reference",
    "stft_loss_backward_reference",
    "stft_loss_sums_reference",
    "conv_transpose1d_backward_reference",
    "conv_transpose1d_reference",
    "smoothing_to_taps",
    "stretch_conv1d_backward_reference",
    "stretch_conv1d_reference",
    "leaky_dilated_residual_backward_reference",
    "leaky_dilated_residual_reference",
    "phase_shuffle_backward_reference",
    "phase_shuffle_reference",
    "reflect_index",
]
