"""``fastgan vocode``: waveforms or saved mel features in, synthesised waveforms out.

* ``.wav`` (or any audio soundfile reads) in: analysis–synthesis through the model's own mel front
  end (the feature keys of its ``config.yml``: sampling rate, FFT/hop/window sizes, mel bands, fmin/
  fmax), normalised with its statistics when it has them.
* ``.npy`` in: a (frames, num_mels) log-mel array (parallel_wavegan's dump layout), raw log-mel by
  default or already normalised with ``--normalized``.

Checkpoints: parallel_wavegan's training layout (``config.yml`` beside it), ``fastgan train``'s (config and
stats inside), fastgan's exported default, and the original HiFi-GAN repository's generator checkpoints
(``config.json`` beside them; its mel settings ``sampling_rate``, ``hop_size``, ``num_mels``, ``n_fft``,
``win_size``, ``fmin``, ``fmax`` and its natural-log front end).

Each input is written to ``OUT/<stem>.wav``; inputs sharing a stem are told apart by their folders
(``espeak_en-gb/s05.wav`` -> ``OUT/espeak_en-gb_s05.wav``, see :func:`output_names`), and a run whose output
would overwrite one of its inputs is refused before anything is done.

Inputs are synthesised in batches of equal length (padding a shorter item would change the audio at
its end, where the model pads by itself), with a progress bar, and the real-time factor is printed.
A bad input — missing, empty, unreadable, of the wrong sample rate or mel dimension, shorter than the
model can take — or one whose synthesis fails gets one line on stderr naming the file; the other
inputs are still written and the exit status is 1.

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

from fastgan._checks import one_line, usable_device

__all__ = [
    "DEFAULT_MODEL_DIR",
    "VocodeError",
    "Vocoder",
    "default_checkpoint",
    "load_vocoder",
    "output_names",
    "output_paths",
    "vocode_files",
]

# Where the shipped default model lives: ``default_vocoder.pt`` (``python -m fastgan.default_model
# export``: generator, config and stats in one file), or any ``*.pt``/``*.pkl`` checkpoint there
# (parallel_wavegan's layout with ``config.yml`` beside it). ``FASTGAN_DEFAULT_MODEL`` overrides it.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "pretrained"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}  # fmt: skip


class VocodeError(Exception):
    """A problem with one input (or the model) that is reported as one line."""


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


NOISE_SEED = 0  # Parallel WaveGAN's input noise for every file


@dataclass
class Vocoder:
    generator: torch.nn.Module
    mel_config: object  # fastgan.audio.MelConfig
    device: torch.device
    dtype: torch.dtype
    checkpoint: Path
    npy_normalized: bool = False  # .npy inputs already normalised with the model's stats
    min_frames: int = 1  # the fewest frames the model runs on (the generator's min_frames)
    front_end: str = "parallel_wavegan"  # or "hifigan": the original HiFi-GAN repository's (uncentred) features

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
        from fastgan.audio import hifigan_log_mel, logmelfilterbank

        cfg = self.mel_config
        if self.front_end == "hifigan":
            return hifigan_log_mel(audio, cfg)
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
        """Normalised (frames, num_mels) mels -> (frames * hop,) float32 waveforms.

        Mels of equal length run as one batch; each length runs on its own, because padding a shorter
        item would change its last frames' audio (the model pads at the real end by itself): a mel's
        audio does not depend on what it is synthesised with."""
        by_length: dict[int, list[int]] = {}
        for i, mel in enumerate(mels):
            by_length.setdefault(mel.shape[0], []).append(i)
        audios: list[torch.Tensor] = [torch.empty(0)] * len(mels)
        for indices in by_length.values():
            batch = self._forward(torch.stack([mels[i] for i in indices]))
            for i, audio in zip(indices, batch, strict=True):
                audios[i] = audio
        return audios

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, T, num_mels) -> (B, T * hop) float32 on the CPU."""
        samples = batch.shape[1] * self.hop_size
        c = batch.transpose(1, 2).to(self.device, self.dtype)
        g = self.generator
        if hasattr(g, "first_conv"):  # Parallel WaveGAN: noise in, context-padded features
            # Every file gets the same seeded draw (a batch holds one length): its audio then depends on its own
            # mel only, not on its batch mates or the run.
            noise = torch.randn(1, 1, samples, generator=torch.Generator().manual_seed(NOISE_SEED))
            z = noise.to(self.device, self.dtype).expand(c.shape[0], -1, -1)
            pad = int(getattr(g, "aux_context_window", 0))
            audio = g(z, torch.nn.functional.pad(c, (pad, pad), mode="replicate") if pad else c)
        else:
            audio = g(c)
            if getattr(g, "pqmf", None) is not None:
                audio = g.pqmf.synthesis(audio)
        if audio.shape[-1] != samples:  # else the audio would be silently cut short or stretched
            raise VocodeError(
                f"{self.checkpoint}: the model makes {audio.shape[-1] // batch.shape[1]} samples per frame, but its "
                f"config says hop_size {self.hop_size}"
            )
        return audio[:, 0].float().cpu()


# The original HiFi-GAN repository's mel settings (config.json) and their MelConfig names; all are needed
# (fmin/fmax default differently in parallel_wavegan's configs).
HIFIGAN_MEL_KEYS = {"sampling_rate": "sampling_rate", "hop_size": "hop_size", "num_mels": "num_mels",
                    "n_fft": "fft_size", "win_size": "win_length", "fmin": "fmin", "fmax": "fmax"}  # fmt: skip


def _mel_config(config: dict, where: object, kind: str = "parallel_wavegan"):
    """The model's mel front end from its config (``where`` names the config in errors)."""
    from fastgan.audio import MelConfig

    if kind == "hifigan":
        required = list(HIFIGAN_MEL_KEYS)
        values = {HIFIGAN_MEL_KEYS[k]: config[k] for k in required if k in config}
        # HiFi-GAN's front end: natural log of the magnitude mel clamped at 1e-5.
        values.update(log_base=None, eps=1e-5)
    else:
        required = ["sampling_rate", "hop_size", "num_mels"]
        keys = ("sampling_rate", "fft_size", "hop_size", "win_length", "window", "num_mels", "fmin", "fmax", "log_base")
        values = {k: config[k] for k in keys if k in config}
    missing = [k for k in required if k not in config]
    if missing:
        raise VocodeError(f"{where}: the config has no {', '.join(missing)}: cannot build the model's mel front end")
    try:
        return MelConfig(**values)
    except (TypeError, ValueError) as error:
        raise VocodeError(f"{where}: cannot build the model's mel front end: {one_line(error)}") from error


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
    from fastgan.checkpoints import (
        CONFIG_NAMES,
        _generator_from_checkpoint,
        _read_config,
        checkpoint_format,
        load_checkpoint,
    )

    path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    if dtype not in DTYPES:
        raise VocodeError(f"unknown --dtype {dtype!r}; expected one of {sorted(DTYPES)}")
    try:
        device = usable_device(device)
    except ValueError as error:
        raise VocodeError(str(error)) from error
    try:
        raw = load_checkpoint(path)  # its checks name a missing, empty or unreadable file
        kind = checkpoint_format(path, raw)
        # fastgan's exported default carries its config (and stats) inside; otherwise the file beside it.
        inside = raw.get("config") if isinstance(raw.get("config"), dict) else None
        config, config_path = _read_config(inside, path, CONFIG_NAMES[kind])
        generator, _ = _generator_from_checkpoint(path, raw, config_path or config, None)
        if inside is not None and raw.get("stats") is not None:
            _register_stats(generator, raw["stats"])
        generator.remove_weight_norm()
        generator = generator.float().to(device=device, dtype=DTYPES[dtype]).eval()
    except VocodeError:
        raise
    except Exception as error:  # a checkpoint can fail in many ways; each is one line naming the file
        message = one_line(error)
        raise VocodeError(message if str(path) in message else f"{path}: cannot load the model: {message}") from error
    where = config_path or f"the config inside {path}"
    vocoder = Vocoder(generator, _mel_config(config, where, kind), device, DTYPES[dtype], path)
    vocoder.front_end = "hifigan" if kind == "hifigan" else "parallel_wavegan"
    # Both read from the model itself (its layers give min_frames), not found by running it.
    channels = generator._feature_channels()
    if channels != vocoder.num_mels:
        raise VocodeError(f"{where}: num_mels is {vocoder.num_mels}, but the model takes {channels} mel channels")
    vocoder.min_frames = int(generator.min_frames)
    return vocoder


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
        _check_length(vocoder, mel.shape[0], f"{mel.shape[0]} frame(s)")
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
    mel = vocoder.features(audio)
    _check_length(vocoder, mel.shape[0], f"{mel.shape[0]} frame(s) from {audio.size} samples")
    return vocoder.normalize(torch.from_numpy(mel))


def _check_length(vocoder: Vocoder, frames: int, what: str) -> None:
    if frames < vocoder.min_frames:
        raise VocodeError(
            f"too short: {what}; this model needs at least {vocoder.min_frames} frames "
            f"({vocoder.min_frames * vocoder.hop_size} samples)"
        )


def output_names(inputs: list[str | os.PathLike]) -> list[str]:
    """The ``.wav`` name each input is written under (parallel to ``inputs``): the single source of truth for
    where ``vocode_files`` puts a file (its result's ``pairs`` say the same).

    ``<stem>.wav`` when no other input has that stem (compared case-insensitively: case-insensitive file
    systems); inputs sharing a stem get the shortest tail of their folder path that tells their folders apart,
    joined with ``_`` (``espeak_en-gb/s05.wav`` -> ``espeak_en-gb_s05.wav``): a flat folder, like every other
    output. A name still taken (the same folder twice, or another input's own name) gets the smallest free
    ``-N``, never a name any input is given. Names depend on the set of inputs, not their order."""
    paths = [Path(p) for p in inputs]
    resolved = [_resolved(p) for p in paths]
    by_stem: dict[str, list[int]] = {}
    for i, path in enumerate(paths):
        by_stem.setdefault(path.stem.casefold(), []).append(i)
    bases = [f"{path.stem}.wav" for path in paths]
    shared = [False] * len(paths)
    for group in by_stem.values():
        if len(group) == 1:
            continue
        parents = {i: resolved[i].parent.parts[1:] for i in group}  # [1:]: no root/anchor in a name
        distinct = len(set(parents.values()))
        depth = 1
        while len({parents[i][-depth:] for i in group}) < distinct:
            depth += 1
        for i in group:
            tail = "_".join(parents[i][-depth:])
            bases[i] = f"{tail}_{paths[i].stem}.wav" if tail else bases[i]
            shared[i] = True
    taken = {base.casefold() for base in bases}  # every base is reserved: a -N name never takes one
    names: list[str] = [""] * len(paths)
    kept: set[str] = set()
    # An input's own name first, then by path: which duplicate keeps the plain name does not depend on order.
    for i in sorted(range(len(paths)), key=lambda i: (shared[i], str(resolved[i]), i)):
        base = bases[i]
        if base.casefold() not in kept:
            names[i] = base
        else:
            stem, n = base[: -len(".wav")], 1
            while f"{stem}-{n}.wav".casefold() in taken:
                n += 1
            names[i] = f"{stem}-{n}.wav"
            taken.add(names[i].casefold())
        kept.add(names[i].casefold())
    return names


def output_paths(inputs: list[str | os.PathLike], out_dir: str | os.PathLike) -> list[Path]:
    """``out_dir / output_names(inputs)``, or a VocodeError naming the file when one of them is an input (the same
    file, however reached: relative path, symlink, hard link). The whole run is refused up front, before any model
    work or writing: skipping just that file would leave a run that looks done, and the fix is one --out away."""
    paths = [Path(p) for p in inputs]
    targets = [Path(out_dir) / name for name in output_names(paths)]
    inputs_by_id = {}
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:  # a missing input is never read, so nothing is written for it
            continue
        inputs_by_id.setdefault((stat.st_dev, stat.st_ino), path)
    for path, target in zip(paths, targets, strict=True):
        try:
            stat = os.stat(target)
        except OSError:  # not there yet: writing it loses nothing
            continue
        other = inputs_by_id.get((stat.st_dev, stat.st_ino))
        if other is not None:
            which = "this input" if other is path else f"the input {other}"
            raise VocodeError(f"{path}: its output {target} would overwrite {which}; pass another --out folder")
    return targets


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: its own error comes when it is read
        return Path(os.path.abspath(path))


def _synthesize_one(vocoder: Vocoder, mel: torch.Tensor) -> torch.Tensor | Exception:
    """One item of a failed batch on its own: a batch too big for memory still gets its files written."""
    try:
        return vocoder.synthesize([mel])[0]
    except Exception as error:
        return error


def vocode_files(
    vocoder: Vocoder, inputs: list[str | os.PathLike], out_dir: str | os.PathLike, *, batch_size: int = 8,
    progress: bool = True, log=print, err=None,
) -> dict:  # fmt: skip
    """Vocode every input into ``out_dir``; returns {"written": [...], "pairs": [(input, output)], "failed":
    [(path, reason)], "rtf": ...}. ``pairs``: each written file with the input it was made from, in input order (names
    from :func:`output_names`). A VocodeError, before anything is written, when an output would overwrite an input."""
    import soundfile as sf
    from tqdm import tqdm

    err = err or (lambda line: print(line, file=sys.stderr))
    out_dir = Path(out_dir)
    paths = [Path(p) for p in inputs]
    targets = output_paths(paths, out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise VocodeError(f"--out {out_dir}: cannot create the folder ({one_line(error)})") from error
    failed, ready = [], []
    for index, (path, target) in enumerate(zip(paths, targets, strict=True)):
        try:
            ready.append((index, path, target, read_input(vocoder, path)))
        except VocodeError as error:
            failed.append((str(path), one_line(error)))
            err(f"error: {path}: {one_line(error)}")
    # Only equal lengths share a batch: padding would make a file's audio depend on its batch mates.
    by_length: dict[int, list] = {}
    for item in sorted(ready, key=lambda item: item[3].shape[0]):
        by_length.setdefault(item[3].shape[0], []).append(item)
    step = max(1, batch_size)
    batches = [group[i : i + step] for group in by_length.values() for i in range(0, len(group), step)]
    written, pairs, seconds, synth_time = [], [], 0.0, 0.0

    def fail(path: Path, reason: str) -> None:
        failed.append((str(path), reason))
        err(f"error: {path}: {reason}")

    bar = tqdm(batches, desc="vocode", unit="batch", disable=not progress, file=sys.stderr)
    for batch in bar:
        start = time.perf_counter()
        try:
            audios = vocoder.synthesize([mel for *_, mel in batch])
            if vocoder.device.type == "cuda":
                torch.cuda.synchronize()
        except Exception as error:  # out of memory, a kernel error...: this batch's files fail, the rest go on
            audios = [error] if len(batch) == 1 else [_synthesize_one(vocoder, mel) for *_, mel in batch]
        synth_time += time.perf_counter() - start
        for (index, path, target, _), audio in zip(batch, audios, strict=True):
            if isinstance(audio, Exception):
                fail(path, f"synthesis failed: {one_line(audio) or type(audio).__name__}")
                continue
            if not torch.isfinite(audio).all():
                fail(path, "the model produced non-finite samples")
                continue
            try:
                sf.write(str(target), audio.clamp(-1, 1).numpy(), vocoder.sampling_rate, subtype="PCM_16")
            except Exception as error:  # a full disk, an unwritable folder: report, keep the rest going
                fail(path, f"cannot write {target}: {one_line(error)}")
                continue
            written.append(str(target))
            pairs.append((index, str(path), str(target)))
            seconds += audio.numel() / vocoder.sampling_rate
    rtf = synth_time / seconds if seconds else math.nan
    if written:
        log(
            f"vocoded {len(written)} file(s), {seconds:.2f} s of audio in {synth_time:.2f} s on {vocoder.device} "
            f"({str(vocoder.dtype).replace('torch.', '')}): real-time factor {rtf:.3f} "
            f"({1 / rtf if rtf > 0 else math.inf:.1f}x real time) -> {out_dir}"
        )
    pairs = [(source, target) for _, source, target in sorted(pairs)]
    return {
        "written": written,
        "pairs": pairs,
        "failed": failed,
        "rtf": rtf,
        "audio_seconds": seconds,
        "synth_seconds": synth_time,
    }


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
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder for the synthesised .wav files: <stem>.wav, inputs sharing a stem named by their folders (a/x.wav -> a_x.wav); never one of the inputs",
    )
    parser.add_argument("--checkpoint", default=None, metavar="PATH",
                        help="generator checkpoint: fastgan train's, parallel_wavegan layout (config.yml beside it) or the original HiFi-GAN "
                             "repository's (config.json beside it); default: the shipped model")  # fmt: skip
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
        output_paths(args.inputs, args.out)  # before the model loads: a run that would overwrite an input never starts
        vocoder = load_vocoder(args.checkpoint, args.device, args.dtype)
    except VocodeError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    vocoder.npy_normalized = args.normalized
    try:
        result = vocode_files(
            vocoder, args.inputs, args.out, batch_size=max(1, args.batch_size), progress=not args.no_progress
        )
    except VocodeError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    if result["failed"]:
        print(f"{len(result['failed'])} of {len(args.inputs)} input(s) failed (see the lines above)", file=sys.stderr)
        return 1
    return 0
