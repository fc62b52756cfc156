"""``fastgan::stft_loss`` and its backward: the four STFT loss sums of one resolution.

The op returns ``sums`` (4,) fp32 (fp64 for fp64 signals) (see :mod:`fastgan.references.stft_loss`); the loss terms are
formed from them in :func:`fastgan.functional.stft_loss`. The Triton path is a DFT GEMM with nothing
of size frames × bins written in the forward pass; ``FASTGAN_STFT_LOSS_PATH=fft`` takes the other
kernel route (Triton pre/post kernels around torch.fft / cuFFT) so the two can be compared by
measurement. Mel-scaled bins go through ``fastgan::stft_mel`` (below); ``stft_loss`` itself takes
a mel basis only on its reference path.
"""

from __future__ import annotations

import os

import torch

from fastgan import _backend
from fastgan._checks import FLOAT_DTYPES, check_same_device, check_tensor
from fastgan.references.stft_loss import (
    NUM_SUMS,
    num_frames,
    stft_loss_backward_reference,
    stft_loss_sums_reference,
    stft_mel_backward_reference,
    stft_mel_reference,
)

OP = "stft_loss"
SIGNAL_DTYPES = FLOAT_DTYPES + (torch.float64,)  # float64 always takes the reference (a float64 oracle)


def _kernels():
    from fastgan.kernels import stft_loss  # triton is imported only when a kernel runs

    return stft_loss


def check_inputs(
    x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, n_fft: int, hop: int, mel_basis: torch.Tensor | None
) -> None:
    """Shape, dtype, device and size checks; cheap, so they run at trace time too."""
    check_tensor(OP, "x", x, ndim=2, dtypes=SIGNAL_DTYPES)
    check_tensor(OP, "y", y, ndim=2, dtypes=SIGNAL_DTYPES)
    check_tensor(OP, "window", window, ndim=1, dtypes=FLOAT_DTYPES + (torch.float64,))
    check_same_device(OP, x=x, y=y, window=window)
    if x.shape != y.shape:
        raise ValueError(f"fastgan::{OP}: x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if n_fft < 2:  # even or odd: n_fft // 2 + 1 bins, as torch.stft makes them
        raise ValueError(f"fastgan::{OP}: fft_size must be >= 2, got {n_fft}")
    if hop < 1:
        raise ValueError(f"fastgan::{OP}: hop_size must be >= 1, got {hop}")
    if not 1 <= window.shape[0] <= n_fft:
        raise ValueError(f"fastgan::{OP}: win_length must be in [1, fft_size={n_fft}], got {window.shape[0]}")
    if x.shape[0] == 0:
        raise ValueError(f"fastgan::{OP}: x and y must hold at least one signal, got shape {tuple(x.shape)}")
    length = x.shape[1]
    if length < n_fft:
        # torch.stft would take down to fft_size // 2 + 1 samples, but every frame of such a signal is
        # mostly reflect padding: issue 5 asks for one full frame of signal per resolution.
        raise ValueError(
            f"fastgan::{OP}: the signals ({length} samples) are too short for fft_size={n_fft}: "
            f"each resolution needs at least fft_size = {n_fft} samples"
        )
    if mel_basis is not None:
        check_tensor(OP, "mel_basis", mel_basis, ndim=2, dtypes=FLOAT_DTYPES + (torch.float64,))
        check_same_device(OP, x=x, mel_basis=mel_basis)
        if mel_basis.shape[1] != n_fft // 2 + 1:
            raise ValueError(
                f"fastgan::{OP}: mel_basis must be (n_mels, fft_size // 2 + 1 = {n_fft // 2 + 1}), "
                f"got {tuple(mel_basis.shape)}"
            )


PATHS = ("gemm", "fft")


def kernel_route() -> str:
    """``$FASTGAN_STFT_LOSS_PATH``: ``gemm`` (default: the DFT GEMM, nothing of size frames × bins in
    the forward) or ``fft`` (Triton pre/post kernels around torch.fft, i.e. cuFFT on CUDA)."""
    route = os.environ.get("FASTGAN_STFT_LOSS_PATH", "gemm").strip().lower()
    if route not in PATHS:
        raise ValueError(f"fastgan::{OP}: FASTGAN_STFT_LOSS_PATH must be one of {PATHS}, got {route!r}")
    return route


def _kernel_path(x: torch.Tensor, mel_basis: torch.Tensor | None) -> bool:
    return mel_basis is None and x.dtype != torch.float64 and _backend.use_triton(x, OP)


@torch.library.custom_op("fastgan::stft_loss", mutates_args=())
def stft_loss_op(
    x: torch.Tensor,
    y: torch.Tensor,
    window: torch.Tensor,
    n_fft: int,
    hop: int,
    eps: float,
    mel_basis: torch.Tensor | None,
    grad_target: bool,
) -> torch.Tensor:
    check_inputs(x, y, window, n_fft, hop, mel_basis)
    if _kernel_path(x, mel_basis):
        kernels = _kernels()
        forward = kernels.stft_loss_forward_fft if kernel_route() == "fft" else kernels.stft_loss_forward
        return forward(x, y, n_fft, hop, window, eps)
    with torch.no_grad():
        sums = stft_loss_sums_reference(x, y, n_fft, hop, window, eps, mel_basis)
    return sums if x.dtype == torch.float64 else sums.float()


@stft_loss_op.register_fake
def _(x, y, window, n_fft, hop, eps, mel_basis, grad_target):
    check_inputs(x, y, window, n_fft, hop, mel_basis)
    return x.new_empty((NUM_SUMS,), dtype=torch.float64 if x.dtype == torch.float64 else torch.float32)


@torch.library.custom_op("fastgan::stft_loss_backward", mutates_args=())
def stft_loss_backward_op(
    grad_sums: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    window: torch.Tensor,
    n_fft: int,
    hop: int,
    eps: float,
    mel_basis: torch.Tensor | None,
    grad_target: bool,
) -> torch.Tensor:
    """(1, R, T) gradient of x, or (2, R, T) of x and y when ``grad_target``; x's dtype."""
    if _kernel_path(x, mel_basis):
        kernels = _kernels()
        backward = kernels.stft_loss_backward_fft if kernel_route() == "fft" else kernels.stft_loss_backward
        return backward(grad_sums, x, y, n_fft, hop, window, eps, grad_target)
    return stft_loss_backward_reference(grad_sums, x, y, n_fft, hop, window, eps, mel_basis, grad_target)


@stft_loss_backward_op.register_fake
def _(grad_sums, x, y, window, n_fft, hop, eps, mel_basis, grad_target):
    return x.new_empty((2 if grad_target else 1, *x.shape))


def _setup_context(ctx, inputs, output):
    x, y, window, n_fft, hop, eps, mel_basis, grad_target = inputs
    ctx.args = (n_fft, hop, eps, grad_target)
    # The spectra are recomputed in the backward pass: only the signals are kept.
    ctx.save_for_backward(x, y, window, mel_basis)


def _backward(ctx, grad_sums):
    x, y, window, mel_basis = ctx.saved_tensors
    n_fft, hop, eps, grad_target = ctx.args
    grads = stft_loss_backward_op(grad_sums, x, y, window, n_fft, hop, eps, mel_basis, grad_target)
    grad_y = grads[1] if grad_target else None
    return grads[0], grad_y, None, None, None, None, None, None


stft_loss_op.register_autograd(_backward, setup_context=_setup_context)


# Mel-scaled bins: the op returns the (2, R, frames, n_mels) mel magnitudes of x and y -- the
# kernel keeps the bins in registers and writes only frames × n_mels -- and the loss terms are
# formed from them in :func:`fastgan.functional.stft_loss_terms` (autograd brings d(loss)/d(mel)).
MEL_OP = "stft_mel"


def _mel_kernel_path(x: torch.Tensor, mel_basis: torch.Tensor) -> bool:
    if x.dtype != torch.float32 or not _backend.use_triton(x, MEL_OP):
        return False
    return _kernels().mel_block(mel_basis.shape[0]) is not None


def check_mel_inputs(x, y, window, n_fft, hop, mel_basis) -> None:
    if mel_basis is None:
        raise ValueError(f"fastgan::{MEL_OP}: mel_basis is required")
    check_inputs(x, y, window, n_fft, hop, mel_basis)
    if x.dtype != y.dtype:
        raise TypeError(f"fastgan::{MEL_OP}: x and y must have one dtype, got {x.dtype} and {y.dtype}")


@torch.library.custom_op("fastgan::stft_mel", mutates_args=())
def stft_mel_op(
    x: torch.Tensor,
    y: torch.Tensor,
    window: torch.Tensor,
    n_fft: int,
    hop: int,
    eps: float,
    mel_basis: torch.Tensor,
    grad_target: bool,
) -> torch.Tensor:
    check_mel_inputs(x, y, window, n_fft, hop, mel_basis)
    if _mel_kernel_path(x, mel_basis):
        return _kernels().stft_mel_forward(x, y, n_fft, hop, window, eps, mel_basis)
    with torch.no_grad():
        return stft_mel_reference(x, y, n_fft, hop, window, eps, mel_basis).contiguous()


@stft_mel_op.register_fake
def _(x, y, window, n_fft, hop, eps, mel_basis, grad_target):
    check_mel_inputs(x, y, window, n_fft, hop, mel_basis)
    frames = num_frames(x.shape[1], n_fft, hop)
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    return x.new_empty((2, x.shape[0], frames, mel_basis.shape[0]), dtype=dtype)


@torch.library.custom_op("fastgan::stft_mel_backward", mutates_args=())
def stft_mel_backward_op(
    grad_mel: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    window: torch.Tensor,
    n_fft: int,
    hop: int,
    eps: float,
    mel_basis: torch.Tensor,
    grad_target: bool,
) -> torch.Tensor:
    """(1, R, T) gradient of x, or (2, R, T) of x and y when ``grad_target``; x's dtype."""
    if _mel_kernel_path(x, mel_basis):
        return _kernels().stft_mel_backward(grad_mel, x, y, n_fft, hop, window, eps, mel_basis, grad_target)
    return stft_mel_backward_reference(grad_mel, x, y, n_fft, hop, window, eps, mel_basis, grad_target)


@stft_mel_backward_op.register_fake
def _(grad_mel, x, y, window, n_fft, hop, eps, mel_basis, grad_target):
    return x.new_empty((2 if grad_target else 1, *x.shape))


def _mel_backward(ctx, grad_mel):
    x, y, window, mel_basis = ctx.saved_tensors
    n_fft, hop, eps, grad_target = ctx.args
    grads = stft_mel_backward_op(grad_mel, x, y, window, n_fft, hop, eps, mel_basis, grad_target)
    return grads[0], grads[1] if grad_target else None, None, None, None, None, None, None


stft_mel_op.register_autograd(_mel_backward, setup_context=_setup_context)


# The functional form's entry (fastgan.functional.stft_loss_terms): shapes, dtypes and the window, then the op.
def _stft_rows(name: str, signal: torch.Tensor) -> torch.Tensor:
    if not isinstance(signal, torch.Tensor) or signal.dim() not in (2, 3):
        shape = tuple(signal.shape) if isinstance(signal, torch.Tensor) else type(signal).__name__
        raise ValueError(f"fastgan::stft_loss: {name} must be (batch, time) or (batch, channels, time), got {shape}")
    return signal.reshape(-1, signal.shape[-1])


_STFT_WINDOWS: dict[tuple, torch.Tensor] = {}


def _stft_window(window: str | torch.Tensor, win_length: int, device: torch.device) -> torch.Tensor:
    """The window tensor; a named one is made once per (name, length, device), so the kernels'
    window-derived DFT basis (cached per window tensor) is built once too."""
    if isinstance(window, torch.Tensor):
        # torch.stft raises on a mismatch; the op would silently use the tensor's own length instead.
        if window.dim() == 1 and window.shape[0] != win_length:
            raise ValueError(
                f"fastgan::stft_loss: the window tensor has {window.shape[0]} samples, but win_length={win_length}"
            )
        return window
    key = (window, win_length, device)
    cached = None if torch.compiler.is_compiling() else _STFT_WINDOWS.get(key)
    if cached is not None:
        return cached
    try:
        with torch.inference_mode(False):  # made in an inference_mode call, it still serves training calls
            tensor = getattr(torch, window)(win_length, device=device)
    except (AttributeError, TypeError) as error:
        raise ValueError(f"fastgan::stft_loss: unknown window {window!r} (a torch window function name)") from error
    if not torch.compiler.is_compiling():
        _STFT_WINDOWS[key] = tensor
    return tensor


def _safe_sqrt(value: torch.Tensor) -> torch.Tensor:
    """sqrt with a zero (not NaN) gradient at 0, as torch.norm's backward gives for a zero norm.

    Only an exact zero is special-cased: a NaN (a non-finite input) must stay NaN, not read as a
    perfect match (``value > 0`` is false for NaN)."""
    zero = value == 0
    return torch.where(zero, 0.0, torch.where(zero, 1.0, value).sqrt())


def stft_loss_terms(
    x: torch.Tensor,
    y: torch.Tensor,
    fft_size: int,
    hop_size: int,
    win_length: int,
    window: str | torch.Tensor,
    eps: float,
    mel_basis: torch.Tensor | None,
    grad_target: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One resolution's (spectral convergence, log-magnitude L1, linear-magnitude L1); see fastgan.functional."""
    x, y = _stft_rows("x", x), _stft_rows("y", y)
    if x.dtype != y.dtype:  # e.g. an fp16 prediction under autocast against an fp32 target
        common = torch.promote_types(x.dtype, y.dtype)
        x, y = x.to(common), y.to(common)
    if not grad_target:
        y = y.detach()
    window = _stft_window(window, int(win_length), x.device)
    fft_size, hop_size = int(fft_size), int(hop_size)
    if mel_basis is not None:
        # The op returns both mel spectrograms (frames × n_mels each); the terms follow in fp32 (fp64 for fp64).
        if x.dtype not in (torch.float32, torch.float64):
            x, y = x.float(), y.float()
        mel = torch.ops.fastgan.stft_mel(x, y, window, fft_size, hop_size, float(eps), mel_basis, bool(grad_target))
        mx, my = mel[0], mel[1]
        diff = my - mx
        sc = _safe_sqrt(diff.square().sum()) / my.square().sum().sqrt()
        return sc, (my.log() - mx.log()).abs().mean(), diff.abs().mean()
    sums = torch.ops.fastgan.stft_loss(x, y, window, fft_size, hop_size, float(eps), None, bool(grad_target))
    count = x.shape[0] * (fft_size // 2 + 1) * num_frames(x.shape[1], fft_size, hop_size)
    sc = _safe_sqrt(sums[0]) / sums[1].sqrt()
    return sc, sums[2] / count, sums[3] / count
