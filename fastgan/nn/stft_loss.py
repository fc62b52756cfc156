"""STFT losses: drop-ins for parallel_wavegan's (and, with ``mode="auraloss"``, auraloss') modules."""

from __future__ import annotations

import math

import torch
from torch import nn

from fastgan import functional

MODES = ("parallel_wavegan", "auraloss")
DEFAULT_EPS = {"parallel_wavegan": 1e-7, "auraloss": 1e-8}


def mel_basis(sample_rate: float, fft_size: int, n_mels: int) -> torch.Tensor:
    """(n_mels, fft_size // 2 + 1) Slaney mel filterbank: librosa.filters.mel's defaults, as auraloss uses
    (librosa's own when it imports, else fastgan's copy of it: :func:`fastgan.audio.mel_filterbank`)."""
    from fastgan.audio import MelConfig, mel_filterbank

    config = MelConfig(sampling_rate=sample_rate, fft_size=fft_size, num_mels=n_mels, fmin=None, fmax=None)
    return torch.from_numpy(mel_filterbank(config).copy())  # a copy: the filterbank is cached


def _window_function(window, owner: str):
    """``torch.<window>``, a torch window function (``hann_window``, ``hamming_window``, ...), or a clear error."""
    function = getattr(torch, window, None) if isinstance(window, str) and window.endswith("_window") else None
    if not callable(function):
        raise ValueError(
            f"{owner}: unknown window {window!r}; expected the name of a torch window function, e.g. 'hann_window'"
        )
    return function


def _check_pair(x: torch.Tensor, y: torch.Tensor, owner: str) -> None:
    """Prediction and target hold the same signals: equal shapes, or (B, 1, T) against (B, T) (parallel_wavegan
    flattens both), checked before (B, C, T) is flattened so that (2, 2, T) never pairs with (4, T)."""
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)) or x.shape == y.shape:
        return  # the op names anything else
    if x.dim() + y.dim() == 5:
        three, two = (x, y) if x.dim() == 3 else (y, x)
        if three.shape[1] == 1 and (three.shape[0], three.shape[2]) == tuple(two.shape):
            return
    raise ValueError(
        f"{owner}: x and y must have the same shape (or be (batch, 1, time) and (batch, time)), "
        f"got x {tuple(x.shape)} and y {tuple(y.shape)}"
    )


class STFTLoss(nn.Module):
    """One resolution of the STFT loss; ``forward(x, y)`` returns ``(sc_loss, mag_loss)`` as parallel_wavegan's.

    ``x`` (prediction) and ``y`` (target) are (B, T) or (B, C, T). Keyword options: ``eps`` (the
    power clamp, 1e-7 as parallel_wavegan's), ``scale="mel"`` with ``sample_rate`` and ``n_bins``
    for mel-scaled magnitudes, ``grad_target=True`` to also differentiate the target (detached by
    default). The state_dict holds ``window`` as parallel_wavegan's does.
    """

    def __init__(
        self,
        fft_size: int = 1024,
        shift_size: int = 120,
        win_length: int = 600,
        window: str = "hann_window",
        *,
        eps: float = 1e-7,
        scale: str | None = None,
        sample_rate: float | None = None,
        n_bins: int | None = None,
        grad_target: bool = False,
    ):
        super().__init__()
        if fft_size < 2:  # even or odd (parallel_wavegan's MB-MelGAN sub-band sizes 683 and 171 are odd)
            raise ValueError(f"STFTLoss: fft_size must be >= 2, got {fft_size}")
        if not 1 <= win_length <= fft_size:
            raise ValueError(f"STFTLoss: win_length must be in [1, fft_size={fft_size}], got {win_length}")
        if shift_size < 1:
            raise ValueError(f"STFTLoss: shift_size must be >= 1, got {shift_size}")
        self.fft_size = fft_size
        self.shift_size = shift_size
        self.win_length = win_length
        self.eps = eps
        self.grad_target = grad_target
        self.scale = scale
        self.register_buffer("window", _window_function(window, "STFTLoss")(win_length))
        if scale is None:
            self.mel_basis = None
        elif scale == "mel":
            if sample_rate is None or n_bins is None:
                raise ValueError("STFTLoss: scale='mel' needs sample_rate and n_bins")
            if n_bins < 1:  # an empty filterbank makes every mel term a mean over nothing: NaN
                raise ValueError(f"STFTLoss: n_bins must be >= 1, got {n_bins}")
            if not (sample_rate > 0 and math.isfinite(sample_rate)):  # NaN fails the comparison too
                raise ValueError(f"STFTLoss: sample_rate must be positive and finite, got {sample_rate}")
            if n_bins > fft_size:
                raise ValueError(f"STFTLoss: n_bins={n_bins} must be <= fft_size={fft_size}")
            # Not persistent: the state_dict stays parallel_wavegan's.
            self.register_buffer("mel_basis", mel_basis(sample_rate, fft_size, n_bins), persistent=False)
        else:
            raise ValueError(f"STFTLoss: scale must be None or 'mel', got {scale!r}")

    def extra_repr(self) -> str:
        return f"fft_size={self.fft_size}, shift_size={self.shift_size}, win_length={self.win_length}"

    def terms(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(spectral convergence, log-magnitude L1, linear-magnitude L1)``."""
        _check_pair(x, y, type(self).__name__)
        return functional.stft_loss_terms(
            x, y, self.fft_size, self.shift_size, self.win_length, self.window,
            eps=self.eps, mel_basis=self.mel_basis, grad_target=self.grad_target,
        )  # fmt: skip

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sc, log_mag, _ = self.terms(x, y)
        return sc, log_mag


class MultiResolutionSTFTLoss(nn.Module):
    """The multi-resolution STFT loss, averaged over resolutions.

    ``mode="parallel_wavegan"`` (default): ``forward(x, y)`` returns ``(sc_loss, mag_loss)``, the
    same as parallel_wavegan.losses.MultiResolutionSTFTLoss (same constructor and state_dict).
    ``mode="auraloss"``: returns one scalar, the mean over resolutions of ``w_sc · sc + w_log_mag ·
    log_mag + w_lin_mag · lin_mag`` with auraloss' power clamp ``eps=1e-8`` -- auraloss.freq.
    MultiResolutionSTFTLoss' definition (its phase term, perceptual weighting and scale
    invariance are not offered). ``scale="mel"`` (with ``sample_rate``, ``n_bins``) uses
    mel-scaled magnitudes in either mode. ``grad_target=True`` also differentiates ``y``.
    """

    def __init__(
        self,
        fft_sizes: list[int] = [1024, 2048, 512],  # noqa: B006 (parallel_wavegan's signature)
        hop_sizes: list[int] = [120, 240, 50],  # noqa: B006
        win_lengths: list[int] = [600, 1200, 240],  # noqa: B006
        window: str = "hann_window",
        *,
        mode: str = "parallel_wavegan",
        w_sc: float = 1.0,
        w_log_mag: float = 1.0,
        w_lin_mag: float = 0.0,
        eps: float | None = None,
        scale: str | None = None,
        sample_rate: float | None = None,
        n_bins: int | None = None,
        grad_target: bool = False,
    ):
        super().__init__()
        if not len(fft_sizes) == len(hop_sizes) == len(win_lengths):
            raise ValueError(
                f"MultiResolutionSTFTLoss: fft_sizes, hop_sizes and win_lengths must have one length, got "
                f"{len(fft_sizes)}, {len(hop_sizes)}, {len(win_lengths)}"
            )
        if not fft_sizes:
            raise ValueError("MultiResolutionSTFTLoss: at least one resolution is needed")
        if mode not in MODES:
            raise ValueError(f"MultiResolutionSTFTLoss: mode must be one of {MODES}, got {mode!r}")
        _window_function(window, "MultiResolutionSTFTLoss")
        self.mode = mode
        self.w_sc, self.w_log_mag, self.w_lin_mag = w_sc, w_log_mag, w_lin_mag
        eps = DEFAULT_EPS[mode] if eps is None else eps
        self.stft_losses = nn.ModuleList(
            STFTLoss(fs, ss, wl, window, eps=eps, scale=scale, sample_rate=sample_rate, n_bins=n_bins,
                     grad_target=grad_target)
            for fs, ss, wl in zip(fft_sizes, hop_sizes, win_lengths, strict=True)
        )  # fmt: skip

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        _check_pair(x, y, "MultiResolutionSTFTLoss")
        count = len(self.stft_losses)
        if self.mode == "auraloss":
            total = 0.0
            for loss in self.stft_losses:
                sc, log_mag, lin_mag = loss.terms(x, y)
                total = total + self.w_sc * sc + self.w_log_mag * log_mag + self.w_lin_mag * lin_mag
            return total / count
        sc_loss, mag_loss = 0.0, 0.0
        for loss in self.stft_losses:
            sc, log_mag, _ = loss.terms(x, y)
            sc_loss, mag_loss = sc_loss + sc, mag_loss + log_mag
        return sc_loss / count, mag_loss / count
