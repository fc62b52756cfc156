"""Small generators (12 mel channels) shared by the streaming and export tests: one per layer type streamed."""

from __future__ import annotations

MEL = 12
# Parallel WaveGAN's (fastgan's and parallel_wavegan's classes take the same arguments).
PWG = dict(aux_channels=MEL, layers=4, stacks=2, residual_channels=8, gate_channels=16, skip_channels=8,
           upsample_params={"upsample_scales": [2, 3]})  # fmt: skip
PWG_CAUSAL = dict(PWG, kernel_size=2, aux_context_window=2, use_causal_conv=True)
MELGAN = dict(in_channels=MEL, channels=16, upsample_scales=[4, 2])
HIFIGAN_RESBLOCK1 = dict(in_channels=MEL, channels=16, upsample_scales=[4, 2], upsample_kernel_sizes=[8, 4],
                         resblock_kernel_sizes=(3, 5), resblock_dilations=[(1, 3), (1, 3)])  # fmt: skip


def small_generators():
    """Name -> constructor of a small generator; fresh weights each call."""
    from fastgan.models import HiFiGANGenerator, MelGANGenerator, ParallelWaveGANGenerator

    from fastgan.nn import PQMF

    def mb_melgan():
        g = MelGANGenerator(in_channels=MEL, out_channels=4, channels=16, upsample_scales=[2, 2])
        g.pqmf = PQMF(subbands=4, taps=30)
        return g

    return {
        "melgan": lambda: MelGANGenerator(**MELGAN),
        "melgan-odd-scales": lambda: MelGANGenerator(in_channels=MEL, channels=16, upsample_scales=[3, 5]),
        "melgan-causal": lambda: MelGANGenerator(
            in_channels=MEL, channels=16, upsample_scales=[4, 2], use_causal_conv=True
        ),
        "mb-melgan": mb_melgan,
        "hifigan-resblock1": lambda: HiFiGANGenerator(**HIFIGAN_RESBLOCK1),
        "hifigan-resblock2": lambda: HiFiGANGenerator(
            in_channels=MEL,
            channels=16,
            upsample_scales=[3, 2],
            upsample_kernel_sizes=[6, 4],
            resblock_kernel_sizes=(3, 5),
            resblock_dilations=[(1, 2), (2, 6)],
            use_additional_convs=False,
        ),  # fmt: skip
        "pwg": lambda: ParallelWaveGANGenerator(**PWG),
        "pwg-causal": lambda: ParallelWaveGANGenerator(**PWG_CAUSAL),
    }
