"""The vocoders, composed from :mod:`fastgan.nn` (import path ``fastgan.models``).

MelGAN, Parallel WaveGAN, HiFi-GAN and Multi-band MelGAN keep parallel_wavegan 0.6.1's class names,
constructor arguments and state_dict keys, so a model trained there loads here unchanged.
"""

from fastgan.models.hifigan import (
    HIFIGAN_CONFIGS,
    HiFiGANGenerator,
    HiFiGANMultiPeriodDiscriminator,
    HiFiGANMultiScaleDiscriminator,
    HiFiGANMultiScaleMultiPeriodDiscriminator,
    HiFiGANPeriodDiscriminator,
    HiFiGANScaleDiscriminator,
)
from fastgan.models.melgan import MelGANDiscriminator, MelGANGenerator, MelGANMultiScaleDiscriminator
from fastgan.models.parallel_wavegan import ParallelWaveGANDiscriminator, ParallelWaveGANGenerator
from fastgan.models.specgan import SpecGANDiscriminator, SpecGANGenerator, SpecGANTransform, griffin_lim
from fastgan.models.wavegan import WaveGANClassifier, WaveGANDiscriminator, WaveGANGenerator

__all__ = [
    "HIFIGAN_CONFIGS",
    "HiFiGANGenerator",
    "HiFiGANMultiPeriodDiscriminator",
    "HiFiGANMultiScaleDiscriminator",
    "HiFiGANMultiScaleMultiPeriodDiscriminator",
    "HiFiGANPeriodDiscriminator",
    "HiFiGANScaleDiscriminator",
    "MelGANDiscriminator",
    "MelGANGenerator",
    "MelGANMultiScaleDiscriminator",
    "ParallelWaveGANDiscriminator",
    "ParallelWaveGANGenerator",
    "SpecGANDiscriminator",
    "SpecGANGenerator",
    "SpecGANTransform",
    "WaveGANClassifier",
    "WaveGANDiscriminator",
    "WaveGANGenerator",
    "griffin_lim",
]
