"""Tiny versions of the bundled configs, for tests and the CPU ("quick") training benchmark.

The bundled configs with smaller widths, 64-sample hops, 20 mels and 1024-sample segments: a few thousand
parameters, so a training step takes well under a second on one CPU core. Nested parameter dicts are updated,
not replaced.
"""

from __future__ import annotations

import copy
from pathlib import Path

from fastgan.train import load_config

ROOT = Path(__file__).resolve().parent.parent

TINY_FEATURES = dict(
    fft_size=256, hop_size=64, num_mels=20, fmin=0, fmax=8000, batch_max_steps=1024, batch_size=2,
    num_workers=0, pin_memory=False, log_interval_steps=1, save_interval_steps=1000, eval_interval_steps=1000,
)  # fmt: skip
STFT = {"fft_sizes": [128, 256, 64], "hop_sizes": [32, 64, 16], "win_lengths": [64, 128, 32], "window": "hann_window"}
MELGAN_D = dict(scales=2, channels=4, max_downsample_channels=16, downsample_scales=[2, 2])
HIFIGAN_D = dict(
    scales=1,
    periods=[2, 3],
    scale_discriminator_params=dict(
        in_channels=1, out_channels=1, kernel_sizes=[15, 41, 5, 3], channels=8, max_downsample_channels=32,
        max_groups=4, bias=True, downsample_scales=[2, 2, 1], nonlinear_activation="LeakyReLU",
        nonlinear_activation_params={"negative_slope": 0.1},
    ),
    period_discriminator_params=dict(
        in_channels=1, out_channels=1, kernel_sizes=[5, 3], channels=4, downsample_scales=[3, 3, 1],
        max_downsample_channels=16, bias=True, nonlinear_activation="LeakyReLU",
        nonlinear_activation_params={"negative_slope": 0.1}, use_weight_norm=True, use_spectral_norm=False,
    ),
)  # fmt: skip
HIFIGAN_G = dict(in_channels=20, channels=32, upsample_scales=[4, 4, 4], upsample_kernel_sizes=[8, 8, 8])
HIFIGAN_MEL = dict(fs=22050, fft_size=256, hop_size=64, num_mels=20, fmin=0, fmax=11025, log_base=None)
VOCODERS = {
    "melgan": dict(
        generator_params=dict(in_channels=20, channels=64, upsample_scales=[4, 4, 4], stacks=2),
        discriminator_params=MELGAN_D,
        stft_loss_params=STFT,
    ),
    "parallel_wavegan": dict(
        generator_params=dict(
            layers=4,
            stacks=2,
            residual_channels=8,
            gate_channels=16,
            skip_channels=8,
            aux_channels=20,
            upsample_params={"upsample_scales": [4, 4, 4]},
        ),
        discriminator_params=dict(layers=3, conv_channels=8),
        stft_loss_params=STFT,
    ),  # fmt: skip
    "hifigan_v1": dict(
        generator_params=dict(HIFIGAN_G, resblock_kernel_sizes=[3], resblock_dilations=[[1, 3]]),
        discriminator_params=HIFIGAN_D,
        mel_loss_params=HIFIGAN_MEL,
    ),
    "hifigan_v3": dict(
        generator_params=dict(HIFIGAN_G, resblock_kernel_sizes=[3, 5], resblock_dilations=[[1, 2], [2, 6]]),
        discriminator_params=HIFIGAN_D,
        mel_loss_params=HIFIGAN_MEL,
    ),
    "multiband_melgan": dict(
        generator_params=dict(in_channels=20, out_channels=4, channels=64, upsample_scales=[4, 4], stacks=2),
        discriminator_params=MELGAN_D,
        stft_loss_params=STFT,
        subband_stft_loss_params={"fft_sizes": [64, 128, 32], "hop_sizes": [16, 32, 8], "win_lengths": [32, 64, 16]},
    ),
}
WGANS = ["wavegan", "wavegan_conditional", "wavegan_controllable", "specgan"]


def tiny_config(name: str, **overrides) -> dict:
    """A bundled config, shrunk: nested params are updated, not replaced."""
    base = load_config(ROOT / "configs" / f"{name}.yaml")
    if name in VOCODERS:
        changes = dict(TINY_FEATURES, **copy.deepcopy(VOCODERS[name]))
    else:
        changes = dict(batch_size=2, num_workers=0, pin_memory=False, log_interval_steps=1, save_interval_steps=1000)
        for key in ("generator_params", "discriminator_params", "classifier_params"):
            if base.get(key):
                changes[key] = {"model_size": 4}
    changes.update(overrides)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged = dict(base[key])
            merged.update(value)
            changes[key] = merged
    return load_config(base | {"_source": name}, changes)
