"""Reference STFT loss sums: plain torch.stft, the CPU fallback and the oracle of the kernels.

One resolution reduces a prediction ``x`` and a target ``y`` (both (R, T)) to four fp32 sums
over every (row, frame, bin) of their magnitude spectrograms ``mx``, ``my``::

    sums[0] = sum (my - mx) ** 2          # spectral convergence numerator (squared)
    sums[1] = sum my ** 2                 # spectral convergence denominator (squared)
    sums[2] = sum |log my - log mx|       # log-magnitude L1
    sums[3] = sum |my - mx|               # linear-magnitude L1 (auraloss' w_lin_mag term)

with ``m = sqrt(max(|STFT|^2, eps))`` (torch.stft, center=True, reflect padding of ``n_fft // 2``
each side, the window zero-padded to ``n_fft``; ``n_fft // 2 + 1`` bins for an even or odd ``n_fft``),
or, given a ``mel_basis`` (n_mels, n_fft // 2 + 1), ``m = mel_basis @ sqrt(max(|STFT|^2, eps))`` as
auraloss does. The loss terms are these sums divided or rooted
(:func:`fastgan.functional.stft_loss`).
"""

from __future__ import annotations

import torch

NUM_SUMS = 4


def num_frames(length: int, n_fft: int, hop: int) -> int:
    """Frames torch.stft(center=True) makes of a ``length``-sample signal."""
    return 1 + (length + 2 * (n_fft // 2) - n_fft) // hop


def padded_window(window: torch.Tensor, n_fft: int) -> torch.Tensor:
    """The window centred in ``n_fft`` samples, as torch.stft pads a shorter one."""
    left = (n_fft - window.shape[0]) // 2
    return torch.nn.functional.pad(window, (left, n_fft - window.shape[0] - left))


def spectra(signals: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    """(R, frames, bins) complex spectra of every row in one torch.stft call (complex64; complex128 for fp64).

    torch.stft returns (R, bins, frames) as a transposed view of (R, frames, bins) memory: this is
    that memory, contiguous, so the element-wise passes and sums below run on contiguous data.
    """
    dtype = torch.float64 if signals.dtype == torch.float64 else torch.float32
    spectrum = torch.stft(
        signals.to(dtype), n_fft, hop, n_fft, padded_window(window.to(dtype), n_fft),
        center=True, pad_mode="reflect", return_complex=True,
    )  # fmt: skip
    return spectrum.transpose(1, 2)


def magnitudes(
    signals: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, eps: float, mel_basis: torch.Tensor | None
) -> torch.Tensor:
    """(R, frames, bins or n_mels) magnitudes of every row of ``signals`` (fp32; fp64 for fp64 input)."""
    spectrum = spectra(signals, n_fft, hop, window)
    power = spectrum.real.square() + spectrum.imag.square()  # two passes: cheaper than a size-2 reduction
    mag = power.clamp_min(eps).sqrt()
    if mel_basis is not None:
        mag = torch.matmul(mag, mel_basis.to(mag.dtype).transpose(0, 1))
    return mag


def stft_loss_sums_reference(
    x: torch.Tensor,
    y: torch.Tensor,
    n_fft: int,
    hop: int,
    window: torch.Tensor,
    eps: float,
    mel_basis: torch.Tensor | None = None,
) -> torch.Tensor:
    """The four loss sums (see the module docstring) as a (4,) fp32 (fp64 for fp64 x) tensor; differentiable."""
    rows = x.shape[0]
    # Both signals through one stft call: one set of launches, one window, one padding pass.
    mag = magnitudes(torch.cat([x, y]), n_fft, hop, window, eps, mel_basis)
    mx, my = mag[:rows], mag[rows:]
    diff = my - mx
    return torch.stack(
        [
            diff.square().sum(),
            my.square().sum(),
            (my.log() - mx.log()).abs().sum(),
            diff.abs().sum(),
        ]
    )


def _spectra(x: torch.Tensor, y: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, eps: float):
    """Both signals' spectra, powers and clamped magnitudes, (2R, frames, bins) each, and the padded window."""
    spectrum = spectra(torch.cat([x, y]), n_fft, hop, window)
    power = spectrum.real.square() + spectrum.imag.square()
    return spectrum, power, power.clamp_min(eps).sqrt(), padded_window(window.to(power.dtype), n_fft)


def _stft_adjoint(grad_mag, spectrum, power, mag, eps, win, n_fft, hop, length, rows, out_dtype):
    """Signal gradients from d(loss)/d(magnitude) (count, frames, bins), count = R or 2R: (count // R, R, T)."""
    count, n_frames, _ = grad_mag.shape
    # m = sqrt(clamp(p, eps)), p = re^2 + im^2: d/d(re, im) = (re, im) · d/dm / m where p >= eps.
    coef = grad_mag / mag[:count] * (power[:count] >= eps)
    grad_spectrum = coef * spectrum[:count]  # d/dre + i d/dim
    # grad frame[n] = Re(sum_k G_k e^{2 pi i k n / N}) = N · irfft(Z), Z_k = G_k / 2 except DC and (even N) Nyquist:
    # bins 1 .. ceil(N / 2) - 1 are halved, i.e. every bin past DC for an odd N (it has no Nyquist bin).
    grad_spectrum[:, :, 1 : (n_fft + 1) // 2] *= 0.5
    frames = torch.fft.irfft(grad_spectrum, n=n_fft, dim=2) * (n_fft * win)  # (count, frames, n_fft), windowed
    # Overlap-add by hop-sized chunks: frame f's chunk j lands on chunk f + j of the padded signal
    # (ceil(n_fft / hop) slice-adds, no scatter), then the reflect padding's adjoint: the padded
    # edges fold back, mirrored, onto the samples they copied.
    chunks = -(-n_fft // hop)
    frames = torch.nn.functional.pad(frames, (0, chunks * hop - n_fft)).reshape(count, n_frames, chunks, hop)
    half = n_fft // 2
    padded_chunks = max(n_frames + chunks - 1, -(-(length + n_fft) // hop))
    padded = torch.zeros((count, padded_chunks, hop), dtype=frames.dtype, device=frames.device)
    for j in range(chunks):
        padded[:, j : j + n_frames] += frames[:, :, j]
    padded = padded.reshape(count, -1)
    grad = padded[:, half : half + length].clone()
    grad[:, 1 : half + 1] += padded[:, :half].flip(1)
    grad[:, length - 1 - half : length - 1] += padded[:, half + length : 2 * half + length].flip(1)
    return grad.reshape(count // rows, rows, length).to(out_dtype)


def stft_loss_backward_reference(
    grad_sums: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    n_fft: int,
    hop: int,
    window: torch.Tensor,
    eps: float,
    mel_basis: torch.Tensor | None,
    grad_target: bool,
) -> torch.Tensor:
    """Gradients of ``grad_sums . sums`` with respect to x (and y when ``grad_target``), stacked: (1 or 2, R, T).

    Recomputes the spectra (one torch.stft call) instead of keeping them from the forward pass, then
    applies the STFT's adjoint: an inverse real FFT per frame, the window, overlap-add, and the
    reflect padding's adjoint (padded samples fold back onto the signal samples they copied).
    """
    rows, length = x.shape
    spectrum, power, mag, win = _spectra(x, y, n_fft, hop, window, eps)
    g0, g1, g2, g3 = grad_sums.to(mag.dtype).unbind()
    m = mag if mel_basis is None else torch.matmul(mag, mel_basis.to(mag.dtype).transpose(0, 1))
    mx, my = m[:rows], m[rows:]
    diff = my - mx
    # sign(log my - log mx) is sign(my - mx): log is increasing (no logs to recompute here; where
    # fp32 logs of two distinct values round equal, this is the float64 answer).
    sign = torch.sign(diff)
    grad_m = [-2 * g0 * diff - (g2 / mx + g3) * sign]
    if grad_target:
        grad_m.append(2 * g0 * diff + 2 * g1 * my + (g2 / my + g3) * sign)
    grad_m = torch.cat(grad_m)
    if mel_basis is not None:
        grad_m = torch.matmul(grad_m, mel_basis.to(mag.dtype))
    return _stft_adjoint(grad_m, spectrum, power, mag, eps, win, n_fft, hop, length, rows, x.dtype)


def stft_mel_reference(
    x: torch.Tensor, y: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, eps: float, mel_basis: torch.Tensor
) -> torch.Tensor:
    """(2, R, frames, n_mels) mel magnitudes ``mel_basis @ sqrt(max(|STFT|^2, eps))`` of x and y (fp32; fp64 for fp64)."""
    rows = x.shape[0]
    mag = magnitudes(torch.cat([x, y]), n_fft, hop, window, eps, mel_basis)  # (2R, frames, n_mels)
    return mag.reshape(2, rows, mag.shape[1], mag.shape[2])


def stft_mel_backward_reference(
    grad_mel: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    n_fft: int,
    hop: int,
    window: torch.Tensor,
    eps: float,
    mel_basis: torch.Tensor,
    grad_target: bool,
) -> torch.Tensor:
    """Gradients of ``sum(grad_mel * mel)`` for x (and y when ``grad_target``): (1 or 2, R, T)."""
    rows, length = x.shape
    spectrum, power, mag, win = _spectra(x, y, n_fft, hop, window, eps)
    signals = 2 if grad_target else 1
    grad = grad_mel[:signals].to(mag.dtype).reshape(signals * rows, grad_mel.shape[2], grad_mel.shape[3])
    grad_mag = torch.matmul(grad, mel_basis.to(mag.dtype))  # (count, frames, bins)
    return _stft_adjoint(grad_mag, spectrum, power, mag, eps, win, n_fft, hop, length, rows, x.dtype)
