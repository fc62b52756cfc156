"""The mel front end: log-mel features with parallel_wavegan 0.6.1's preprocessing conventions, in torch.

parallel_wavegan's ``logmelfilterbank`` (``bin/preprocess.py``) computes, per utterance::

    |STFT(x)|           librosa.stft: n_fft=fft_size, hop=hop_size, win_length (None -> fft_size), a periodic
                        window centred in the frame, center=True with reflect padding of fft_size // 2
    mel = max(eps, |S| @ M.T)   M = librosa.filters.mel(sr, n_fft, n_mels, fmin (None -> 0), fmax (None -> sr/2)),
                        Slaney mel scale and area normalisation; magnitude, not power
    log10(mel)          (frames, num_mels)

and then edge-pads the waveform by fft_size and cuts it to ``frames * hop_size`` samples, so each frame owns
exactly ``hop_size`` samples. Statistics are sklearn ``StandardScaler`` mean and scale (population standard
deviation, 1 where it is zero) over all frames, stored as ``stats.h5`` (datasets ``mean``, ``scale``) or
``stats.npy`` (a 2 x num_mels array: mean, scale); ``normalize`` applies ``(mel - mean) / scale``.

Here the same features are computed with ``torch.stft`` on whatever device the audio is on (the training
device), in float32. librosa supplies the filterbank when it is installed (imported lazily); without it a
float64 transcription of the Slaney filterbank is used (``tests/test_audio.py`` checks it equals librosa's).
Layouts: functions taking parallel_wavegan's arguments (:func:`logmelfilterbank`) return its
``(frames, num_mels)``; the module :class:`LogMelSpectrogram` returns the models' ``(batch, num_mels, frames)``.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

__all__ = [
    "MelConfig",
    "LogMelSpectrogram",
    "MelStats",
    "mel_filterbank",
    "logmelfilterbank",
    "align_audio",
    "num_frames",
    "compute_stats",
    "load_stats",
    "save_stats",
    "normalize",
    "denormalize",
    "write_wav",
]


@dataclass(frozen=True)
class MelConfig:
    """Feature parameters, named as in parallel_wavegan's YAML configs."""

    sampling_rate: int = 22050
    fft_size: int = 1024
    hop_size: int = 256
    win_length: int | None = None
    window: str = "hann"
    num_mels: int = 80
    fmin: float | None = 80
    fmax: float | None = 7600
    eps: float = 1e-10
    log_base: float | None = 10.0

    def __post_init__(self):
        win = self.fft_size if self.win_length is None else self.win_length
        problems = []
        if self.sampling_rate <= 0:
            problems.append(f"sampling_rate must be positive, got {self.sampling_rate}")
        if self.fft_size <= 0 or self.hop_size <= 0:
            problems.append(f"fft_size and hop_size must be positive, got {self.fft_size}, {self.hop_size}")
        if not 0 < win <= self.fft_size:
            problems.append(f"win_length must be in (0, fft_size={self.fft_size}], got {win}")
        if self.num_mels <= 0:
            problems.append(f"num_mels must be positive, got {self.num_mels}")
        if self.log_base not in (None, 2.0, 10.0):
            problems.append(f"log_base must be None (natural log), 2 or 10, got {self.log_base}")
        fmin = 0.0 if self.fmin is None else self.fmin
        fmax = self.sampling_rate / 2 if self.fmax is None else self.fmax
        if not 0 <= fmin < fmax <= self.sampling_rate / 2:
            problems.append(f"need 0 <= fmin < fmax <= sampling_rate/2, got fmin={fmin}, fmax={fmax}")
        if problems:
            raise ValueError("MelConfig: " + "; ".join(problems))

    @property
    def n_fft_bins(self) -> int:
        return self.fft_size // 2 + 1

    @property
    def window_length(self) -> int:
        return self.fft_size if self.win_length is None else self.win_length

    @classmethod
    def from_config(cls, config: Mapping) -> MelConfig:
        """Take the feature keys from a parallel_wavegan-style config dict; other keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: config[k] for k in names if k in config})

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def with_(self, **changes) -> MelConfig:
        return replace(self, **changes)


def _slaney_mel_filterbank(sr: float, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """librosa.filters.mel's default (Slaney scale, area norm), written out in float64."""

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        f_sp = 200.0 / 3
        min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
        min_log_mel = min_log_hz / f_sp
        return np.where(
            f >= min_log_hz, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep, f / f_sp
        )

    def mel_to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        f_sp = 200.0 / 3
        min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
        min_log_mel = min_log_hz / f_sp
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


@functools.lru_cache(maxsize=32)
def _filterbank_numpy(sr: float, n_fft: int, n_mels: int, fmin: float, fmax: float, source: str) -> np.ndarray:
    if source == "librosa":
        import librosa

        return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).astype(np.float32)
    return _slaney_mel_filterbank(sr, n_fft, n_mels, fmin, fmax)


def _filterbank_source() -> str:
    try:
        import librosa  # noqa: F401
    except ImportError:
        return "fastgan"
    return "librosa"


def mel_filterbank(config: MelConfig, source: str | None = None) -> np.ndarray:
    """The (num_mels, fft_size // 2 + 1) float32 filterbank: librosa's when installed, else fastgan's copy of it.

    ``source`` forces ``"librosa"`` or ``"fastgan"``. The result is cached; treat it as read-only.
    """
    source = source or _filterbank_source()
    if source not in ("librosa", "fastgan"):
        raise ValueError(f"mel_filterbank: source must be 'librosa' or 'fastgan', got {source!r}")
    fmin = 0.0 if config.fmin is None else float(config.fmin)
    fmax = config.sampling_rate / 2 if config.fmax is None else float(config.fmax)
    return _filterbank_numpy(float(config.sampling_rate), config.fft_size, config.num_mels, fmin, fmax, source)


_TORCH_WINDOWS = {
    "hann": torch.hann_window,
    "hanning": torch.hann_window,
    "hamming": torch.hamming_window,
    "blackman": torch.blackman_window,
    "bartlett": torch.bartlett_window,
}


def _window(name: str, length: int, device: torch.device) -> torch.Tensor:
    """A periodic ("fftbins") window, as librosa.filters.get_window / scipy.signal.get_window make it."""
    if name in _TORCH_WINDOWS:
        return _TORCH_WINDOWS[name](length, periodic=True, dtype=torch.float64, device=device).float()
    try:
        import scipy.signal
    except ImportError as error:  # pragma: no cover - scipy comes with librosa
        raise ValueError(f"window {name!r} needs scipy; built in: {sorted(_TORCH_WINDOWS)}") from error
    return torch.from_numpy(scipy.signal.get_window(name, length, fftbins=True)).float().to(device)


def num_frames(num_samples: int, hop_size: int) -> int:
    """Frames of a centred STFT (librosa / torch ``center=True``): ``1 + num_samples // hop_size``."""
    return 1 + num_samples // hop_size


class LogMelSpectrogram(torch.nn.Module):
    """Log-mel features of waveforms, on their device: ``(B, T)``, ``(B, 1, T)`` or ``(T,)`` -> ``(B, num_mels, frames)``.

    ``center=True`` (default) reflect-pads by ``fft_size // 2`` like librosa; ``center=False`` takes frames as they
    lie, for windows cut with their context (see :func:`fastgan.data.segment_with_context`). ``magnitude_eps``
    ``None`` uses ``|X|`` exactly as parallel_wavegan's preprocessing; a float uses ``sqrt(max(|X|^2, eps))``, as its
    mel loss does, whose gradient stays finite at silent bins. Computed in float32 whatever the input dtype.
    """

    def __init__(self, config: MelConfig | None = None, magnitude_eps: float | None = None, **overrides):
        super().__init__()
        config = config or MelConfig()
        if overrides:
            config = config.with_(**overrides)
        self.config = config
        self.magnitude_eps = magnitude_eps
        self.register_buffer("melmat", torch.from_numpy(mel_filterbank(config).copy()), persistent=False)
        self.register_buffer(
            "window", _window(config.window, config.window_length, torch.device("cpu")), persistent=False
        )

    def forward(self, audio: torch.Tensor, center: bool = True) -> torch.Tensor:
        cfg = self.config
        if not isinstance(audio, torch.Tensor):
            raise TypeError(f"LogMelSpectrogram: audio must be a tensor, got {type(audio).__name__}")
        if not audio.is_floating_point():
            raise TypeError(f"LogMelSpectrogram: audio must be floating point, got {audio.dtype}")
        if audio.dim() == 3:
            if audio.size(1) != 1:
                raise ValueError(f"LogMelSpectrogram: 3-D audio must be (B, 1, T), got {tuple(audio.shape)}")
            audio = audio[:, 0]
        elif audio.dim() == 1:
            audio = audio[None]
        elif audio.dim() != 2:
            raise ValueError(f"LogMelSpectrogram: audio must be (T,), (B, T) or (B, 1, T), got {tuple(audio.shape)}")
        length = audio.size(-1)
        if center and length <= cfg.fft_size // 2:
            raise ValueError(
                f"LogMelSpectrogram: {length} samples is too short for reflect padding of {cfg.fft_size // 2}"
            )
        if not center and length < cfg.fft_size:
            raise ValueError(f"LogMelSpectrogram: center=False needs at least fft_size={cfg.fft_size} samples")
        x = audio.float()
        window = self.window.to(x.device)
        spec = torch.stft(
            x,
            n_fft=cfg.fft_size,
            hop_length=cfg.hop_size,
            win_length=cfg.window_length,
            window=window,
            center=center,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )  # (B, bins, frames)
        if self.magnitude_eps is None:
            mag = spec.abs()
        else:
            mag = torch.sqrt(torch.clamp(spec.real.square() + spec.imag.square(), min=self.magnitude_eps))
        mel = torch.matmul(self.melmat.to(x.device), mag).clamp_min(cfg.eps)
        if cfg.log_base is None:
            return torch.log(mel)
        return torch.log10(mel) if cfg.log_base == 10.0 else torch.log2(mel)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config.to_dict().items())


@functools.lru_cache(maxsize=8)
def _cached_module(config: MelConfig) -> LogMelSpectrogram:
    return LogMelSpectrogram(config)


def logmelfilterbank(
    audio,
    sampling_rate: int,
    fft_size: int = 1024,
    hop_size: int = 256,
    win_length: int | None = None,
    window: str = "hann",
    num_mels: int = 80,
    fmin: float | None = None,
    fmax: float | None = None,
    eps: float = 1e-10,
    log_base: float | None = 10.0,
    device: torch.device | str | None = None,
) -> np.ndarray | torch.Tensor:
    """parallel_wavegan's ``logmelfilterbank`` with its arguments and defaults: (T,) audio -> (frames, num_mels).

    A numpy array in gives a float32 numpy array out (computed on ``device``, CPU by default); a tensor in gives a
    tensor on its own device.
    """
    config = MelConfig(sampling_rate, fft_size, hop_size, win_length, window, num_mels, fmin, fmax, eps, log_base)
    as_numpy = not isinstance(audio, torch.Tensor)
    x = torch.as_tensor(np.asarray(audio, dtype=np.float32)) if as_numpy else audio
    if device is not None:
        x = x.to(device)
    if x.dim() != 1:
        raise ValueError(f"logmelfilterbank: audio must be 1-D (T,), got shape {tuple(x.shape)}")
    with torch.no_grad():
        mel = _cached_module(config)(x)[0].transpose(0, 1)
    return mel.cpu().numpy() if as_numpy else mel


def hifigan_log_mel(audio: np.ndarray, config: MelConfig) -> np.ndarray:
    """The original HiFi-GAN repository's features (its ``mel_spectrogram``): (T,) audio -> (frames, num_mels).

    Not centred: reflect-padded by (fft_size - hop_size) // 2 on each side, so frame i covers samples
    around i * hop + hop / 2 and there are T // hop frames; magnitude sqrt(re^2 + im^2 + 1e-9), the Slaney
    mel filterbank, natural log of the mel clamped at ``config.eps`` (1e-5 in its configs).
    """
    x = torch.as_tensor(np.asarray(audio, dtype=np.float32))
    if x.dim() != 1:
        raise ValueError(f"hifigan_log_mel: audio must be 1-D (T,), got shape {tuple(x.shape)}")
    pad = (config.fft_size - config.hop_size) // 2
    if x.numel() <= pad:
        raise ValueError(f"hifigan_log_mel: {x.numel()} samples is too short for reflect padding of {pad}")
    x = torch.nn.functional.pad(x[None, None], (pad, pad), mode="reflect")[0, 0]
    if x.numel() < config.fft_size:
        raise ValueError(f"hifigan_log_mel: {x.numel() - 2 * pad} samples is too short for fft_size={config.fft_size}")
    window = torch.hann_window(config.window_length)
    with torch.no_grad():
        spec = torch.stft(x, config.fft_size, config.hop_size, config.window_length, window, center=False,
                          return_complex=True)  # fmt: skip
        magnitude = torch.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
        mel = torch.from_numpy(mel_filterbank(config)) @ magnitude
        return torch.log(torch.clamp(mel, min=config.eps)).transpose(0, 1).numpy()


def align_audio(audio: np.ndarray, frames: int, hop_size: int, fft_size: int) -> np.ndarray:
    """parallel_wavegan's alignment: edge-pad by fft_size, keep ``frames * hop_size`` samples."""
    padded = np.pad(audio, (0, fft_size), mode="edge") if len(audio) else np.zeros(fft_size, audio.dtype)
    return padded[: frames * hop_size]


# ---------------------------------------------------------------------------------------------------------------------
# Statistics and normalisation


@dataclass
class MelStats:
    """Per-mel mean and scale (standard deviation) as float32 arrays of shape (num_mels,)."""

    mean: np.ndarray
    scale: np.ndarray

    def __post_init__(self):
        self.mean = np.asarray(self.mean, dtype=np.float32).reshape(-1)
        self.scale = np.asarray(self.scale, dtype=np.float32).reshape(-1)
        if self.mean.shape != self.scale.shape:
            raise ValueError(f"MelStats: mean {self.mean.shape} and scale {self.scale.shape} differ in shape")
        if not (np.isfinite(self.mean).all() and np.isfinite(self.scale).all() and (self.scale > 0).all()):
            raise ValueError("MelStats: mean must be finite and scale finite and positive")

    @property
    def num_mels(self) -> int:
        return self.mean.shape[0]


class _RunningMoments:
    """Exact running mean / variance over rows (Chan et al.'s pairwise update, float64)."""

    def __init__(self):
        self.count = 0
        self.mean = None
        self.m2 = None

    def update(self, rows: np.ndarray):
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2:
            raise ValueError(f"compute_stats: each feature array must be 2-D (frames, num_mels), got {rows.shape}")
        n = rows.shape[0]
        if n == 0:
            return
        mean = rows.mean(axis=0)
        m2 = ((rows - mean) ** 2).sum(axis=0)
        if self.mean is None:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        if mean.shape != self.mean.shape:
            raise ValueError(f"compute_stats: num_mels changed from {self.mean.shape[0]} to {mean.shape[0]}")
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total


def compute_stats(features: Iterable[np.ndarray | torch.Tensor]) -> MelStats:
    """Mean and scale over every frame of ``(frames, num_mels)`` arrays, as sklearn's StandardScaler makes them.

    scale is the population standard deviation (ddof = 0); a (near) zero one becomes 1, as in sklearn.
    """
    moments = _RunningMoments()
    for feats in features:
        if isinstance(feats, torch.Tensor):
            feats = feats.detach().cpu().numpy()
        moments.update(feats)
    if moments.mean is None:
        raise ValueError("compute_stats: no frames given")
    var = moments.m2 / moments.count
    scale = np.sqrt(var)
    scale[scale < 10 * np.finfo(np.float64).eps] = 1.0
    return MelStats(moments.mean, scale)


def save_stats(path: str | os.PathLike, stats: MelStats) -> None:
    """Write ``stats.h5`` (datasets ``mean`` and ``scale``; needs h5py) or ``stats.npy`` (rows mean, scale)."""
    path = os.fspath(path)
    if path.endswith((".h5", ".hdf5")):
        import h5py

        with h5py.File(path, "w") as f:
            f.create_dataset("mean", data=stats.mean)
            f.create_dataset("scale", data=stats.scale)
    elif path.endswith(".npy"):
        np.save(path, np.stack([stats.mean, stats.scale]).astype(np.float32), allow_pickle=False)
    else:
        raise ValueError(f"save_stats: {path!r} must end in .h5, .hdf5 or .npy")


def load_stats(path: str | os.PathLike) -> MelStats:
    """Read parallel_wavegan's ``stats.h5`` / ``stats.npy`` (or one written by :func:`save_stats`)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_stats: no statistics file {path!r}")
    if path.endswith((".h5", ".hdf5")):
        import h5py

        with h5py.File(path, "r") as f:
            missing = [k for k in ("mean", "scale") if k not in f]
            if missing:
                raise ValueError(f"load_stats: {path!r} lacks dataset(s) {missing}")
            return MelStats(f["mean"][()], f["scale"][()])
    if path.endswith(".npy"):
        arr = np.load(path, allow_pickle=False)
        if arr.ndim != 2 or arr.shape[0] != 2:
            raise ValueError(f"load_stats: {path!r} must hold a (2, num_mels) array (mean, scale), got {arr.shape}")
        return MelStats(arr[0], arr[1])
    raise ValueError(f"load_stats: {path!r} must end in .h5, .hdf5 or .npy")


def _stats_like(values, mel, axis: int):
    shape = [1] * mel.dim()
    shape[axis] = -1
    return torch.as_tensor(values, dtype=mel.dtype, device=mel.device).reshape(shape)


def _check_axis(stats: MelStats, mel, mel_axis: int) -> int:
    axis = mel_axis % mel.dim() if isinstance(mel, torch.Tensor) else mel_axis % np.ndim(mel)
    size = mel.shape[axis]
    if size != stats.num_mels:
        raise ValueError(f"normalize: mel axis {mel_axis} has {size} bins, the statistics have {stats.num_mels}")
    return axis


def normalize(mel, stats: MelStats, mel_axis: int = -1):
    """``(mel - mean) / scale`` along ``mel_axis`` (-1 for parallel_wavegan's (frames, mels); use -2 for (B, mels, T))."""
    axis = _check_axis(stats, mel, mel_axis)
    if isinstance(mel, torch.Tensor):
        return (mel - _stats_like(stats.mean, mel, axis)) / _stats_like(stats.scale, mel, axis)
    shape = [1] * np.ndim(mel)
    shape[axis] = -1
    return ((mel - stats.mean.reshape(shape)) / stats.scale.reshape(shape)).astype(np.float32)


def denormalize(mel, stats: MelStats, mel_axis: int = -1):
    """The inverse of :func:`normalize`: ``mel * scale + mean``."""
    axis = _check_axis(stats, mel, mel_axis)
    if isinstance(mel, torch.Tensor):
        return mel * _stats_like(stats.scale, mel, axis) + _stats_like(stats.mean, mel, axis)
    shape = [1] * np.ndim(mel)
    shape[axis] = -1
    return (mel * stats.scale.reshape(shape) + stats.mean.reshape(shape)).astype(np.float32)


def write_wav(path: str | os.PathLike, wave: torch.Tensor, sr: int) -> None:
    """16-bit PCM mono wav with Python's ``wave`` module (no soundfile needed)."""
    import wave as wave_module

    pcm = (wave.detach().float().clamp(-1, 1).cpu() * 32767).round().short().numpy()
    with wave_module.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sr)
        f.writeframes(pcm.tobytes())
