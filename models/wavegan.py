"""WaveGAN (Donahue, McAuley & Puckette, "Adversarial Audio Synthesis", ICLR 2019), with the
conditional (class-label) and controllable (auxiliary classifier) variants.

Generator: z ~ U(-1, 1)^latent_dim -> dense to 16 x (16d) -> reshape (16d channels, 16 samples) ->
ReLU -> transposed convs (kernel 25, stride 4, "same" padding), ReLU between, tanh out. With
``slice_len=16384`` the channels go 16d -> 8d -> 4d -> 2d -> d -> 1 (five layers); with
``slice_len=65536`` (the paper's longer variant, its code's ``dim_mul = 32``) the dense layer
widens to 16 x (32d) and a sixth layer (stride 4) brings 65536 samples.

Discriminator: convs (kernel 25, stride 4) to d, 2d, 4d, 8d, 16d (and 32d for 65536), each
followed by LeakyReLU(0.2); phase shuffle (n = 2) after the first four (each but the last for
16384; the 65536 variant's fifth and sixth have none, as in the paper's code), fused with the
LeakyReLU in :class:`fastgan.nn.PhaseShuffle`; flatten and dense to one logit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from fastgan.models._common import check_num_classes, checked_labels
from torch import nn

from fastgan.nn import ConvTranspose1d, PhaseShuffle

KERNEL_SIZE = 25
STRIDE = 4
# "same" for stride 4, kernel 25: output length = 4 x input length (transposed) / input / 4 (conv).
PADDING = 11
SLICE_LENS = (16384, 65536)
INITIAL_LENGTH = 16  # samples after the dense layer's reshape
SHUFFLED_LAYERS = 4  # discriminator convs followed by phase shuffle (Donahue et al.'s code, both lengths)


def _channel_multipliers(slice_len: int) -> list[int]:
    """Channels (in units of d) from the dense reshape down to the last hidden layer."""
    if slice_len not in SLICE_LENS:
        raise ValueError(f"WaveGAN: slice_len must be one of {SLICE_LENS}, got {slice_len!r}")
    top = 16 if slice_len == 16384 else 32
    multipliers = []
    while top >= 1:
        multipliers.append(top)
        top //= 2
    return multipliers  # 16384: [16, 8, 4, 2, 1]; 65536: [32, 16, 8, 4, 2, 1]


class WaveGANGenerator(nn.Module):
    """WaveGAN's generator: ``forward(z, labels=None) -> (B, channels, slice_len)`` in [-1, 1].

    ``num_classes=K`` (the conditional GAN) embeds an integer label into ``embedding_dim``
    values and concatenates them to z before the dense layer; ``forward`` then needs ``labels``.
    """

    def __init__(
        self,
        latent_dim: int = 100,
        model_size: int = 64,
        slice_len: int = 16384,
        channels: int = 1,
        num_classes: int | None = None,
        embedding_dim: int = 50,
    ):
        super().__init__()
        multipliers = _channel_multipliers(slice_len)
        self.latent_dim = latent_dim
        self.model_size = model_size
        self.slice_len = slice_len
        self.channels = channels
        self.num_classes = num_classes
        d = model_size
        self.embedding = None
        cond_dim = 0
        check_num_classes("WaveGANGenerator", num_classes)
        if num_classes is not None:
            self.embedding = nn.Embedding(num_classes, embedding_dim)
            cond_dim = embedding_dim
        self.dense = nn.Linear(latent_dim + cond_dim, INITIAL_LENGTH * multipliers[0] * d)
        widths = [m * d for m in multipliers] + [channels]
        # Every transposed conv reads ReLU'd input (the reshaped dense output, then each hidden
        # layer): fastgan's ConvTranspose1d applies it on load (a LeakyReLU with slope 0).
        self.upconvs = nn.ModuleList(
            ConvTranspose1d(
                c_in, c_out, KERNEL_SIZE, stride=STRIDE, padding=PADDING, output_padding=1, negative_slope=0.0
            )  # fmt: skip
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        )

    def sample_latent(self, batch: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ U(-1, 1)^latent_dim, as in the paper."""
        return torch.rand(batch, self.latent_dim, device=device, generator=generator) * 2 - 1

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"WaveGANGenerator: z must be (batch, {self.latent_dim}), got shape {tuple(z.shape)}")
        labels = checked_labels(self, labels, z.shape[0])
        if labels is not None:
            z = torch.cat([z, self.embedding(labels)], dim=1)
        return self.upsample(self.dense(z).view(z.shape[0], -1, INITIAL_LENGTH))

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        """The transposed-conv stack: (B, top channels, L) pre-activation -> (B, channels, L * 4**layers) in [-1, 1]."""
        for upconv in self.upconvs:
            x = upconv(x)  # relu(x) on load, then the transposed conv
        return torch.tanh(x)


class _WaveGANConvStack(nn.Module):
    """The discriminator's (and classifier's) convs: ``forward(x) -> (B, features)``."""

    def __init__(self, model_size: int, slice_len: int, channels: int, phase_shuffle: int, negative_slope: float):
        super().__init__()
        multipliers = list(reversed(_channel_multipliers(slice_len)))  # [1, 2, ..., 16 (32)]
        widths = [channels] + [m * model_size for m in multipliers]
        self.convs = nn.ModuleList(
            nn.Conv1d(c_in, c_out, KERNEL_SIZE, stride=STRIDE, padding=PADDING)
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        )
        # LeakyReLU fused into the phase shuffle after the first four convs; plain LeakyReLU after the rest.
        self.shuffles = nn.ModuleList(
            PhaseShuffle(phase_shuffle, negative_slope=negative_slope) for _ in range(SHUFFLED_LAYERS)
        )
        self.negative_slope = negative_slope
        self.features = INITIAL_LENGTH * widths[-1]
        self.slice_len = slice_len
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.channels or x.shape[2] != self.slice_len:
            raise ValueError(
                f"{type(self).__name__}: x must be (batch, {self.channels}, {self.slice_len}), got shape {tuple(x.shape)}"
            )
        for conv, shuffle in zip(self.convs[:SHUFFLED_LAYERS], self.shuffles, strict=True):
            x = shuffle(conv(x))
        for conv in self.convs[SHUFFLED_LAYERS:]:
            x = F.leaky_relu(conv(x), self.negative_slope)
        return x.flatten(1)


class WaveGANDiscriminator(nn.Module):
    """WaveGAN's discriminator (critic): ``forward(x, labels=None) -> (B, 1)`` logits.

    ``num_classes=K`` adds projection conditioning (Miyato & Koyama 2018): the logit gains
    ``<embed(label), features>``.
    """

    def __init__(
        self,
        model_size: int = 64,
        slice_len: int = 16384,
        channels: int = 1,
        phase_shuffle: int = 2,
        negative_slope: float = 0.2,
        num_classes: int | None = None,
    ):
        super().__init__()
        self.body = _WaveGANConvStack(model_size, slice_len, channels, phase_shuffle, negative_slope)
        self.dense = nn.Linear(self.body.features, 1)
        self.num_classes = num_classes
        check_num_classes("WaveGANDiscriminator", num_classes)
        self.projection = nn.Embedding(num_classes, self.body.features) if num_classes is not None else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        features = self.body(x)
        logits = self.dense(features)
        labels = checked_labels(self, labels, x.shape[0])
        if labels is not None:
            logits = logits + (self.projection(labels) * features).sum(dim=1, keepdim=True)
        return logits


class WaveGANClassifier(nn.Module):
    """The controllable-GAN classifier: WaveGAN's conv stack (no phase shuffle) and a linear layer
    to ``num_classes`` logits. Trained on real labelled audio; the generator is then also trained
    so that this classifier assigns each generated clip the label it was given."""

    def __init__(
        self,
        num_classes: int,
        model_size: int = 64,
        slice_len: int = 16384,
        channels: int = 1,
        negative_slope: float = 0.2,
    ):
        super().__init__()
        if num_classes is None:
            raise ValueError("WaveGANClassifier: num_classes must be an integer >= 2, got None")
        check_num_classes("WaveGANClassifier", num_classes)
        self.num_classes = num_classes
        self.body = _WaveGANConvStack(model_size, slice_len, channels, 0, negative_slope)
        self.dense = nn.Linear(self.body.features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.body(x))
