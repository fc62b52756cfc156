"""Training steps/s: fastgan's Trainer step against parallel_wavegan 0.6.1's, same device, batch and models.

One case per vocoder (MelGAN, HiFi-GAN V1 and V3, Parallel WaveGAN, Multi-band MelGAN), in the adversarial phase
(generator step with every loss, then a discriminator step). The batches are synthetic (noise-excited decaying
harmonics, so no audio files are read), at the bundled configs' batch sizes and segment lengths on the GPU
(``quick=True``: the tests' tiny configs on CPU).

* ``fastgan``: :class:`fastgan.train.Trainer`'s vocoder step, features computed on the device from each segment's
  audio context (part of its step), its fused ops where they run.
* ``parallel_wavegan``: the same step composed from parallel_wavegan's own models and loss modules in its trainer's
  order (``bin/train.py``), fed precomputed features (its DataLoader reads them from disk), left out where
  parallel_wavegan is not installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import Case  # noqa: E402

MODELS = ["melgan", "hifigan_v1", "hifigan_v3", "parallel_wavegan", "multiband_melgan"]


def _parallel_wavegan():
    try:
        import scipy.signal
        import scipy.signal.windows

        if not hasattr(scipy.signal, "kaiser"):  # parallel_wavegan 0.6.1 imports it from the old place
            scipy.signal.kaiser = scipy.signal.windows.kaiser
        import parallel_wavegan.layers
        import parallel_wavegan.losses
        import parallel_wavegan.models
    except ImportError:
        return None
    return parallel_wavegan


def synthetic_speechlike(count: int, seconds: float, sr: int, seed: int = 0) -> list[np.ndarray]:
    """Decaying harmonic series with a wandering pitch plus a little noise: spectra with speech-like structure."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        n = int(seconds * sr)
        t = np.arange(n) / sr
        f0 = 110 + 60 * rng.random() + 20 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t)
        phase = 2 * np.pi * np.cumsum(f0) / sr
        x = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)
        out.append((0.1 * x + 0.003 * rng.standard_normal(n)).astype(np.float32))
    return out


def _config(name: str, quick: bool) -> dict:
    from fastgan.train import load_config

    if quick:
        from tests.tiny_configs import tiny_config

        return tiny_config(name)
    return load_config(ROOT / "configs" / f"{name}.yaml", {"num_workers": 0, "pin_memory": False})


def make_trainer(name: str, quick: bool, device: torch.device):
    """A Trainer on synthetic audio, in the adversarial phase, and an endless batch iterator for it."""
    from fastgan.data import AudioMelDataset
    from fastgan.train import Trainer

    config = _config(name, quick)
    config["discriminator_train_start_steps"] = -1  # adversarial from the first step
    mel_context = (
        config["generator_params"].get("aux_context_window", 2) if "ParallelWaveGAN" in config["generator_type"] else 0
    )
    from fastgan.audio import MelConfig

    mel = MelConfig.from_config(config)
    arrays = synthetic_speechlike(max(4, config["batch_size"]), 2.0, config["sampling_rate"])
    dataset = AudioMelDataset.from_arrays(
        arrays, mel, config["batch_max_steps"] // config["hop_size"], mel_context=mel_context
    )
    out = ROOT / "bench" / "out" / f"train-{name}"
    trainer = Trainer(config, dataset, out, device=device, progress=False)
    return trainer, iter(trainer._loader(0))


class ParallelWaveGANStep:
    """parallel_wavegan's adversarial-phase training step, composed from its own modules in its trainer's order."""

    def __init__(self, pwg, config: dict, device: torch.device, fastgan_generator=None, fastgan_discriminator=None):
        models, losses = pwg.models, pwg.losses
        c = config
        self.c = c
        self.G = getattr(models, c["generator_type"])(**c["generator_params"]).to(device)
        self.D = getattr(models, c["discriminator_type"])(**c["discriminator_params"]).to(device)
        if fastgan_generator is not None:  # same weights as fastgan's models (their state_dict keys are PWG's)
            self.G.load_state_dict(fastgan_generator.state_dict())
            self.D.load_state_dict(fastgan_discriminator.state_dict())
        self.noise = c["generator_type"] == "ParallelWaveGANGenerator"
        self.pqmf = None
        if c["generator_params"].get("out_channels", 1) > 1:
            self.pqmf = pwg.layers.PQMF(subbands=c["generator_params"]["out_channels"], **c["pqmf_params"]).to(device)
        self.stft = losses.MultiResolutionSTFTLoss(**c["stft_loss_params"]).to(device) if c["use_stft_loss"] else None
        self.sub_stft = None
        if c["use_subband_stft_loss"]:
            self.sub_stft = losses.MultiResolutionSTFTLoss(**c["subband_stft_loss_params"]).to(device)
        self.mel = None
        if c["use_mel_loss"]:
            params = {"fs": c["sampling_rate"], "fft_size": c["fft_size"], "hop_size": c["hop_size"]}
            params.update(c["mel_loss_params"])
            self.mel = losses.MelSpectrogramLoss(**params).to(device)
        self.gen_adv = losses.GeneratorAdversarialLoss(**c["generator_adv_loss_params"])
        self.dis_adv = losses.DiscriminatorAdversarialLoss(**c["discriminator_adv_loss_params"])
        self.feat_match = losses.FeatureMatchLoss(**c["feat_match_loss_params"])
        self.opt_g = getattr(torch.optim, c["generator_optimizer_type"])(
            self.G.parameters(), **c["generator_optimizer_params"]
        )
        self.opt_d = getattr(torch.optim, c["discriminator_optimizer_type"])(
            self.D.parameters(), **c["discriminator_optimizer_params"]
        )

    def generator_loss(
        self, c: torch.Tensor, y: torch.Tensor, z: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(generator loss, full-band prediction), as parallel_wavegan's trainer computes them."""
        cfg = self.c
        if self.noise:
            z = torch.randn(y.size(0), 1, y.size(-1), device=y.device) if z is None else z
            y_ = self.G(z, c)
        else:
            y_ = self.G(c)
        if self.pqmf is not None:
            y_mb_ = y_
            y_ = self.pqmf.synthesis(y_mb_)
        gen_loss = 0.0
        if self.stft is not None:
            sc, mag = self.stft(y_, y)
            gen_loss += sc + mag
        if self.sub_stft is not None:
            gen_loss *= 0.5
            y_mb = self.pqmf.analysis(y)
            sc, mag = self.sub_stft(y_mb_, y_mb)
            gen_loss += 0.5 * (sc + mag)
        if self.mel is not None:
            gen_loss += self.mel(y_, y)
        gen_loss *= cfg.get("lambda_aux", 1.0)
        p_ = self.D(y_)
        adv_loss = self.gen_adv(p_)
        if cfg["use_feat_match_loss"]:
            with torch.no_grad():
                p = self.D(y)
            adv_loss += cfg["lambda_feat_match"] * self.feat_match(p_, p)
        return gen_loss + cfg["lambda_adv"] * adv_loss, y_

    def step(self, c: torch.Tensor, y: torch.Tensor):
        cfg = self.c
        gen_loss, _ = self.generator_loss(c, y)
        self.opt_g.zero_grad()
        gen_loss.backward()
        if cfg["generator_grad_norm"] > 0:
            torch.nn.utils.clip_grad_norm_(self.G.parameters(), cfg["generator_grad_norm"])
        self.opt_g.step()
        with torch.no_grad():
            y_ = self.G(torch.randn(y.size(0), 1, y.size(-1), device=y.device), c) if self.noise else self.G(c)
            if self.pqmf is not None:
                y_ = self.pqmf.synthesis(y_)
        p = self.D(y)
        p_ = self.D(y_.detach())
        real_loss, fake_loss = self.dis_adv(p_, p)
        dis_loss = real_loss + fake_loss
        self.opt_d.zero_grad()
        dis_loss.backward()
        if cfg["discriminator_grad_norm"] > 0:
            torch.nn.utils.clip_grad_norm_(self.D.parameters(), cfg["discriminator_grad_norm"])
        self.opt_d.step()


def cases(quick: bool, device: torch.device) -> list[Case]:
    pwg = _parallel_wavegan()
    result = []
    for name in MODELS:
        trainer, it = make_trainer(name, quick, device)
        batch = next(it)
        y = batch["audio"].to(device)
        feats = trainer._features(batch)
        impls = {"fastgan": lambda trainer=trainer, it=it: trainer._vocoder_step(it)}
        if pwg is not None:
            ref = ParallelWaveGANStep(pwg, trainer.config, device)
            impls["parallel_wavegan"] = lambda ref=ref, feats=feats, y=y: ref.step(feats, y)
        c = trainer.config
        result.append(
            Case(
                op="train_step",
                name=f"{name}{' tiny' if quick else ''} b{c['batch_size']} t{c['batch_max_steps']}",
                mode="fwd+bwd",
                dtype=torch.float32,
                impls=impls,
            )
        )
    return result
