"""``fastgan vocode``: waveforms or saved mel features in, synthesised waveforms out.

* ``.wav`` (or any audio soundfile reads) in: analysis–synthesis through the model's own mel front
  end (the feature keys of its ``config.yml``: sampling rate, FFT/hop/window sizes, mel bands, fmin/
  fmax), normalised with its statistics when it has them.
* ``.npy`` in: a (frames, num_mels) log-mel array (parallel_wavegan's dump layout), raw log-mel by
  default or already normalised with ``--normalized``.

Inputs are synthesised in batches (shorter items padded by repeating their last frame, the extra
audio cut), with a progress bar, and the real-time factor is printed. A bad input — missing, empty,
unreadable, of the wrong sample rate or mel dimension — gets one line on stderr naming the file;
the other inputs are still written and the exit status is 1.

Without ``--checkpoint`` the default model shipped with fastgan is used (:func:`default_checkpoint`).
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["DEFAULT_MODEL_DIR", "VocodeError", "Vocoder", "default_checkpoint", "load_vocoder", "vocode_files"]

# Where the shipped default model lives: ``default_vocoder.pt`` (``python -m fastgan.default_model
# export``: generator, config and stats in one file), or any ``*.pt``/``*.pkl`` checkpoint there
# (parallel_wavegan's layout with ``config.yml`` beside it). ``FASTGAN_DEFAULT_MODEL`` overrides it.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "pretrained"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}  # fmt: skip


class VocodeError(Exception):
    """A problem with one input (or the model) that is reported as one line."""


def one_line(error: object) -> str:
    """An error message on one line (library messages can span several)."""
    return " ".join(str(error).split())


def default_checkpoint() -> Path:
    """The shipped default generator checkpoint, or a VocodeError saying clearly that there is none."""
    override = os.environ.get("FASTGAN_DEFAULT_MODEL")
    where = Path(override) if override else DEFAULT_MODEL_DIR
    if where.is_file():
        return where
    if (where / "default_vocoder.pt").is_file():
        return where / "default_vocoder.pt"
    found = sorted([*where.glob("*.pt"), *where.glob("*.pkl")]) if where.is_dir() else []
    if not found:
        raise VocodeError(
            f"no default model is shipped in this fastgan (looked for default_vocoder.pt or a *.pt/*.pkl "
            f"checkpoint in {where}); pass --checkpoint PATH (a parallel_wavegan or fastgan checkpoint)"
        )
    return found[-1]


@dataclass
class Vocoder:
    generator: torch.nn.Module
    mel_config: object  # fastgan.audio.MelConfig
    device: torch.device
    dtype: torch.dtype
    checkpoint: Path
    npy_normalized: bool = False  # .npy inputs already normalised with the model's stats

    @property
    def hop_size(self) -> int:
        return self.mel_config.hop_size

    @property
    def sampling_rate(self) -> int:
        return self.mel_config.sampling_rate

    @property
    def num_mels(self) -> int:
        return self.mel_config.num_mels

    @property
    def has_stats(self) -> bool:
        return hasattr(self.generator, "mean") and hasattr(self.generator, "scale")

    def features(self, audio: np.ndarray) -> np.ndarray:
        """(samples,) float audio -> (frames, num_mels) raw log-mel, the model's front end."""
        from fastgan.audio import logmelfilterbank

        cfg = self.mel_config
        return logmelfilterbank(
            audio, cfg.sampling_rate, cfg.fft_size, cfg.hop_size, cfg.win_length, cfg.window, cfg.num_mels,
            cfg.fmin, cfg.fmax, cfg.eps, cfg.log_base,
        )  # fmt: skip

    def normalize(self, mel: torch.Tensor) -> torch.Tensor:
        if not self.has_stats:
            return mel
        mean = self.generator.mean.to(mel.device, torch.float32)
        scale = self.generator.scale.to(mel.device, torch.float32)
        return (mel - mean) / scale

    @torch.no_grad()
    def synthesize(self, mels: list[torch.Tensor]) -> list[torch.Tensor]:
        """Normalised (frames, num_mels) mels -> (frames * hop,) float32 waveforms, as one batch."""
        frames = [m.shape[0] for m in mels]
        longest = max(frames)
        batch = torch.stack(
            [torch.cat([m, m[-1:].expand(longest - m.shape[0], -1)]) if m.shape[0] < longest else m for m in mels]
        )  # (B, T, mels): shorter items repeat their last frame
        c = batch.transpose(1, 2).to(self.device, self.dtype)
        g = self.generator
        if hasattr(g, "first_conv"):  # Parallel WaveGAN: noise in, context-padded features
            z = torch.randn(c.shape[0], 1, longest * self.hop_size, device=self.device, dtype=self.dtype)
            pad = int(getattr(g, "aux_context_window", 0))
            audio = g(z, torch.nn.functional.pad(c, (pad, pad), mode="replicate") if pad else c)
        else:
            audio = g(c)
            if getattr(g, "pqmf", None) is not None:
                audio = g.pqmf.synthesis(audio)
        audio = audio[:, 0].float().cpu()
        return [audio[i, : n * self.hop_size] for i, n in enumerate(frames)]


def _mel_config(config: dict):
    from fastgan.audio import MelConfig

    keys = ("sampling_rate", "fft_size", "hop_size", "win_length", "window", "num_mels", "fmin", "fmax")
    values = {k: config[k] for k in keys if k in config}
    if "sampling_rate" not in values or "hop_size" not in values or "num_mels" not in values:
        raise VocodeError(
            "the model's config has no sampling_rate / hop_size / num_mels: cannot build its mel front end"
        )
    if "log_base" in config:
        values["log_base"] = config["log_base"]
    return MelConfig(**values)


def _load_weights_only(path: Path):
    """``torch.load(weights_only=True)``, also admitting plain numpy arrays (feature statistics): they
    rebuild from bytes and a dtype, no code runs."""
    import numpy

    core = getattr(numpy, "_core", None) or numpy.core
    allowed = [numpy.ndarray, numpy.dtype, core.multiarray._reconstruct]
    allowed += [type(numpy.dtype(t)) for t in ("float32", "float64", "float16")]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True)


def _register_stats(generator: torch.nn.Module, stats) -> None:
    if isinstance(stats, dict) and "mean" in stats and "scale" in stats:
        for name in ("mean", "scale"):
            value = torch.as_tensor(np.asarray(stats[name], dtype=np.float32)).reshape(-1)
            generator.register_buffer(name, value)


def load_vocoder(checkpoint: str | os.PathLike | None = None, device: str = "cpu", dtype: str = "float32") -> Vocoder:
    """The generator (weight norm folded, eval mode) and its mel front end, from a checkpoint or the default.

    Reads parallel_wavegan's layout (``model`` -> ``generator``, ``config.yml`` and ``stats.*``
    beside it) and fastgan's exported default (the same with ``config`` and ``stats`` inside), always
    with ``torch.load(weights_only=True)``.
    """
    from fastgan.checkpoints import CheckpointError, _load_parallel_wavegan, _read_config

    path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    if dtype not in DTYPES:
        raise VocodeError(f"unknown --dtype {dtype!r}; expected one of {sorted(DTYPES)}")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VocodeError(f"--device {device}: CUDA is not available here")
    if not path.is_file():
        raise VocodeError(f"{path}: no such checkpoint file")
    try:
        raw = _load_weights_only(path)
        if not isinstance(raw, dict) or not isinstance(raw.get("model"), dict) or "generator" not in raw["model"]:
            raise CheckpointError(f"{path}: not a generator checkpoint (expected 'model' -> 'generator')")
        inside = raw.get("config") if isinstance(raw.get("config"), dict) else None
        config, _ = _read_config(inside, path, "config.yml")
        generator = _load_parallel_wavegan(path, raw, config, None)
        if inside is not None and raw.get("stats") is not None:
            _register_stats(generator, raw["stats"])
    except VocodeError:
        raise
    except Exception as error:  # a checkpoint can fail in many ways; each is one line naming the file
        raise VocodeError(f"{path}: cannot load the model: {error}") from error
    generator.remove_weight_norm()
    generator = generator.float().to(device=device, dtype=DTYPES[dtype]).eval()
    return Vocoder(generator, _mel_config(config), device, DTYPES[dtype], path)


def read_input(vocoder: Vocoder, path: Path) -> torch.Tensor:
    """One input file -> normalised (frames, num_mels) float32 mel; VocodeError naming the problem."""
    if not path.exists():
        raise VocodeError("no such file")
    if path.is_dir():
        raise VocodeError("is a directory")
    if path.stat().st_size == 0:
        raise VocodeError("empty file")
    if path.suffix.lower() == ".npy":
        try:
            mel = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise VocodeError(f"not a readable .npy array ({error})") from error
        if mel.ndim != 2 or mel.shape[1] != vocoder.num_mels:
            raise VocodeError(f"mel must be (frames, {vocoder.num_mels}) for this model, got shape {tuple(mel.shape)}")
        if mel.shape[0] == 0 or not np.issubdtype(mel.dtype, np.floating) or not np.isfinite(mel).all():
            raise VocodeError(f"mel must be non-empty, floating point and finite (shape {mel.shape}, {mel.dtype})")
        mel = torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))
        return mel if vocoder.npy_normalized else vocoder.normalize(mel)
    import soundfile as sf

    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises its own LibsndfileError / RuntimeError
        raise VocodeError(
            f"unreadable audio ({str(error).splitlines()[0] if str(error) else type(error).__name__})"
        ) from error
    if rate != vocoder.sampling_rate:
        raise VocodeError(f"sample rate {rate} Hz, the model takes {vocoder.sampling_rate} Hz (resample it first)")
    audio = audio.mean(axis=1)
    if audio.size <= vocoder.mel_config.fft_size // 2:
        raise VocodeError(f"too short: {audio.size} samples (needs more than {vocoder.mel_config.fft_size // 2})")
    return vocoder.normalize(torch.from_numpy(vocoder.features(audio)))


def _output_names(inputs: list[Path]) -> list[str]:
    names, seen = [], {}
    for path in inputs:
        stem = path.stem
        count = seen.get(stem, 0)
        seen[stem] = count + 1
        names.append(f"{stem}.wav" if count == 0 else f"{stem}-{count}.wav")
    return names


def vocode_files(
    vocoder: Vocoder, inputs: list[str | os.PathLike], out_dir: str | os.PathLike, *, batch_size: int = 8,
    progress: bool = True, log=print, err=None,
) -> dict:  # fmt: skip
    """Vocode every input into ``out_dir``; returns {"written": [...], "failed": [(path, reason)], "rtf": ...}."""
    import soundfile as sf
    from tqdm import tqdm

    err = err or (lambda line: print(line, file=sys.stderr))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [Path(p) for p in inputs]
    names = _output_names(paths)
    failed, ready = [], []
    for path, name in zip(paths, names, strict=True):
        try:
            ready.append((path, name, read_input(vocoder, path)))
        except VocodeError as error:
            failed.append((str(path), one_line(error)))
            err(f"error: {path}: {one_line(error)}")
    ready.sort(key=lambda item: item[2].shape[0])  # similar lengths share a batch: less padding
    batches = [ready[i : i + batch_size] for i in range(0, len(ready), max(1, batch_size))]
    written, seconds, synth_time = [], 0.0, 0.0
    bar = tqdm(batches, desc="vocode", unit="batch", disable=not progress, file=sys.stderr)
    for batch in bar:
        start = time.perf_counter()
        audios = vocoder.synthesize([mel for _, _, mel in batch])
        if vocoder.device.type == "cuda":
            torch.cuda.synchronize()
        synth_time += time.perf_counter() - start
        for (path, name, _), audio in zip(batch, audios, strict=True):
            if not torch.isfinite(audio).all():
                failed.append((str(path), "the model produced non-finite samples"))
                err(f"error: {path}: the model produced non-finite samples")
                continue
            target = out_dir / name
            sf.write(str(target), audio.clamp(-1, 1).numpy(), vocoder.sampling_rate, subtype="PCM_16")
            written.append(str(target))
            seconds += audio.numel() / vocoder.sampling_rate
    rtf = synth_time / seconds if seconds else math.nan
    if written:
        log(
            f"vocoded {len(written)} file(s), {seconds:.2f} s of audio in {synth_time:.2f} s on {vocoder.device} "
            f"({str(vocoder.dtype).replace('torch.', '')}): real-time factor {rtf:.3f} "
            f"({1 / rtf if rtf > 0 else math.inf:.1f}x real time) -> {out_dir}"
        )
    return {"written": written, "failed": failed, "rtf": rtf, "audio_seconds": seconds, "synth_seconds": synth_time}


def add_parser(commands) -> None:
    """The ``vocode`` subcommand (called from :mod:`fastgan.cli`)."""
    parser = commands.add_parser(
        "vocode",
        help="synthesise waveforms from audio (analysis-synthesis) or saved mel features",
        description=__doc__.split("\n\n")[0] + " Without --checkpoint the shipped default model is used.",
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help=".wav (any soundfile audio) or .npy (frames, mels) files"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the synthesised .wav files")
    parser.add_argument("--checkpoint", default=None, metavar="PATH",
                        help="generator checkpoint (parallel_wavegan layout, config.yml beside it); default: the shipped model")  # fmt: skip
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--normalized", action="store_true", help=".npy inputs are already normalised with the model's stats"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=main)


def main(args) -> int:
    try:
        vocoder = load_vocoder(args.checkpoint, args.device, args.dtype)
    except VocodeError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    vocoder.npy_normalized = args.normalized
    result = vocode_files(
        vocoder, args.inputs, args.out, batch_size=max(1, args.batch_size), progress=not args.no_progress
    )
    if result["failed"]:
        print(f"{len(result['failed'])} of {len(args.inputs)} input(s) failed (see the lines above)", file=sys.stderr)
        return 1
    return 0
