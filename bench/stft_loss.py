"""Multi-resolution STFT loss (Parallel WaveGAN's defaults), forward + backward.

References: parallel_wavegan's and auraloss' MultiResolutionSTFTLoss (optional bench
dependencies, left out where not installed), fastgan's torch.stft reference in eager mode, and
torch.compile of that reference (full sizes only). On CUDA also fastgan's other kernel route
(FASTGAN_STFT_LOSS_PATH=fft: Triton pre/post kernels around cuFFT) against the default DFT GEMM.

TFLOP/s and %peak count each row's own arithmetic: the DFT GEMM's FLOPs (``_gemm_flops``) where fastgan's kernels
run their default route, an FFT's (``_fft_flops``) for every FFT path (fastgan's PyTorch fallback, the fft route,
the references).
"""

from __future__ import annotations

import math

import torch

import fastgan
from bench.harness import Case, kernels_run, with_environ
from fastgan.references.stft_loss import num_frames, stft_loss_sums_reference

RESOLUTIONS = list(zip([1024, 2048, 512], [120, 240, 50], [600, 1200, 240], strict=True))


def _parallel_wavegan_loss():
    try:
        import scipy.signal
        import scipy.signal.windows

        if not hasattr(scipy.signal, "kaiser"):  # parallel_wavegan 0.6.1 imports it from the old place
            scipy.signal.kaiser = scipy.signal.windows.kaiser
        from parallel_wavegan.losses import MultiResolutionSTFTLoss
    except ImportError:
        return None
    return MultiResolutionSTFTLoss()


def _auraloss_loss():
    try:
        import auraloss
    except ImportError:
        return None
    return auraloss.freq.MultiResolutionSTFTLoss()


def reference_loss(x: torch.Tensor, y: torch.Tensor, windows: list[torch.Tensor]):
    """parallel_wavegan's (sc_loss, mag_loss) from fastgan's plain torch.stft reference (autograd backward)."""
    sc_total, mag_total = 0.0, 0.0
    for (n_fft, hop, _), window in zip(RESOLUTIONS, windows, strict=True):
        sums = stft_loss_sums_reference(x, y, n_fft, hop, window, 1e-7)
        count = x.shape[0] * (n_fft // 2 + 1) * num_frames(x.shape[1], n_fft, hop)
        sc_total = sc_total + sums[0].sqrt() / sums[1].sqrt()
        mag_total = mag_total + sums[2] / count
    return sc_total / len(RESOLUTIONS), mag_total / len(RESOLUTIONS)


def _fwd_bwd(loss_fn, x, y, unsqueeze=False):
    def run():
        x.grad = None
        a, b = (x.unsqueeze(1), y.unsqueeze(1)) if unsqueeze else (x, y)  # auraloss wants (B, C, T)
        out = loss_fn(a, b)
        total = out if isinstance(out, torch.Tensor) else out[0] + out[1]
        total.backward()

    return run


def _with_route(route: str, run):
    """``run`` with FASTGAN_STFT_LOSS_PATH=route (the op reads it at every call)."""
    return with_environ(run, FASTGAN_STFT_LOSS_PATH=route)


def _gemm_flops(batch: int, length: int) -> int:
    """The FLOPs of fastgan's DFT GEMM route (kernels/stft_loss.py), forward and backward, x's gradient only.

    Per resolution and signal: frames x win_length x n_fft x 2. A real n_fft-point frame's n_fft // 2 + 1 bins
    are n_fft real numbers (cos and sin columns, n_fft / 2 each; DC's and Nyquist's are real), each a dot
    product over the frame, and a multiply-add is 2 FLOPs. The kernels read only the window's non-zero rows
    (win_length of the n_fft-sample frame: 600 / 1024, 1200 / 2048, 240 / 512), so this is
    win_length / n_fft of the untrimmed count frames x n_fft x (n_fft / 2 + 1) x 2 x 2.
    Forward: both signals (2 units). Backward: both spectra recomputed (2) and the transposed GEMM back to
    x's frames (1; y needs no gradient): 1.5x the forward, 5 units in all.
    """
    flops = 0
    for n_fft, hop, win in RESOLUTIONS:
        frames = batch * num_frames(length, n_fft, hop)
        one_signal = 2 * frames * win * n_fft
        flops += 2 * one_signal + 2 * one_signal + one_signal
    return flops


def _fft_flops(batch: int, length: int) -> int:
    """The FLOPs of the same loss computed by real FFTs (torch.stft, cuFFT): the usual 2.5 n log2 n per real
    n-point transform (half a complex FFT's 5 n log2 n), over the same 5 units as :func:`_gemm_flops` (forward:
    both signals; backward: both spectra again and one inverse transform back to x's frames)."""
    flops = 0
    for n_fft, hop, _ in RESOLUTIONS:
        frames = batch * num_frames(length, n_fft, hop)
        flops += 5 * int(frames * 2.5 * n_fft * math.log2(n_fft))
    return flops


def cases(quick: bool, device: torch.device) -> list[Case]:
    sizes = [(2, 8192)] if quick else [(16, 16384), (32, 24000)]
    result = []
    for batch, length in sizes:
        generator = torch.Generator(device=device).manual_seed(0)
        x = torch.randn(batch, length, generator=generator, device=device, requires_grad=True)
        y = 0.5 * x.detach() + torch.randn(batch, length, generator=generator, device=device)
        ours = fastgan.nn.MultiResolutionSTFTLoss().to(device)
        windows = [torch.hann_window(win, device=device) for _, _, win in RESOLUTIONS]
        impls = {"fastgan": _fwd_bwd(ours, x, y)}
        if device.type == "cuda":  # the other kernel route, to choose between them by measurement
            impls["fastgan fft-route"] = _with_route("fft", _fwd_bwd(ours, x, y))
        pwg = _parallel_wavegan_loss()
        if pwg is not None:
            impls["parallel_wavegan"] = _fwd_bwd(pwg.to(device), x, y)
        aura = _auraloss_loss()
        if aura is not None:
            impls["auraloss"] = _fwd_bwd(aura.to(device), x, y, unsqueeze=True)
        impls["eager"] = _fwd_bwd(lambda a, b, w=windows: reference_loss(a, b, w), x, y)
        if not quick:
            compiled = torch.compile(reference_loss, dynamic=False)
            impls["torch.compile"] = _fwd_bwd(lambda a, b, c=compiled, w=windows: c(a, b, w), x, y)
        result.append(
            Case(
                op="stft_loss",
                name=f"pwg 3 res b{batch} t{length}",
                mode="fwd+bwd",
                dtype=torch.float32,
                impls=impls,
                bytes_moved=3 * batch * length * 4,  # the least traffic: x and y read, x's gradient written
                # The arithmetic, not the few bytes, bounds this loss; each path is rated by the work it does.
                flops=_fft_flops(batch, length),
                impl_flops={"fastgan": _gemm_flops(batch, length)} if kernels_run(device) else {},
            )
        )
    return result
