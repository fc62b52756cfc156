"""The mel front end: fastgan's torch log-mel (on the device) against parallel_wavegan's preprocessing
(``logmelfilterbank``: librosa STFT and filterbank in numpy, CPU), same parameters (its recipes': 1024/256, 80 mels,
80-7600 Hz). The reference is left out where librosa is not installed (the GPU image).

Cases: one 10-second utterance (preprocessing), and a training batch of 16 segments of 8192 samples (the trainer
computes features per batch on the device; the reference loops over the batch).
"""

from __future__ import annotations

import numpy as np
import torch

from bench.harness import Case
from fastgan.audio import LogMelSpectrogram, MelConfig


def _librosa_logmel(cfg: MelConfig):
    try:
        import librosa
    except ImportError:
        return None
    basis = librosa.filters.mel(
        sr=cfg.sampling_rate, n_fft=cfg.fft_size, n_mels=cfg.num_mels, fmin=cfg.fmin, fmax=cfg.fmax
    )

    def run(audio: np.ndarray) -> np.ndarray:  # parallel_wavegan.bin.preprocess.logmelfilterbank's computation
        spc = np.abs(
            librosa.stft(audio, n_fft=cfg.fft_size, hop_length=cfg.hop_size, window="hann", pad_mode="reflect")
        ).T
        return np.log10(np.maximum(cfg.eps, spc @ basis.T))

    return run


def cases(quick: bool, device: torch.device) -> list[Case]:
    cfg = MelConfig()
    melspec = LogMelSpectrogram(cfg).to(device)
    reference = _librosa_logmel(cfg)
    generator = torch.Generator().manual_seed(0)
    sizes = (
        [("utterance 4 s", 1, 4 * 22050), ("batch 4 x 8192", 4, 8192)]
        if quick
        else [
            ("utterance 10 s", 1, 10 * 22050),
            ("batch 16 x 8192", 16, 8192),
        ]
    )
    result = []
    for name, batch, length in sizes:
        audio = 0.1 * torch.randn(batch, length, generator=generator)
        on_device = audio.to(device)
        as_numpy = [a.numpy() for a in audio]
        impls = {"fastgan": lambda x=on_device: melspec(x)}
        if reference is not None:
            impls["parallel_wavegan"] = lambda xs=as_numpy: [reference(x) for x in xs]
        frames = 1 + length // cfg.hop_size
        result.append(
            Case(
                op="logmel",
                name=name,
                mode="fwd",
                dtype=torch.float32,
                impls=impls,
                bytes_moved=4 * batch * (length + frames * cfg.num_mels),
            )
        )
    return result
