"""Training data: audio files from a folder or list file, resampled, cut into random segments with their log-mels.

A segment of ``F`` frames is cut so its features equal frames ``s .. s+F-1`` of the whole utterance's
parallel_wavegan-style log-mel (centred STFT, reflect padding): each item carries the target waveform
``audio`` (``F * hop_size`` samples of the aligned utterance) and ``context``, the reflect-padded signal those
frames see (``(F - 1) * hop_size + fft_size`` samples). ``LogMelSpectrogram(context, center=False)`` on the
training device then gives exactly the utterance's frames, so the features are computed where the model runs and
agree with features made by ``fastgan preprocess`` or parallel_wavegan's ``preprocess`` on the same audio.

A file that cannot be used (not audio, empty, truncated, unreadable) is reported once, by name, through the
``fastgan.data`` logger and skipped: at start-up when its header is bad, or at its first read, when another
utterance takes its place. Only a source with no usable file at all is an error.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fastgan._checks import one_line, usable_device
from fastgan.audio import MelConfig, num_frames

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioMelDataset",
    "Utterance",
    "find_audio",
    "load_audio",
    "segment_with_context",
    "BadAudioError",
    "preprocess",
]

log = logging.getLogger("fastgan.data")

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".au", ".mp3", ".opus", ".w64", ".caf", ".sph")


class BadAudioError(ValueError):
    """A file that cannot serve as training audio; the message names it and says why."""


def find_audio(source: str | os.PathLike) -> list[Path]:
    """The audio files of ``source``: a folder (searched recursively for :data:`AUDIO_EXTENSIONS`) or a list file
    (one path a line, relative to the list file's folder; blank lines and ``#`` comments ignored). Sorted for a
    folder, in order for a list. Raises ``FileNotFoundError`` / ``ValueError`` naming the source when it is
    missing or holds no audio.
    """
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        if not files:
            raise ValueError(f"no audio files ({', '.join(AUDIO_EXTENSIONS[:3])}, ...) found under {source}")
        return files
    if source.is_file():
        files = []
        for line in source.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                path = Path(line)
                files.append(path if path.is_absolute() else source.parent / path)
        if not files:
            raise ValueError(f"the list file {source} names no audio files")
        return files
    raise FileNotFoundError(f"audio source {source} does not exist (give a folder of audio or a list file)")


class _WaveInfo:
    def __init__(self, frames: int, samplerate: int, channels: int):
        self.frames, self.samplerate, self.channels = frames, samplerate, channels


class _StdlibWave:
    """soundfile's ``info`` / ``read`` for PCM ``.wav`` through Python's ``wave`` module, where soundfile is missing
    (the GPU image): enough for the bundled corpus."""

    @staticmethod
    def info(path: str) -> _WaveInfo:
        import wave

        with wave.open(path, "rb") as f:
            return _WaveInfo(f.getnframes(), f.getframerate(), f.getnchannels())

    @staticmethod
    def read(path: str, dtype: str = "float32", always_2d: bool = True):
        import wave

        with wave.open(path, "rb") as f:
            width, channels, sr = f.getsampwidth(), f.getnchannels(), f.getframerate()
            raw = f.readframes(f.getnframes())
        if width == 1:
            data = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
        elif width in (2, 4):
            kind = np.int16 if width == 2 else np.int32
            data = np.frombuffer(raw, kind).astype(np.float32) / float(2 ** (8 * width - 1))
        elif width == 3:
            b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
            data = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8).astype(np.float32) / 2**23
        else:
            raise ValueError(f"{width}-byte samples are not supported without soundfile")
        data = data[: len(data) // channels * channels].reshape(-1, channels).astype(dtype)
        return (data if always_2d else data[:, 0] if channels == 1 else data), sr


def _soundfile():
    try:
        import soundfile

        return soundfile
    except ImportError:  # PCM wav still reads (stdlib); other formats then count as bad files
        return _StdlibWave


def load_audio(path: str | os.PathLike, sampling_rate: int | None = None) -> np.ndarray:
    """Read ``path`` with soundfile as mono float32 (channels averaged), resampled to ``sampling_rate`` (soxr).

    Without soundfile installed, PCM ``.wav`` files are read with Python's ``wave`` module.

    Raises :class:`BadAudioError` naming the file for anything that makes it unusable.
    """
    sf = _soundfile()
    path = os.fspath(path)
    try:
        info = sf.info(path)
    except Exception as error:
        raise BadAudioError(f"{path}: not readable as audio ({error})") from None
    if info.frames <= 0:
        raise BadAudioError(f"{path}: empty (no samples)")
    try:
        audio, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as error:
        raise BadAudioError(f"{path}: truncated or corrupt ({error})") from None
    if audio.shape[0] == 0:
        raise BadAudioError(f"{path}: empty (no samples)")
    if audio.shape[0] < info.frames:
        raise BadAudioError(f"{path}: truncated: header says {info.frames} samples, {audio.shape[0]} present")
    audio = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if not np.isfinite(audio).all():
        raise BadAudioError(f"{path}: holds non-finite samples")
    if sampling_rate is not None and sr != sampling_rate:
        import librosa

        audio = librosa.resample(audio, orig_sr=sr, target_sr=sampling_rate, res_type="soxr_hq")
    return np.ascontiguousarray(audio, dtype=np.float32)


@dataclass
class Utterance:
    """A whole utterance, aligned like parallel_wavegan's preprocessing: ``audio`` has ``frames * hop`` samples."""

    path: Path
    audio: np.ndarray  # the aligned waveform, frames * hop_size samples
    padded: np.ndarray  # the original waveform reflect-padded by fft_size // 2 on both sides
    frames: int


def _prepare(audio: np.ndarray, cfg: MelConfig, min_frames: int) -> Utterance:
    # An utterance shorter than one segment is zero-padded at its end; its features are those of the padded audio.
    min_samples = max(min_frames * cfg.hop_size, cfg.fft_size // 2 + 1)
    if len(audio) < min_samples:
        audio = np.pad(audio, (0, min_samples - len(audio)))
    frames = num_frames(len(audio), cfg.hop_size)
    half = cfg.fft_size // 2
    padded = np.pad(audio, (half, half), mode="reflect")
    aligned = np.pad(audio, (0, cfg.fft_size), mode="edge")[: frames * cfg.hop_size]
    return Utterance(Path(), aligned, padded, frames)


def segment_with_context(
    utt: Utterance, start_frame: int, frames: int, cfg: MelConfig, mel_context: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(audio, context) for frames ``start_frame .. start_frame + frames - 1`` of ``utt`` (see the module doc).

    ``mel_context`` extra frames on each side go into ``context`` only (Parallel WaveGAN's ``aux_context_window``).
    """
    first, last = start_frame - mel_context, start_frame + frames + mel_context  # mel frames [first, last)
    if first < 0 or last > utt.frames:
        raise ValueError(f"mel frames [{first}, {last}) outside the {utt.frames} frames of {utt.path}")
    hop = cfg.hop_size
    audio = utt.audio[start_frame * hop : (start_frame + frames) * hop]
    context = utt.padded[first * hop : (last - 1) * hop + cfg.fft_size]
    return audio, context


class AudioMelDataset(torch.utils.data.Dataset):
    """Random segments of the audio in ``source`` at ``mel.sampling_rate``.

    Each item is a dict: ``audio`` (1, segment_frames * hop) float32, ``context`` (see the module doc), ``label``
    (the index of the file's parent folder in :attr:`labels`, for class-conditional models), ``index`` (the file)
    and ``start`` (the first frame). With
    ``segment_frames=None`` items are whole utterances (batch size 1). Segment starts are drawn from a generator
    seeded by (seed, epoch, index), so an epoch is reproducible whatever the worker count and a resumed run
    draws the same segments; call :meth:`set_epoch` each epoch. Decoded audio is cached in memory (``cache``);
    ``preload`` decodes every file up front, so bad ones are reported once, here, before any worker starts.
    ``mel_context`` adds that many frames of features on each side of the segment (``context`` only). An index may
    be an ``(index, draw)`` pair, which seeds the segment with ``draw`` in place of the epoch.
    """

    def __init__(
        self,
        source: str | os.PathLike,
        mel: MelConfig,
        segment_frames: int | None = 32,
        seed: int = 0,
        cache: bool = True,
        check: bool = True,
        preload: bool = False,
        mel_context: int = 0,
    ):
        self.mel = mel
        self.mel_context = mel_context
        self.segment_frames = segment_frames
        self.seed = seed
        self.epoch = 0
        self.cache = cache
        self._cache: dict[int, Utterance] = {}
        self._reported: set[str] = set()
        self._lock = threading.Lock()
        files = find_audio(source)
        if check:
            files = [f for f in files if self._header_ok(f)]
        if not files:
            raise ValueError(f"no usable audio in {source}: every file was reported bad")
        self.files = files
        if preload:  # decode everything now, in this process, and drop what is bad (workers then inherit the cache)
            self.cache = True
            good = []
            for path in files:
                try:
                    utt = _prepare(load_audio(path, mel.sampling_rate), mel, self._min_frames)
                except BadAudioError as error:
                    self._report(str(error), path)
                    continue
                utt.path = path
                self._cache[len(good)] = utt
                good.append(path)
            if not good:
                raise ValueError(f"no usable audio in {source}: every file was reported bad")
            self.files = files = good
        self.labels = sorted({f.parent.name for f in files})
        self._label_of = {name: i for i, name in enumerate(self.labels)}

    @classmethod
    def from_arrays(
        cls,
        arrays: list[np.ndarray],
        mel: MelConfig,
        segment_frames: int | None = 32,
        labels: list[str] | None = None,
        seed: int = 0,
        mel_context: int = 0,
    ) -> AudioMelDataset:
        """An in-memory dataset of waveforms already at ``mel.sampling_rate`` (no files; for benchmarks and tests).

        ``labels``: one class name per array (default: all ``"0"``).
        """
        if not arrays:
            raise ValueError("from_arrays: no waveforms given")
        self = cls.__new__(cls)
        self.mel, self.segment_frames, self.seed, self.epoch = mel, segment_frames, seed, 0
        self.mel_context, self.cache = mel_context, True
        self._cache, self._reported, self._lock = {}, set(), threading.Lock()
        names = labels or ["0"] * len(arrays)
        self.files = [Path(name) / f"array{i}" for i, name in enumerate(names)]
        for i, audio in enumerate(arrays):
            utt = _prepare(np.ascontiguousarray(audio, dtype=np.float32), mel, self._min_frames)
            utt.path = self.files[i]
            self._cache[i] = utt
        self.labels = sorted(set(names))
        self._label_of = {name: i for i, name in enumerate(self.labels)}
        return self

    # -- bad files: reported once each --------------------------------------------------------------------------------
    def _report(self, message: str, path: Path):
        key = os.fspath(path)
        with self._lock:
            if key in self._reported:
                return
            self._reported.add(key)
        log.warning("skipping %s", message)

    @property
    def reported(self) -> list[str]:
        """The files reported bad so far."""
        return sorted(self._reported)

    def _header_ok(self, path: Path) -> bool:
        sf = _soundfile()
        try:
            info = sf.info(os.fspath(path))
        except Exception as error:
            self._report(f"{path}: not readable as audio ({error})", path)
            return False
        if info.frames <= 0:
            self._report(f"{path}: empty (no samples)", path)
            return False
        return True

    # -- loading ------------------------------------------------------------------------------------------------------
    def utterance(self, index: int) -> Utterance:
        """The decoded, resampled, aligned utterance ``index``; raises :class:`BadAudioError`."""
        if index in self._cache:
            return self._cache[index]
        path = self.files[index]
        audio = load_audio(path, self.mel.sampling_rate)
        utt = _prepare(audio, self.mel, self._min_frames)
        utt.path = path
        if self.cache:
            self._cache[index] = utt
        return utt

    @property
    def _min_frames(self) -> int:
        return (self.segment_frames or 1) + 2 * self.mel_context

    def set_epoch(self, epoch: int):
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index) -> dict:
        draw = self.epoch
        if isinstance(index, tuple):  # (index, draw): the trainer's sampler names the draw itself
            index, draw = index
        n = len(self.files)
        for step in range(n):
            i = (index + step) % n
            if os.fspath(self.files[i]) in self._reported:
                continue
            try:
                utt = self.utterance(i)
            except BadAudioError as error:
                self._report(str(error), self.files[i])
                continue
            return self._item(utt, i, index, draw)
        raise RuntimeError(f"every one of the {n} audio files was reported bad: {self.reported[:5]} ...")

    def _item(self, utt: Utterance, i: int, index: int, draw: int) -> dict:
        w = self.mel_context
        frames = self.segment_frames or utt.frames - 2 * w
        rng = np.random.default_rng([self.seed, draw, index])
        start = int(rng.integers(w, utt.frames - frames - w + 1))
        audio, context = segment_with_context(utt, start, frames, self.mel, w)
        return {
            "audio": torch.from_numpy(audio.copy())[None],
            "context": torch.from_numpy(context.copy()),
            "label": self._label_of[utt.path.parent.name],
            "index": i,
            "start": start,
        }


# ---------------------------------------------------------------------------------------------------------------------
# fastgan preprocess: parallel_wavegan-layout feature dumps


def _utterance_ids(files: list[Path], reserved: tuple[str, ...] = ()) -> list[str]:
    """One distinct output name per file (case-insensitively, for any file system), in the order of ``files``.

    The file's stem when every stem is distinct (parallel_wavegan's naming); otherwise each name is the file's path
    relative to the files' common folder, joined by ``_`` (``x/a.wav`` -> ``x_a``), keeping the extension where
    two files differ only by it (``x_a.wav``, ``x_a.flac``). A name still taken (``y_x/a`` and ``y/x/a``, or one
    in ``reserved``) gets a suffix ``-2``, ``-3``, ... .
    """
    names = [f.stem for f in files]
    if len({n.casefold() for n in names}) < len(names):
        absolute = [Path(os.path.abspath(f)) for f in files]
        root = Path(os.path.commonpath([os.fspath(f.parent) for f in absolute]))
        relative = [f.relative_to(root) for f in absolute]
        names = ["_".join((*r.parent.parts, r.stem)) for r in relative]
        groups: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            groups.setdefault(name.casefold(), []).append(i)
        for members in groups.values():
            if len({relative[i].suffix.casefold() for i in members}) > 1:  # x/a.wav and x/a.flac
                for i in members:
                    names[i] = names[i] + relative[i].suffix
        log.info("utterance names: file stems clash, so each is its path relative to %s", root)
    taken = {r.casefold() for r in reserved}
    unique = []
    for name in names:
        candidate, n = name, 1
        while candidate.casefold() in taken:
            n += 1
            candidate = f"{name}-{n}"
        taken.add(candidate.casefold())
        unique.append(candidate)
    assert len({u.casefold() for u in unique}) == len(files)
    return unique


def _preprocess_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a torch device that can hold tensors here; a ValueError naming it otherwise."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return usable_device(device, "preprocess: device")


def preprocess(
    source: str | os.PathLike,
    out: str | os.PathLike,
    mel: MelConfig,
    fmt: str = "hdf5",
    device: str | torch.device | None = None,
    progress: bool = False,
) -> dict:
    """Write parallel_wavegan-style dumps of every usable file in ``source`` into ``out``.

    ``fmt="hdf5"``: ``<utt>.h5`` with datasets ``wave`` (the aligned waveform, frames * hop_size samples) and
    ``feats`` (frames, num_mels); ``fmt="npy"``: ``<utt>-wave.npy`` and ``<utt>-feats.npy``. Then ``stats.h5`` /
    ``stats.npy`` over all of them. ``<utt>`` is the file's stem, or, where stems clash, its path relative to the
    files' common folder (see :func:`_utterance_ids`); no two files share a name. Features are computed on
    ``device`` (CUDA when available by default). Bad files are reported and skipped. Returns a summary dict
    (utterances, frames, skipped, files written, stats, and ``utterance_ids``: each name written -> its file).
    A bad ``device`` or an ``out`` that is not a folder is a ValueError before anything is written.
    """
    from fastgan.audio import LogMelSpectrogram, align_audio, compute_stats, save_stats

    if fmt not in ("hdf5", "npy"):
        raise ValueError(f"preprocess: format must be 'hdf5' or 'npy', got {fmt!r}")
    device = _preprocess_device(device)
    files = find_audio(source)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"preprocess: the output {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"preprocess: cannot create the output folder {out} ({one_line(error)})") from None
    stats_name = "stats.h5" if fmt == "hdf5" else "stats.npy"
    ids = _utterance_ids(files, reserved=("stats",) if fmt == "hdf5" else ())
    melspec = LogMelSpectrogram(mel).to(device)
    feats_all, skipped, written, used = [], [], [], {}
    iterator = zip(files, ids, strict=True)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(list(iterator), desc="preprocess", unit="utt")
    for path, utt in iterator:
        try:
            audio = load_audio(path, mel.sampling_rate)
            if len(audio) <= mel.fft_size // 2:
                raise BadAudioError(f"{path}: {len(audio)} samples is shorter than half an FFT frame")
        except BadAudioError as error:
            log.warning("skipping %s", error)
            skipped.append(os.fspath(path))
            continue
        with torch.no_grad():
            feats = melspec(torch.from_numpy(audio).to(device))[0].T.float().cpu().numpy()
        wave = align_audio(audio, len(feats), mel.hop_size, mel.fft_size).astype(np.float32)
        target = out / (f"{utt}.h5" if fmt == "hdf5" else f"{utt}-wave.npy")
        try:
            if fmt == "hdf5":
                import h5py

                with h5py.File(target, "w") as f:
                    f.create_dataset("wave", data=wave)
                    f.create_dataset("feats", data=feats)
                written.append(target)
            else:
                for kind, data in (("wave", wave), ("feats", feats)):
                    target = out / f"{utt}-{kind}.npy"
                    np.save(target, data, allow_pickle=False)
                    written.append(target)
        except OSError as error:  # a full disk, an unwritable folder: one line; what was written stays
            raise ValueError(f"preprocess: cannot write {target} ({one_line(error)})") from None
        feats_all.append(feats)
        used[utt] = os.fspath(path)
    if not feats_all:
        raise ValueError(f"preprocess: no usable audio in {source} ({len(skipped)} bad files)")
    stats_path = out / stats_name
    try:
        save_stats(stats_path, compute_stats(feats_all))
    except OSError as error:
        raise ValueError(f"preprocess: cannot write {stats_path} ({one_line(error)})") from None
    written.append(stats_path)
    return {
        "utterances": len(feats_all),
        "frames": int(sum(len(f) for f in feats_all)),
        "skipped": skipped,
        "written": [os.fspath(p) for p in written],
        "stats": os.fspath(stats_path),
        "utterance_ids": used,
    }
