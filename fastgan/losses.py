"""GAN-vocoder losses. Class names, arguments and reductions follow parallel_wavegan 0.6.1 where it has them.

* adversarial: least squares (``"mse"``: Parallel WaveGAN, HiFi-GAN, MB-MelGAN), hinge (``"hinge"``: MelGAN),
  Wasserstein (``"wgan"``: WaveGAN / SpecGAN, with :func:`gradient_penalty`, lambda = 10; the trainer runs
  :data:`WGAN_CRITIC_STEPS` = 5 critic steps per generator step);
* :func:`auxiliary_classifier_loss`: the class term of the controllable (AC-GAN) WaveGAN;
* :class:`FeatureMatchLoss` (MelGAN / HiFi-GAN), :class:`MelSpectrogramLoss` (HiFi-GAN; log-mels from
  :mod:`fastgan.audio`), and :class:`MultiResolutionSTFTLoss` (Parallel WaveGAN / MB-MelGAN), which is
  ``fastgan.nn.MultiResolutionSTFTLoss`` (fused kernel) re-exported.

A discriminator output may be a tensor, a list of tensors (one per sub-discriminator) or a list of lists of
feature maps whose last entry is the output, as parallel_wavegan's multi-scale / multi-period discriminators give.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastgan.audio import LogMelSpectrogram, MelConfig

__all__ = [
    "ADVERSARIAL_LOSSES",
    "WGAN_CRITIC_STEPS",
    "WGAN_GP_WEIGHT",
    "DiscriminatorAdversarialLoss",
    "FeatureMatchLoss",
    "GeneratorAdversarialLoss",
    "MelSpectrogramLoss",
    "MultiResolutionSTFTLoss",  # noqa: F822 (fastgan.nn's, imported on first use by __getattr__)
    "auxiliary_classifier_loss",
    "discriminator_adversarial_loss",
    "feature_matching_loss",
    "generator_adversarial_loss",
    "gradient_penalty",
]

ADVERSARIAL_LOSSES = ("mse", "hinge", "wgan")
WGAN_GP_WEIGHT = 10.0  # lambda of Gulrajani et al. (2017), as WaveGAN uses
WGAN_CRITIC_STEPS = 5  # critic updates per generator update (WaveGAN)


def _check_type(loss_type: str) -> str:
    if loss_type not in ADVERSARIAL_LOSSES:
        raise ValueError(f"adversarial loss_type must be one of {ADVERSARIAL_LOSSES}, got {loss_type!r}")
    return loss_type


def _outputs(outputs) -> list[torch.Tensor]:
    """Discriminator outputs as a flat list of output tensors (the last feature map of each sub-discriminator)."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if not isinstance(outputs, (list, tuple)) or not outputs:
        raise TypeError(f"discriminator outputs must be a tensor or a non-empty list, got {type(outputs).__name__}")
    flat = []
    for out in outputs:
        if isinstance(out, (list, tuple)):
            out = out[-1]
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"discriminator outputs must hold tensors, got {type(out).__name__}")
        flat.append(out)
    return flat


def _generator_term(x: torch.Tensor, loss_type: str) -> torch.Tensor:
    if loss_type == "mse":
        return (x - 1).square().mean()  # real = 1
    return -x.mean()  # hinge and Wasserstein: raise the critic's score of the fake


def _real_term(x: torch.Tensor, loss_type: str) -> torch.Tensor:
    if loss_type == "mse":
        return (x - 1).square().mean()
    if loss_type == "hinge":
        return F.relu(1 - x).mean()
    return -x.mean()


def _fake_term(x: torch.Tensor, loss_type: str) -> torch.Tensor:
    if loss_type == "mse":
        return x.square().mean()
    if loss_type == "hinge":
        return F.relu(1 + x).mean()
    return x.mean()


def generator_adversarial_loss(outputs, loss_type: str = "mse", average_by_discriminators: bool = True):
    """The generator's adversarial loss on the discriminator's outputs for generated audio."""
    _check_type(loss_type)
    flat = _outputs(outputs)
    total = sum(_generator_term(x, loss_type) for x in flat)
    if isinstance(outputs, torch.Tensor) or not average_by_discriminators:
        return total
    return total / len(flat)


def discriminator_adversarial_loss(
    outputs_hat, outputs, loss_type: str = "mse", average_by_discriminators: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(real_loss, fake_loss)`` of the discriminator; ``outputs_hat`` for generated audio, ``outputs`` for real.

    For ``"wgan"`` the critic loss ``fake - real`` is ``real_loss + fake_loss``; add :func:`gradient_penalty`.
    """
    _check_type(loss_type)
    fakes, reals = _outputs(outputs_hat), _outputs(outputs)
    if len(fakes) != len(reals):
        raise ValueError(f"{len(fakes)} outputs for generated audio but {len(reals)} for real audio")
    real = sum(_real_term(x, loss_type) for x in reals)
    fake = sum(_fake_term(x, loss_type) for x in fakes)
    if not isinstance(outputs, torch.Tensor) and average_by_discriminators:
        real, fake = real / len(reals), fake / len(fakes)
    return real, fake


class GeneratorAdversarialLoss(torch.nn.Module):
    """parallel_wavegan's GeneratorAdversarialLoss (``loss_type`` "mse" or "hinge"), plus "wgan"."""

    def __init__(self, average_by_discriminators: bool = True, loss_type: str = "mse"):
        super().__init__()
        self.average_by_discriminators = average_by_discriminators
        self.loss_type = _check_type(loss_type)

    def forward(self, outputs):
        return generator_adversarial_loss(outputs, self.loss_type, self.average_by_discriminators)


class DiscriminatorAdversarialLoss(torch.nn.Module):
    """parallel_wavegan's DiscriminatorAdversarialLoss: ``forward(outputs_hat, outputs) -> (real, fake)``."""

    def __init__(self, average_by_discriminators: bool = True, loss_type: str = "mse"):
        super().__init__()
        self.average_by_discriminators = average_by_discriminators
        self.loss_type = _check_type(loss_type)

    def forward(self, outputs_hat, outputs):
        return discriminator_adversarial_loss(outputs_hat, outputs, self.loss_type, self.average_by_discriminators)


def gradient_penalty(
    critic, real: torch.Tensor, fake: torch.Tensor, weight: float = WGAN_GP_WEIGHT, *critic_args, **critic_kwargs
) -> torch.Tensor:
    """WGAN-GP: ``weight * E[(||grad_x D(x_hat)||_2 - 1)^2]`` at ``x_hat = a * real + (1 - a) * fake``.

    ``a ~ U(0, 1)`` per example (drawn from the global torch generator on the inputs' device); the norm is over
    all of an example's elements; ``fake`` is detached. Extra arguments go to ``critic`` (e.g. class labels).
    A critic returning several outputs (a list) is penalised on the sum of their means.
    """
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty: real {tuple(real.shape)} and fake {tuple(fake.shape)} differ in shape")
    alpha = torch.rand((real.size(0),) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = _outputs(critic(mixed, *critic_args, **critic_kwargs))
    total = sum(s.float().sum() for s in scores)
    (grad,) = torch.autograd.grad(total, mixed, create_graph=True)
    norm = grad.flatten(1).float().norm(2, dim=1)
    return weight * (norm - 1).square().mean()


def auxiliary_classifier_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """AC-GAN's class term: cross-entropy of the discriminator's class logits (B, classes) against labels (B,)."""
    if logits.dim() != 2:
        raise ValueError(f"auxiliary_classifier_loss: logits must be (batch, classes), got {tuple(logits.shape)}")
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"auxiliary_classifier_loss: labels must be ({logits.size(0)},), got {tuple(labels.shape)}")
    return F.cross_entropy(logits.float(), labels.long())


def feature_matching_loss(
    feats_hat,
    feats,
    average_by_layers: bool = True,
    average_by_discriminators: bool = True,
    include_final_outputs: bool = False,
) -> torch.Tensor:
    """L1 between the discriminators' feature maps for generated and real audio (real ones detached).

    ``feats_hat`` / ``feats``: one list of feature maps per sub-discriminator, the output last (left out unless
    ``include_final_outputs``).
    """
    if len(feats_hat) != len(feats):
        raise ValueError(f"feature_matching_loss: {len(feats_hat)} vs {len(feats)} discriminators")
    total = 0.0
    for hat, real in zip(feats_hat, feats, strict=True):
        if not include_final_outputs:
            hat, real = hat[:-1], real[:-1]
        if len(hat) != len(real) or not hat:
            raise ValueError(f"feature_matching_loss: {len(hat)} vs {len(real)} feature maps (need at least one)")
        layer = sum(F.l1_loss(h, r.detach()) for h, r in zip(hat, real, strict=True))
        total = total + (layer / len(hat) if average_by_layers else layer)
    return total / len(feats) if average_by_discriminators else total


class FeatureMatchLoss(torch.nn.Module):
    """parallel_wavegan's FeatureMatchLoss (same arguments): ``forward(feats_hat, feats)``."""

    def __init__(
        self,
        average_by_layers: bool = True,
        average_by_discriminators: bool = True,
        include_final_outputs: bool = False,
    ):
        super().__init__()
        self.average_by_layers = average_by_layers
        self.average_by_discriminators = average_by_discriminators
        self.include_final_outputs = include_final_outputs

    def forward(self, feats_hat, feats):
        return feature_matching_loss(
            feats_hat, feats, self.average_by_layers, self.average_by_discriminators, self.include_final_outputs
        )


class MelSpectrogramLoss(torch.nn.Module):
    """L1 between log-mel spectrograms of generated and real audio: parallel_wavegan's MelSpectrogramLoss.

    Same arguments and defaults (``fs=22050, fft_size=1024, hop_size=256, num_mels=80, fmin=80, fmax=7600``,
    ``eps=1e-10``, ``log_base=10``); the magnitude is ``sqrt(max(|X|^2, eps))`` as there, so gradients stay finite
    on silence. ``center=False`` frames without padding; ``normalized`` / ``onesided`` other than the defaults
    are not offered.
    """

    def __init__(
        self,
        fs: int = 22050,
        fft_size: int = 1024,
        hop_size: int = 256,
        win_length: int | None = None,
        window: str = "hann",
        num_mels: int = 80,
        fmin: float | None = 80,
        fmax: float | None = 7600,
        center: bool = True,
        normalized: bool = False,
        onesided: bool = True,
        eps: float = 1e-10,
        log_base: float | None = 10.0,
    ):
        super().__init__()
        if normalized or not onesided:
            raise ValueError("MelSpectrogramLoss: only normalized=False, onesided=True are supported")
        config = MelConfig(fs, fft_size, hop_size, win_length, window, num_mels, fmin, fmax, eps, log_base)
        self.center = center
        self.mel_spectrogram = LogMelSpectrogram(config, magnitude_eps=eps)

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y_hat.shape != y.shape:
            raise ValueError(f"MelSpectrogramLoss: y_hat {tuple(y_hat.shape)} and y {tuple(y.shape)} differ")
        if y_hat.dim() == 3 and y_hat.size(1) != 1:
            y_hat, y = y_hat.reshape(-1, y_hat.size(-1)), y.reshape(-1, y.size(-1))
        mel_hat = self.mel_spectrogram(y_hat, center=self.center)
        mel = self.mel_spectrogram(y, center=self.center)
        return F.l1_loss(mel_hat, mel)


def __getattr__(name: str):
    # The multi-resolution STFT loss is fastgan.nn's fused module, re-exported; imported on first use.
    if name == "MultiResolutionSTFTLoss":
        from fastgan.nn import MultiResolutionSTFTLoss

        return MultiResolutionSTFTLoss
    raise AttributeError(f"module 'fastgan.losses' has no attribute {name!r}")
