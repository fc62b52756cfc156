"""nn.Modules built on fastgan's ops; names, arguments and state_dict keys follow parallel_wavegan where it has them."""

from fastgan.nn.conv_transpose import ConvTranspose1d
from fastgan.nn.phase_shuffle import PhaseShuffle
from fastgan.nn.pqmf import PQMF
from fastgan.nn.residual_block import CausalConv1d, HiFiGANResidualBlock, ResidualStack
from fastgan.nn.stft_loss import MultiResolutionSTFTLoss, STFTLoss
from fastgan.nn.upsample import ConvInUpsampleNetwork, UpsampleNetwork
from fastgan.nn.wavenet_block import WaveNetResidualBlock

__all__ = [
    "PQMF",
    "CausalConv1d",
    "ConvInUpsampleNetwork",
    "ConvTranspose1d",
    "HiFiGANResidualBlock",
    "MultiResolutionSTFTLoss",
    "PhaseShuffle",
    "ResidualStack",
    "STFTLoss",
    "UpsampleNetwork",
    "WaveNetResidualBlock",
]
