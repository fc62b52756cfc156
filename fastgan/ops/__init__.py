"""fastgan's custom ops (``torch.ops.fastgan.*``): one module per hot path.

Each op checks its inputs, then runs the Triton kernel or the PyTorch reference as
:func:`fastgan._backend.use_triton` decides; its backward is a custom op of its own.
"""

from fastgan.ops import conv_transpose, phase_shuffle, residual_block, stft_loss, upsample, wavenet_block

# Public op name -> the forward op; `fastgan info` and the tests walk this table.
OPS = {
    "phase_shuffle": phase_shuffle.phase_shuffle_op,
    "leaky_dilated_residual": residual_block.leaky_dilated_residual_op,
    "wavenet_block": wavenet_block.wavenet_block_op,
    "conv_transpose1d": conv_transpose.conv_transpose1d_op,
    "stretch_conv1d": upsample.stretch_conv1d_op,
    "stft_loss": stft_loss.stft_loss_op,
    "stft_mel": stft_loss.stft_mel_op,
}

__all__ = ["OPS", "conv_transpose", "phase_shuffle", "residual_block", "stft_loss", "upsample", "wavenet_block"]
