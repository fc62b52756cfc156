"""SpecGAN (Donahue, McAuley & Puckette, "Adversarial Audio Synthesis", ICLR 2019).

A DCGAN on 128 x 128 normalised log-magnitude spectrograms, inverted to audio with Griffin-Lim.

Generator: z -> dense to 4 x 4 x 16d -> ReLU -> five 5 x 5 transposed convs with stride 2
(16d -> 8d -> 4d -> 2d -> d -> channels), ReLU between, tanh out: (B, channels, 128, 128).
Discriminator: five 5 x 5 convs with stride 2 (channels -> d -> 2d -> 4d -> 8d -> 16d), LeakyReLU 0.2
after each, flatten, dense to one logit.

:class:`SpecGANTransform` maps 16384-sample waveforms to the generator's domain and back: STFT
(256-point Hann window, hop 128, 16 ms / 8 ms at 16 kHz), log magnitude, per-frequency-bin
standardisation with statistics fitted on data, clipped at 3 standard deviations and scaled into
[-1, 1]; the 129th bin and frame are dropped (128 x 128). Inversion undoes the scaling, restores
the dropped bin (zeros) and frame (a copy of the last), and runs Griffin-Lim in torch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from fastgan.models._common import check_num_classes, checked_labels
from torch import nn

SPEC_SIZE = 128
KERNEL_SIZE = 5


class SpecGANGenerator(nn.Module):
    """``forward(z, labels=None) -> (B, channels, 128, 128)`` normalised log-magnitude spectrograms in [-1, 1]."""

    def __init__(
        self,
        latent_dim: int = 100,
        model_size: int = 64,
        channels: int = 1,
        num_classes: int | None = None,
        embedding_dim: int = 50,
    ):
        super().__init__()
        self.latent_dim = latent_dim
        check_num_classes("SpecGANGenerator", num_classes)
        self.num_classes = num_classes
        d = model_size
        self.embedding = nn.Embedding(num_classes, embedding_dim) if num_classes is not None else None
        cond_dim = embedding_dim if num_classes is not None else 0
        self.dense = nn.Linear(latent_dim + cond_dim, 4 * 4 * 16 * d)
        widths = [16 * d, 8 * d, 4 * d, 2 * d, d, channels]
        self.upconvs = nn.ModuleList(
            nn.ConvTranspose2d(c_in, c_out, KERNEL_SIZE, stride=2, padding=2, output_padding=1)
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        )

    def sample_latent(self, batch: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.rand(batch, self.latent_dim, device=device, generator=generator) * 2 - 1

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"SpecGANGenerator: z must be (batch, {self.latent_dim}), got shape {tuple(z.shape)}")
        labels = checked_labels(self, labels, z.shape[0])
        if labels is not None:
            z = torch.cat([z, self.embedding(labels)], dim=1)
        x = F.relu(self.dense(z).view(z.shape[0], -1, 4, 4))
        last = len(self.upconvs) - 1
        for i, upconv in enumerate(self.upconvs):
            x = upconv(x)
            x = torch.tanh(x) if i == last else F.relu(x)
        return x


class SpecGANDiscriminator(nn.Module):
    """``forward(spec, labels=None) -> (B, 1)`` logits; ``num_classes`` adds projection conditioning."""

    def __init__(
        self, model_size: int = 64, channels: int = 1, negative_slope: float = 0.2, num_classes: int | None = None
    ):
        super().__init__()
        d = model_size
        widths = [channels, d, 2 * d, 4 * d, 8 * d, 16 * d]
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, KERNEL_SIZE, stride=2, padding=2)
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self.negative_slope = negative_slope
        self.channels = channels
        features = 4 * 4 * 16 * d
        check_num_classes("SpecGANDiscriminator", num_classes)
        self.num_classes = num_classes
        self.dense = nn.Linear(features, 1)
        self.projection = nn.Embedding(num_classes, features) if num_classes is not None else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1:] != (self.channels, SPEC_SIZE, SPEC_SIZE):
            raise ValueError(
                f"SpecGANDiscriminator: x must be (batch, {self.channels}, {SPEC_SIZE}, {SPEC_SIZE}), "
                f"got shape {tuple(x.shape)}"
            )
        for conv in self.convs:
            x = F.leaky_relu(conv(x), self.negative_slope)
        features = x.flatten(1)
        logits = self.dense(features)
        labels = checked_labels(self, labels, x.shape[0])
        if labels is not None:
            logits = logits + (self.projection(labels) * features).sum(dim=1, keepdim=True)
        return logits


class SpecGANTransform(nn.Module):
    """Waveforms (B, 16384) <-> normalised log-magnitude spectrograms (B, 1, 128, 128).

    Call :meth:`fit` on training audio to set the per-bin mean and standard deviation (saved as
    buffers in the state dict); until then they are 0 and 1.
    """

    def __init__(self, n_fft: int = 256, hop_length: int = 128, clip_std: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.clip_std = clip_std
        self.eps = eps
        self.num_samples = SPEC_SIZE * hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("mean", torch.zeros(SPEC_SIZE))
        self.register_buffer("std", torch.ones(SPEC_SIZE))

    def _check_wave(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 3 and wave.shape[1] == 1:
            wave = wave[:, 0]
        if wave.dim() != 2 or wave.shape[1] != self.num_samples:
            raise ValueError(
                f"SpecGANTransform: waveforms must be (batch, {self.num_samples}) or (batch, 1, {self.num_samples}), "
                f"got shape {tuple(wave.shape)}"
            )
        return wave

    def log_magnitude(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, 128 bins, 128 frames) log |STFT|, before normalisation."""
        wave = self._check_wave(wave)
        window = self.window.to(wave.dtype)
        spec = torch.stft(wave, self.n_fft, self.hop_length, window=window, center=True, return_complex=True)
        return torch.log(spec.abs()[:, :SPEC_SIZE, :SPEC_SIZE] + self.eps)

    @torch.no_grad()
    def fit(self, waves: torch.Tensor) -> SpecGANTransform:
        """Set the per-frequency-bin statistics from a batch of training waveforms."""
        logmag = self.log_magnitude(waves)
        self.mean.copy_(logmag.mean(dim=(0, 2)))
        self.std.copy_(logmag.std(dim=(0, 2)).clamp_min(1e-8))
        return self

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveforms -> (B, 1, 128, 128) in [-1, 1]."""
        logmag = self.log_magnitude(wave)
        normalised = (logmag - self.mean[:, None]) / (self.std[:, None] * self.clip_std)
        return normalised.clamp(-1.0, 1.0).unsqueeze(1)

    def magnitude(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, 1, 128, 128) normalised spectrograms -> (B, n_fft // 2 + 1, frames) linear magnitudes."""
        if spec.dim() != 4 or spec.shape[1:] != (1, SPEC_SIZE, SPEC_SIZE):
            raise ValueError(f"SpecGANTransform: spec must be (batch, 1, 128, 128), got shape {tuple(spec.shape)}")
        logmag = spec[:, 0] * (self.std[:, None] * self.clip_std) + self.mean[:, None]
        mag = torch.exp(logmag)
        bins = self.n_fft // 2 + 1
        frames = self.num_samples // self.hop_length + 1
        mag = F.pad(mag, (0, 0, 0, bins - SPEC_SIZE))  # the dropped top bin(s): silence
        return torch.cat([mag, mag[:, :, -1:].expand(-1, -1, frames - SPEC_SIZE)], dim=2)

    @torch.no_grad()
    def invert(
        self, spec: torch.Tensor, iterations: int = 16, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Griffin-Lim: (B, 1, 128, 128) normalised spectrograms -> (B, 16384) waveforms."""
        return griffin_lim(
            self.magnitude(spec), self.n_fft, self.hop_length, self.window, self.num_samples, iterations, generator
        )


def griffin_lim(
    magnitude: torch.Tensor,
    n_fft: int,
    hop_length: int,
    window: torch.Tensor,
    length: int,
    iterations: int = 16,
    generator: torch.Generator | None = None,
    momentum: float = 0.99,
) -> torch.Tensor:
    """Phase recovery (Griffin & Lim 1984, with the fast momentum of Perraudin et al. 2013)."""
    window = window.to(magnitude.dtype)
    phase = torch.rand(magnitude.shape, generator=generator, device=magnitude.device, dtype=magnitude.dtype)
    angles = torch.polar(torch.ones_like(magnitude), phase * 2 * math.pi)
    previous = torch.zeros_like(angles)
    wave = None
    for _ in range(max(iterations, 1)):
        wave = torch.istft(magnitude * angles, n_fft, hop_length, window=window, center=True, length=length)
        rebuilt = torch.stft(wave, n_fft, hop_length, window=window, center=True, return_complex=True)
        accelerated = rebuilt - previous * (momentum / (1 + momentum))
        previous = rebuilt
        angles = accelerated / accelerated.abs().clamp_min(1e-16)
    return torch.istft(magnitude * angles, n_fft, hop_length, window=window, center=True, length=length)
