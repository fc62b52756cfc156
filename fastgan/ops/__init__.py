"""fastgan's custom ops (``torch.ops.fastgan.*``): one module per hot path.

Each op checks its inputs, then runs the Triton kernel or the PyTorch reference as
:func:`fastgan._backend.use_triton` decides; its backward is a custom op of its own.
"""

from fastgan.ops import conv_transpose, phase_shuffle, residual_block, upsample
from fastgan.ops import wavenet_block
from fastgan.ops import stft_loss

# Public op name -> the forward op; `fastgan info` and the tests walk this table.
OPS = {
    "stft_loss": stft_loss.stft_loss_op,
    "stft_mel": stft_loss.stft_mel_op,
    "wavenet_block": wavenet_block.wavenet_block_op,
    "phase_shuffle": phase_shuffle.phase_shuffle_op,
    "leaky_dilated_residual": residual_block.leaky_dilated_residual_op,
    "conv_transpose1d": conv_transpose.conv_transpose1d_op,
    "stretch_conv1d": upsample.stretch_conv1d_op,
}

__all__ = ["stft_loss", "wavenet_block", "conv_transpose", "upsample", "OPS", "phase_shuffle", "residual_block"]
