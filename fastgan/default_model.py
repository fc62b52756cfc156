"""Train, evaluate and export fastgan's default vocoder on the bundled corpus.

``python -m fastgan.default_model train --minutes 8 --out runs/default [--resume] [--adversarial-fraction 0.3]``
    trains ``configs/default_vocoder.yaml`` (a small Multi-band MelGAN) on ``data/corpus/train.txt`` within a wall-time
    budget: STFT + mel losses first, adversarial for the last ``--adversarial-fraction`` of the budget (or from
    ``--adversarial-start STEP`` when a training is spread over several resumed runs, e.g. on CPU).
``python -m fastgan.default_model evaluate --checkpoint CKPT [--json FILE]``
    reports, on the held-out ``data/corpus/valid.txt``, the multi-resolution STFT distance (spectral convergence +
    log magnitude, parallel_wavegan's resolutions) of the vocoder's output and of Griffin-Lim (32 iterations) on the
    same mels, and PESQ (wide band, 16 kHz) / STOI where the ``pesq`` / ``pystoi`` packages are installed.
``python -m fastgan.default_model export --checkpoint CKPT --to FILE [--half]``
    writes the generator alone (weight norm folded), its config and the feature statistics: the shipped default.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from fastgan.checkpoints import load_weights_only

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "default_vocoder.yaml"
TRAIN = ROOT / "data" / "corpus" / "train.txt"
VALID = ROOT / "data" / "corpus" / "valid.txt"


def train(
    minutes: float,
    out: Path,
    resume: bool,
    device: str | None,
    adversarial_fraction: float,
    adversarial_start: int | None,
) -> dict:
    from fastgan.train import Trainer, load_config

    config = load_config(CONFIG)
    if adversarial_start is not None:
        config["discriminator_train_start_steps"] = adversarial_start
    trainer = Trainer(config, TRAIN, out, valid=VALID, device=device, resume=resume)
    budget = minutes * 60.0
    started = time.perf_counter()
    if adversarial_start is None and trainer.config["discriminator_train_start_steps"] >= 10**9:
        first = trainer.train(max_seconds=budget * (1.0 - adversarial_fraction))
        if first["interrupted"]:  # Ctrl-C / SIGTERM: the checkpoint is written, no second phase
            first["valid_stft_distance"] = None
            return first
        trainer.config["discriminator_train_start_steps"] = trainer.steps  # adversarial from here on
        print(f"adversarial training from step {trainer.steps}", file=sys.stderr)
    summary = trainer.train(max_seconds=max(0.0, budget - (time.perf_counter() - started)))
    summary["valid_stft_distance"] = trainer.validate()
    summary["adversarial_from_step"] = trainer.config["discriminator_train_start_steps"]
    return summary


class Vocoder:
    """A trained generator with its feature statistics: ``vocoder(log10_mel (frames, mels)) -> audio (samples,)``."""

    def __init__(self, generator: torch.nn.Module, config: dict, stats, device: str | torch.device = "cpu"):
        from fastgan.audio import LogMelSpectrogram, MelConfig

        self.generator = generator.to(device).eval()
        self.config = config
        self.stats = stats
        self.device = torch.device(device)
        self.mel = MelConfig.from_config(config)
        self.melspec = LogMelSpectrogram(self.mel).to(device)
        self.pqmf = None
        out_channels = config["generator_params"].get("out_channels", 1)
        if out_channels > 1:
            from fastgan.nn import PQMF

            self.pqmf = PQMF(subbands=out_channels, **config.get("pqmf_params", {})).to(device)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Vocoder:
        from fastgan.train import load_generator

        generator, config, stats = load_generator(path, device)
        return cls(generator, config, stats, device)

    @torch.no_grad()
    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """(samples,) -> (mels, frames) log10-mel, parallel_wavegan's preprocessing."""
        return self.melspec(audio.to(self.device))[0]

    @torch.no_grad()
    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        from fastgan.audio import normalize

        c = normalize(mel.to(self.device)[None], self.stats, mel_axis=1) if self.stats is not None else mel[None]
        if self.config["generator_type"] == "ParallelWaveGANGenerator":
            w = self.config["generator_params"].get("aux_context_window", 2)
            c = torch.nn.functional.pad(c, (w, w), mode="replicate")
            z = torch.randn(1, 1, mel.shape[-1] * self.mel.hop_size, device=self.device)
            y = self.generator(z, c)
        else:
            y = self.generator(c)
        if self.pqmf is not None:
            y = self.pqmf.synthesis(y)
        return y.reshape(-1)


@torch.no_grad()
def griffin_lim_from_mel(mel: torch.Tensor, vocoder: Vocoder, iterations: int = 32) -> torch.Tensor:
    """Griffin-Lim on the same log10-mel: magnitudes by the filterbank's pseudo-inverse (clamped at 0)."""
    from fastgan.models import griffin_lim

    cfg = vocoder.mel
    basis = vocoder.melspec.melmat.double()
    linear_mel = torch.pow(10.0, mel.double())
    magnitude = (torch.linalg.pinv(basis) @ linear_mel).clamp_min(0.0).float()
    window = torch.hann_window(cfg.window_length, device=mel.device)
    length = (mel.shape[-1] - 1) * cfg.hop_size
    generator = torch.Generator(device=mel.device).manual_seed(0)
    return griffin_lim(magnitude[None], cfg.fft_size, cfg.hop_size, window, length, iterations, generator)[0]


def _optional_scores(reference, estimate, sr: int) -> dict:
    scores = {}
    try:
        from pystoi import stoi

        scores["stoi"] = float(stoi(reference, estimate, sr, extended=False))
    except ImportError:
        scores["stoi"] = "pystoi not installed"
    try:
        import librosa
        from pesq import pesq

        ref16 = librosa.resample(reference, orig_sr=sr, target_sr=16000)
        est16 = librosa.resample(estimate, orig_sr=sr, target_sr=16000)
        scores["pesq_wb"] = float(pesq(16000, ref16, est16, "wb"))
    except ImportError:
        scores["pesq_wb"] = "pesq not installed"
    return scores


def evaluate(checkpoint: str | Path, device: str = "cpu", valid: Path = VALID, samples: Path | None = None) -> dict:
    from fastgan.audio import write_wav
    from fastgan.data import AudioMelDataset
    from fastgan.nn import MultiResolutionSTFTLoss

    vocoder = Vocoder.load(checkpoint, device)
    dataset = AudioMelDataset(valid, vocoder.mel, segment_frames=None, preload=True)
    stft = MultiResolutionSTFTLoss().to(device)
    rows = []
    for i in range(len(dataset)):
        utt = dataset.utterance(i)
        audio = torch.from_numpy(utt.padded[vocoder.mel.fft_size // 2 : -(vocoder.mel.fft_size // 2)]).to(device)
        mel = vocoder.features(audio)
        n = (mel.shape[-1] - 1) * vocoder.mel.hop_size  # both outputs cut to the frames' span
        target = audio[:n]
        generated = vocoder(mel)[:n]
        gl = griffin_lim_from_mel(mel, vocoder)[:n]
        row = {"utterance": str(utt.path.relative_to(ROOT)) if utt.path.is_relative_to(ROOT) else str(utt.path)}
        for name, estimate in (("vocoder", generated), ("griffin_lim", gl)):
            sc, mag = stft(estimate[None], target[None])
            row[f"{name}_stft_distance"] = float(sc + mag)
            scores = _optional_scores(target.cpu().numpy(), estimate.cpu().numpy(), vocoder.mel.sampling_rate)
            row.update({f"{name}_{k}": v for k, v in scores.items()})
        if samples is not None:
            samples.mkdir(parents=True, exist_ok=True)
            stem = utt.path.parent.name + "_" + utt.path.stem
            for name, wave in (("vocoder", generated), ("griffin_lim", gl), ("reference", target)):
                write_wav(samples / f"{stem}-{name}.wav", wave, vocoder.mel.sampling_rate)
        rows.append(row)
    means = {}
    for key in rows[0]:
        values = [r[key] for r in rows if isinstance(r[key], float)]
        if values and key != "utterance":
            means[key] = sum(values) / len(values)
    state = load_weights_only(checkpoint)
    return {"checkpoint": str(checkpoint), "steps": state.get("steps"), "mean": means, "utterances": rows}


def export(checkpoint: str | Path, target: str | Path, half: bool = False) -> Path:
    """Generator weights (weight norm folded), config and stats in one small file, written atomically."""
    import os

    vocoder = Vocoder.load(checkpoint)
    generator = vocoder.generator
    if hasattr(generator, "remove_weight_norm"):
        generator.remove_weight_norm()
    weights = {k: (v.half() if half and v.is_floating_point() else v) for k, v in generator.state_dict().items()}
    state = load_weights_only(checkpoint)
    config = dict(vocoder.config)
    config["generator_params"] = dict(config["generator_params"], use_weight_norm=False)
    payload = {
        "model": {"generator": weights},
        "config": config,
        "stats": None if vocoder.stats is None else {"mean": vocoder.stats.mean, "scale": vocoder.stats.scale},
        "steps": state.get("steps"),
    }
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastgan.default_model", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("train", help="train within a time budget")
    t.add_argument("--minutes", type=float, default=8.0)
    t.add_argument("--out", type=Path, default=ROOT / "runs" / "default_vocoder")
    t.add_argument("--resume", action="store_true")
    t.add_argument("--device", default=None)
    t.add_argument("--adversarial-fraction", type=float, default=0.3)
    t.add_argument("--adversarial-start", type=int, default=None, help="step the adversarial phase starts at")
    e = commands.add_parser("evaluate", help="held-out STFT distance (and PESQ/STOI) vs Griffin-Lim")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--device", default="cpu")
    e.add_argument("--json", type=Path, default=None)
    e.add_argument("--samples", type=Path, default=None, help="write vocoder / Griffin-Lim / reference wavs here")
    x = commands.add_parser("export", help="write the shipped generator-only file")
    x.add_argument("--checkpoint", required=True)
    x.add_argument("--to", required=True, type=Path)
    x.add_argument("--half", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "train":
        summary = train(
            args.minutes, args.out, args.resume, args.device, args.adversarial_fraction, args.adversarial_start
        )
        print(json.dumps(summary, indent=1))
    elif args.command == "evaluate":
        report = evaluate(args.checkpoint, args.device, samples=args.samples)
        text = json.dumps(
            report, indent=1, default=lambda v: v if not isinstance(v, float) or math.isfinite(v) else str(v)
        )
        if args.json:
            args.json.write_text(text + "\n")
        print(json.dumps(report["mean"], indent=1))
    else:
        path = export(args.checkpoint, args.to, args.half)
        print(f"{path}: {path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
