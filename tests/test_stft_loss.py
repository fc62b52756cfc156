"""STFT loss: the op (Triton DFT-GEMM kernels in the interpreter/CUDA pass, torch.stft reference
otherwise) against parallel_wavegan's and auraloss' losses run in float64, per resolution and in
total, values and input gradients; the reference against both in float64; edge cases and every
bad input.

The interpreter pass uses short signals and small FFTs (SMALL) to keep the programs few; the
fallback pass uses parallel_wavegan's default resolutions. Odd FFT sizes (no Nyquist bin) run beside
the even ones: small odd sizes in the interpreter pass (SMALL_ODD), parallel_wavegan's Multi-band
MelGAN sub-band resolutions (MB_MELGAN: 683 and 171 are odd) elsewhere.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fastgan
from fastgan.functional import stft_loss, stft_loss_terms
from fastgan.references.stft_loss import stft_loss_backward_reference, stft_loss_sums_reference
from tests.conftest import DEVICE, INTERPRETER, KERNELS_RUN
from tests.oracle import parallel_wavegan
from tests.tolerances import STFT_LOSS, STFT_LOSS_HALF_GRAD

DEFAULT = {"fft_sizes": [1024, 2048, 512], "hop_sizes": [120, 240, 50], "win_lengths": [600, 1200, 240]}
SMALL = {"fft_sizes": [64, 32, 16], "hop_sizes": [16, 8, 4], "win_lengths": [40, 32, 10]}
# parallel_wavegan's Multi-band MelGAN recipes (e.g. egs/*/voc1/conf/multi_band_melgan.v2.yaml): sub-band losses.
MB_MELGAN = {"fft_sizes": [384, 683, 171], "hop_sizes": [30, 60, 10], "win_lengths": [150, 300, 60]}
SMALL_ODD = {"fft_sizes": [63, 31, 15], "hop_sizes": [16, 8, 4], "win_lengths": [40, 31, 10]}
# Interpreter programs are slow: short signals and small FFTs there; the real sizes elsewhere.
CONFIG = SMALL if INTERPRETER else DEFAULT
ODD_CONFIG = SMALL_ODD if INTERPRETER else MB_MELGAN
CONFIGS = pytest.mark.parametrize("config", [CONFIG, ODD_CONFIG], ids=["even", "odd"])
LENGTH = 157 if INTERPRETER else 4001  # odd on purpose


def resolutions(config=CONFIG):
    return list(zip(config["fft_sizes"], config["hop_sizes"], config["win_lengths"], strict=True))


def signals(shape, seed=0, dtype=torch.float64):
    """A prediction and a correlated target (as in training), fp32 values (exact in float64 too: the
    float64 truth then sees the very inputs the fp32 implementations see)."""
    generator = torch.Generator(device=DEVICE).manual_seed(seed)
    x = torch.randn(shape, generator=generator)
    y = 0.5 * x + torch.randn(shape, generator=generator)
    return x.to(dtype), y.to(dtype)


def pwg_losses():
    return parallel_wavegan("losses")


def value_and_grads(loss_fn, x, y, weights=(1.0, 2.0), grad_target=False):
    """Run ``loss_fn(x, y)`` (tuple or scalar), backprop a weighted sum; returns values and grads."""
    x = x.detach().clone().requires_grad_()
    y = y.detach().clone().requires_grad_(grad_target)
    out = loss_fn(x, y)
    values = out if isinstance(out, tuple) else (out,)
    total = sum(w * v for w, v in zip(weights, values, strict=False))
    grads = torch.autograd.grad(total, (x, y) if grad_target else (x,))
    return [v.detach() for v in values], grads


def rel(actual, expected):
    return ((actual.double() - expected.double()).norm() / expected.double().norm().clamp_min(1e-300)).item()


def reference_path(fn):
    """``fn`` with every op forced onto its torch.stft reference (fp32 for fp32 inputs)."""

    def run(*args):
        fastgan._backend.set_backend("torch")
        try:
            return fn(*args)
        finally:
            fastgan._backend.set_backend(None)

    return run


def assert_matches_truth(ours, truth, *fp32_yardsticks):
    """Values within 1e-5 relative of the float64 truth; gradients within the STFT_LOSS bound.

    ``fp32_yardsticks``: (values, grads) of independent fp32 implementations of the same loss
    (parallel_wavegan's, the torch.stft reference); their gradient error measures the input's
    conditioning (see tests/tolerances.py).
    """
    (values, grads), (true_values, true_grads) = ours, truth
    assert len(values) == len(true_values)
    for value, true_value in zip(values, true_values, strict=True):
        assert torch.isfinite(value).all()
        torch.testing.assert_close(value.double(), true_value.double(), rtol=STFT_LOSS["value_rtol"], atol=0)
    for i, (grad, true_grad) in enumerate(zip(grads, true_grads, strict=True)):
        assert torch.isfinite(grad).all()
        yardstick = max(rel(other[1][i], true_grad) for other in fp32_yardsticks)
        bound = max(STFT_LOSS["grad_rel"], STFT_LOSS["grad_conditioning"] * yardstick)
        assert rel(grad, true_grad) <= bound, f"gradient error {rel(grad, true_grad):.3e} > {bound:.3e}"


def against_oracle(ours_fn, oracle, x, y, weights=(1.0, 2.0), grad_target=False):
    """Compare ours (fp32 inputs) with ``oracle`` in float64 (the truth); fp32 runs of the oracle and
    of our reference measure the conditioning."""
    ours = value_and_grads(ours_fn, x.float(), y.float(), weights, grad_target)
    reference32 = value_and_grads(reference_path(ours_fn), x.float(), y.float(), weights, grad_target)
    truth = value_and_grads(oracle.double(), x.double(), y.double(), weights, grad_target)
    theirs32 = value_and_grads(oracle.float(), x.float(), y.float(), weights, grad_target)
    assert_matches_truth(ours, truth, theirs32, reference32)


@CONFIGS
@pytest.mark.parametrize("shape", [(3, LENGTH), (1, LENGTH), (2, 1, LENGTH + 1)], ids=["b3", "b1", "b2x1-even"])
def test_each_resolution_matches_parallel_wavegan(shape, config):
    pwg = pwg_losses()
    x, y = signals(shape)
    for fft_size, hop, win in resolutions(config):
        oracle = pwg.STFTLoss(fft_size, hop, win).to(DEVICE)
        ours = fastgan.nn.STFTLoss(fft_size, hop, win).to(DEVICE)
        flat = (x.reshape(-1, shape[-1]), y.reshape(-1, shape[-1]))  # pwg's STFTLoss takes (B, T) only
        against_oracle(ours, oracle, *flat)


@CONFIGS
@pytest.mark.parametrize("shape", [(2, LENGTH), (2, 1, LENGTH)], ids=["BT", "B1T"])
def test_multi_resolution_matches_parallel_wavegan(shape, config):
    x, y = signals(shape, seed=1)
    oracle = pwg_losses().MultiResolutionSTFTLoss(**config).to(DEVICE)
    ours = fastgan.nn.MultiResolutionSTFTLoss(**config).to(DEVICE)
    assert list(ours.state_dict()) == list(oracle.state_dict())
    against_oracle(ours, oracle, x, y)


@CONFIGS
def test_gradient_of_the_target_when_asked(config):
    x, y = signals((2, LENGTH), seed=2)
    oracle = pwg_losses().MultiResolutionSTFTLoss(**config).to(DEVICE)
    ours = fastgan.nn.MultiResolutionSTFTLoss(**config, grad_target=True).to(DEVICE)
    against_oracle(ours, oracle, x, y, grad_target=True)


@pytest.mark.parametrize("grad_target", [False, True])
def test_mb_melgan_subband_resolutions_match_parallel_wavegan(grad_target):
    """parallel_wavegan's own Multi-band MelGAN sub-band STFT loss (fft sizes 384, 683, 171: two odd) in
    every pass; the interpreter pass with a short signal (683 // 2 = 341 samples of reflect padding)."""
    x, y = signals((2, 1, 1001 if INTERPRETER else LENGTH), seed=21)
    oracle = pwg_losses().MultiResolutionSTFTLoss(**MB_MELGAN).to(DEVICE)
    ours = fastgan.nn.MultiResolutionSTFTLoss(**MB_MELGAN, grad_target=grad_target).to(DEVICE)
    assert list(ours.state_dict()) == list(oracle.state_dict())
    assert [loss.window.shape[0] for loss in ours.stft_losses] == MB_MELGAN["win_lengths"]
    against_oracle(ours, oracle, x, y, grad_target=grad_target)


@CONFIGS
def test_functional_multi_resolution_form_is_the_module(config):
    # The same op calls in the same order: equal values and gradients, bit for bit (the module is checked
    # against parallel_wavegan above).
    x, y = signals((2, LENGTH), seed=4, dtype=torch.float32)
    results = []
    for loss in (
        fastgan.nn.MultiResolutionSTFTLoss(**config).to(DEVICE),
        fastgan.functional.multi_resolution_stft_loss,
    ):
        xg = x.clone().requires_grad_()
        sc, mag = loss(xg, y) if isinstance(loss, torch.nn.Module) else loss(xg, y, **config)
        (sc + 2 * mag).backward()
        results.append((sc, mag, xg.grad))
    for ours, module in zip(*results, strict=True):
        torch.testing.assert_close(ours, module, rtol=0, atol=0)
    with pytest.raises(ValueError, match="must be non-empty and of one length, got 2, 3, 3"):
        fastgan.functional.multi_resolution_stft_loss(x, y, [64, 32], [16, 8, 4], [64, 32, 16])


def test_target_is_detached_by_default():
    x, y = signals((2, LENGTH), seed=3, dtype=torch.float32)
    x.requires_grad_()
    y.requires_grad_()
    sc, mag = fastgan.nn.MultiResolutionSTFTLoss(**CONFIG).to(DEVICE)(x, y)
    (sc + mag).backward()
    assert x.grad is not None and y.grad is None


class _AuralossMRSTFT(torch.nn.Module):
    """auraloss' loss taking (B, T) like ours (it wants (B, C, T))."""

    def __init__(self, **kwargs):
        super().__init__()
        import auraloss

        self.loss = auraloss.freq.MultiResolutionSTFTLoss(**kwargs)

    def forward(self, x, y):
        dtype = x.dtype
        for stft in self.loss.stft_losses:  # auraloss keeps its window (and filterbank) as plain attributes
            stft.window = stft.window.to(dtype)
            if getattr(stft, "fb", None) is not None:
                stft.fb = stft.fb.to(dtype)
        return self.loss(x.unsqueeze(1), y.unsqueeze(1))


@pytest.mark.parametrize(
    ("config", "weights"),
    [(CONFIG, (1.0, 1.0, 0.0)), (CONFIG, (0.5, 2.0, 0.7)), (ODD_CONFIG, (0.5, 2.0, 0.7))],
    ids=["default", "weighted+lin", "odd-weighted+lin"],
)
def test_auraloss_mode_matches_auraloss(config, weights):
    pytest.importorskip("auraloss", reason="auraloss is an optional parity oracle")
    w_sc, w_log_mag, w_lin_mag = weights
    x, y = signals((2, LENGTH), seed=4)
    kwargs = {**config, "w_sc": w_sc, "w_log_mag": w_log_mag, "w_lin_mag": w_lin_mag}
    oracle = _AuralossMRSTFT(**kwargs).to(DEVICE)
    ours = fastgan.nn.MultiResolutionSTFTLoss(**kwargs, mode="auraloss").to(DEVICE)
    against_oracle(ours, oracle, x, y, weights=(1.0,))


@pytest.mark.parametrize("odd", [False, True], ids=["even", "odd"])
def test_auraloss_mel_mode_matches_auraloss(odd):
    pytest.importorskip("auraloss", reason="auraloss is an optional parity oracle")
    # FFTs of 16 bins would leave 8 mel filters empty (log 0 in auraloss as well): 64 and 32 (63 and 31)
    # here; with the MB-MelGAN sizes, 64 filters over 171's 86 bins would leave one empty: 40 there.
    if INTERPRETER:
        config, sample_rate, n_bins = {k: v[:2] for k, v in (SMALL_ODD if odd else SMALL).items()}, 8000, 8
    else:
        config, sample_rate, n_bins = (MB_MELGAN, 16000, 40) if odd else (DEFAULT, 16000, 64)
    x, y = signals((2, LENGTH), seed=5)
    kwargs = {**config, "scale": "mel", "sample_rate": sample_rate, "n_bins": n_bins}
    oracle = _AuralossMRSTFT(**kwargs).to(DEVICE)
    ours = fastgan.nn.MultiResolutionSTFTLoss(**kwargs, mode="auraloss").to(DEVICE)
    assert ours.stft_losses[0].mel_basis.shape == (n_bins, config["fft_sizes"][0] // 2 + 1)
    against_oracle(ours, oracle, x, y, weights=(1.0,))


@pytest.mark.reference
@pytest.mark.parametrize("n_fft", [64, 63])
@pytest.mark.parametrize("grad_target", [False, True])
@pytest.mark.parametrize("mel", [False, True])
def test_reference_backward_is_the_autograd_gradient_float64(mel, grad_target, n_fft):
    x, y = signals((2, 101), seed=6)
    window = torch.hann_window(40, dtype=torch.float64)
    mel_basis = torch.rand(5, n_fft // 2 + 1, dtype=torch.float64) if mel else None
    grad_sums = torch.randn(4, dtype=torch.float64)
    xg, yg = x.clone().requires_grad_(), y.clone().requires_grad_()
    sums = stft_loss_sums_reference(xg, yg, n_fft, 16, window, 1e-7, mel_basis)
    expected = torch.autograd.grad(sums, (xg, yg), grad_sums)
    actual = stft_loss_backward_reference(grad_sums, x, y, n_fft, 16, window, 1e-7, mel_basis, grad_target)
    assert actual.shape == (2 if grad_target else 1, 2, 101)
    for got, want in zip(actual, expected, strict=False):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.reference
@pytest.mark.parametrize("config", [DEFAULT, MB_MELGAN], ids=["default", "mb-melgan"])
def test_reference_float64_equals_parallel_wavegan_float64(config):
    x, y = signals((2, 3001), seed=7)
    oracle = pwg_losses().MultiResolutionSTFTLoss(**config).to(DEVICE).double()
    ours = fastgan.nn.MultiResolutionSTFTLoss(**config).to(DEVICE).double()
    (ours_values, ours_grads), (values, grads) = value_and_grads(ours, x, y), value_and_grads(oracle, x, y)
    for a, b in zip(ours_values + list(ours_grads), values + list(grads), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.reference
@pytest.mark.parametrize("n_fft", [16, 15])
def test_reference_gradcheck_float64(n_fft):
    x, y = signals((1, 40), seed=8)
    window = torch.hann_window(n_fft, dtype=torch.float64)
    x.requires_grad_()
    y.requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: stft_loss_sums_reference(x, y, n_fft, 4, window, 1e-7), (x, y))


@pytest.mark.parametrize("route", ["gemm", "fft"])
@pytest.mark.parametrize(
    "geometry",
    [(16, 4, 16), (32, 8, 10), (16, 20, 12), (64, 16, 64), (32, 3, 31),
     (15, 4, 15), (31, 8, 10), (15, 20, 12), (63, 16, 40), (31, 3, 31)],
    ids=["win=fft", "short-win", "hop>win", "one-block", "odd-win",
         "odd-fft-win=fft", "odd-fft-short-win", "odd-fft-hop>win", "odd-fft-even-win", "odd-fft-odd-win"],
)  # fmt: skip
def test_op_sums_and_gradients_match_the_reference(geometry, route, monkeypatch):
    """The raw op (kernels in the interpreter pass; the DFT-GEMM route and the cuFFT route) against
    the float64 reference, unusual geometries."""
    monkeypatch.setenv("FASTGAN_STFT_LOSS_PATH", route)
    n_fft, hop, win = geometry
    x, y = signals((2, 83), seed=9)
    window = torch.hann_window(win).double()  # fp32 values, as the fp32 op receives
    grad_sums = torch.tensor([0.7, -0.3, 1.1, 0.4], dtype=torch.float64)
    op = torch.ops.fastgan.stft_loss
    sums = op(x.float(), y.float(), window.float(), n_fft, hop, 1e-7, None, True)
    true_sums = stft_loss_sums_reference(x, y, n_fft, hop, window, 1e-7)
    torch.testing.assert_close(sums.double(), true_sums, rtol=STFT_LOSS["value_rtol"], atol=0)
    backward = torch.ops.fastgan.stft_loss_backward
    grads = backward(grad_sums.float(), x.float(), y.float(), window.float(), n_fft, hop, 1e-7, None, True)
    truth = stft_loss_backward_reference(grad_sums, x, y, n_fft, hop, window, 1e-7, None, True)
    # The conditioning yardstick: the same math in fp32 through torch.stft (see tests/tolerances.py).
    fp32 = stft_loss_backward_reference(grad_sums.float(), x.float(), y.float(), n_fft, hop, window.float(), 1e-7,
                                        None, True)  # fmt: skip
    for grad, true_grad, their_grad in zip(grads, truth, fp32, strict=True):
        bound = max(STFT_LOSS["grad_rel"], STFT_LOSS["grad_conditioning"] * rel(their_grad, true_grad))
        assert rel(grad, true_grad) <= bound


@pytest.mark.parametrize("n_fft", [64, 63])
@pytest.mark.parametrize("grad_target", [False, True])
@pytest.mark.parametrize("n_mels", [5, 40], ids=["mel5", "mel40"])
def test_mel_op_matches_the_reference(n_mels, grad_target, n_fft):
    """fastgan::stft_mel (the kernels in the interpreter pass) against the float64 reference; an odd n_fft's
    mel basis has n_fft // 2 + 1 columns and no Nyquist bin."""
    from fastgan.references.stft_loss import stft_mel_backward_reference, stft_mel_reference

    x, y = signals((2, 83), seed=16)
    window = torch.hann_window(40).double()
    generator = torch.Generator(device=DEVICE).manual_seed(17)
    mel_basis = torch.rand(n_mels, n_fft // 2 + 1, generator=generator).double()
    mel = torch.ops.fastgan.stft_mel(
        x.float(), y.float(), window.float(), n_fft, 12, 1e-7, mel_basis.float(), grad_target
    )  # fmt: skip
    truth = stft_mel_reference(x, y, n_fft, 12, window, 1e-7, mel_basis)
    assert mel.shape == truth.shape == (2, 2, 7, n_mels)
    assert rel(mel, truth) <= STFT_LOSS["value_rtol"]
    grad_mel = torch.randn(truth.shape, generator=generator)
    grads = torch.ops.fastgan.stft_mel_backward(
        grad_mel, x.float(), y.float(), window.float(), n_fft, 12, 1e-7, mel_basis.float(), grad_target
    )  # fmt: skip
    true_grads = stft_mel_backward_reference(grad_mel.double(), x, y, n_fft, 12, window, 1e-7, mel_basis, grad_target)
    assert grads.shape == true_grads.shape == (2 if grad_target else 1, 2, 83)
    # No log and no 1/|X| here: the gradient is as well conditioned as the values.
    assert rel(grads, true_grads) <= STFT_LOSS["grad_rel"]


@settings(max_examples=6 if INTERPRETER else 15)
@given(
    batch=st.integers(1, 3),
    n_fft=st.sampled_from([15, 16, 31, 32, 63, 64]),
    hop_fraction=st.floats(0.1, 1.0),
    win_fraction=st.floats(0.2, 1.0),
    extra=st.integers(1, 80),
    seed=st.integers(0, 2**16),
)
def test_fuzz_geometries(batch, n_fft, hop_fraction, win_fraction, extra, seed):
    hop = max(1, int(n_fft * hop_fraction))
    win = max(1, int(n_fft * win_fraction))
    length = n_fft - 1 + extra  # from the shortest signal the loss takes (fft_size samples) up
    x, y = signals((batch, length), seed=seed)
    ours = value_and_grads(lambda a, b: stft_loss(a, b, n_fft, hop, win), x.float(), y.float())
    window = torch.hann_window(win).double()
    truth = value_and_grads(lambda a, b: stft_loss(a, b, n_fft, hop, win, window), x, y)
    theirs = value_and_grads(pwg_losses().STFTLoss(n_fft, hop, win).to(DEVICE), x.float(), y.float())
    reference32 = value_and_grads(reference_path(lambda a, b: stft_loss(a, b, n_fft, hop, win)), x.float(), y.float())
    assert_matches_truth(ours, truth, theirs, reference32)


def test_strided_signals():
    """Rows and samples read through strides (no copy in the op)."""
    x, y = signals((2, 2 * LENGTH + 1), seed=20, dtype=torch.float32)
    x_strided, y_strided = x[:, 1::2], y.flip(0)[:, 1::2]
    assert not x_strided.is_contiguous()
    n_fft, hop, win = resolutions()[1]
    ours = value_and_grads(lambda a, b: stft_loss(a, b, n_fft, hop, win), x_strided, y_strided)
    contiguous = value_and_grads(
        lambda a, b: stft_loss(a, b, n_fft, hop, win), x_strided.contiguous(), y_strided.contiguous()
    )  # fmt: skip
    for a, b in zip(ours[0] + list(ours[1]), contiguous[0] + list(contiguous[1]), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


def test_windows_of_one_length_are_not_confused():
    """The kernels cache a DFT basis per window tensor: distinct windows must give their own losses."""
    x, y = signals((1, LENGTH), seed=18, dtype=torch.float32)
    n_fft, hop, win = resolutions()[0]
    for _ in range(2):  # fresh window tensors each round: freed memory may be reused by the next one
        for name in ("hann_window", "hamming_window", "blackman_window"):
            window = getattr(torch, name)(win)
            got = stft_loss(x, y, n_fft, hop, win, window)
            want = stft_loss(x.double(), y.double(), n_fft, hop, win, window.double())
            for value, true_value in zip(got, want, strict=True):
                torch.testing.assert_close(value.double(), true_value, rtol=STFT_LOSS["value_rtol"], atol=0)


@CONFIGS
def test_all_zero_target_and_prediction_stay_finite(config):
    x = torch.zeros(2, LENGTH, requires_grad=True)
    y = torch.zeros(2, LENGTH)
    sc, mag = fastgan.nn.MultiResolutionSTFTLoss(**config).to(DEVICE)(x, y)
    (sc + mag).backward()
    assert sc.item() == 0 and mag.item() == 0
    assert torch.count_nonzero(x.grad) == 0  # the zero norm's gradient is zero (torch.norm's), not NaN
    x2 = torch.randn(2, LENGTH, requires_grad=True)
    sc, mag = fastgan.nn.MultiResolutionSTFTLoss(**config).to(DEVICE)(x2, y)
    (sc + mag).backward()
    assert torch.isfinite(sc) and torch.isfinite(mag) and torch.isfinite(x2.grad).all()


def test_all_zero_mel_target_and_prediction_stay_finite():
    """The mel path forms spectral convergence from the mel magnitudes itself: a zero norm there too."""
    config, sample_rate, n_bins = (
        ({k: v[:2] for k, v in SMALL.items()}, 8000, 8) if INTERPRETER else (DEFAULT, 16000, 64)
    )
    loss = fastgan.nn.MultiResolutionSTFTLoss(**config, scale="mel", sample_rate=sample_rate, n_bins=n_bins)
    x = torch.zeros(2, LENGTH, requires_grad=True)
    sc, mag = loss.to(DEVICE)(x, torch.zeros(2, LENGTH))
    (sc + mag).backward()
    assert sc.item() == 0 and mag.item() == 0
    assert torch.count_nonzero(x.grad) == 0


NON_FINITE = pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])


@NON_FINITE
@pytest.mark.parametrize("which", ["prediction", "target"])
@pytest.mark.parametrize("route", ["gemm", "fft"])
def test_non_finite_input_gives_a_non_finite_loss_as_parallel_wavegan(bad, which, route, monkeypatch):
    """A NaN or Inf sample makes parallel_wavegan's losses NaN; ours must not read it as a perfect match
    (spectral convergence 0). A NaN stays NaN. An Inf gives NaN through an FFT (its butterflies subtract
    Infs) but +Inf through the DFT GEMM (one +-Inf product per bin): non-finite either way."""
    monkeypatch.setenv("FASTGAN_STFT_LOSS_PATH", route)
    x, y = signals((2, LENGTH), seed=22, dtype=torch.float32)
    (x if which == "prediction" else y)[0, LENGTH // 2] = bad
    ours = value_and_grads(fastgan.nn.MultiResolutionSTFTLoss(**CONFIG).to(DEVICE), x, y)
    theirs = value_and_grads(pwg_losses().MultiResolutionSTFTLoss(**CONFIG).to(DEVICE), x, y)
    for value, their_value in zip(ours[0], theirs[0], strict=True):
        assert torch.isnan(their_value)  # the oracle's answer, which the checks below follow
        assert torch.isnan(value) if math.isnan(bad) else not torch.isfinite(value)
    # A non-finite gradient too, as parallel_wavegan's, so that GradScaler skips the step.
    assert not torch.isfinite(theirs[1][0]).all()
    assert not torch.isfinite(ours[1][0]).all()


@NON_FINITE
def test_non_finite_prediction_gives_nan_in_the_mel_path(bad):
    """scale='mel' forms spectral convergence from the mel magnitudes: auraloss' (w_sc only) is NaN there."""
    pytest.importorskip("auraloss", reason="auraloss is an optional parity oracle")
    if INTERPRETER:
        config, sample_rate, n_bins = {k: v[:2] for k, v in SMALL.items()}, 8000, 8
    else:
        config, sample_rate, n_bins = DEFAULT, 16000, 64
    kwargs = {**config, "scale": "mel", "sample_rate": sample_rate, "n_bins": n_bins}
    x, y = signals((2, LENGTH), seed=23, dtype=torch.float32)
    x[1, 7] = bad
    sc, mag = fastgan.nn.MultiResolutionSTFTLoss(**kwargs).to(DEVICE)(x, y)
    their_sc = _AuralossMRSTFT(**kwargs, w_sc=1.0, w_log_mag=0.0).to(DEVICE)(x, y)
    assert torch.isnan(their_sc)
    assert torch.isnan(sc) and torch.isnan(mag)


@pytest.mark.skipif(not INTERPRETER, reason="models a GPU's maxnum in the Triton interpreter")
@NON_FINITE
def test_kernels_keep_nan_under_gpu_maxnum_semantics(bad, monkeypatch):
    """On a GPU, tl.maximum's default lowers to maxnum (IEEE maxNum, C's fmax), which returns the other
    operand for a NaN: max(NaN power, eps) = eps would make a finite loss of a non-finite input. The
    interpreter's numpy maximum propagates NaN either way, so give it maxnum's semantics here; the
    kernels' sums and mel magnitudes must then still be non-finite where the float64 reference's are."""
    import numpy as np
    from triton.runtime.interpreter import InterpreterBuilder

    from fastgan.references.stft_loss import stft_mel_reference

    monkeypatch.setattr(InterpreterBuilder, "create_maxnumf", lambda self, lhs, rhs: self.binary_op(lhs, rhs, np.fmax))
    x, y = signals((2, 83), seed=24)
    x[0, 40] = bad
    window = torch.hann_window(40).double()
    args = (x.float(), y.float(), window.float(), 64, 12, 1e-7)
    truth = stft_loss_sums_reference(x, y, 64, 12, window, 1e-7)
    assert not torch.isfinite(truth).all()
    for route in ("gemm", "fft"):
        monkeypatch.setenv("FASTGAN_STFT_LOSS_PATH", route)
        sums = torch.ops.fastgan.stft_loss(*args, None, False)
        assert torch.equal(torch.isfinite(sums), torch.isfinite(truth)), route
    mel_basis = torch.rand(5, 33, generator=torch.Generator(device=DEVICE).manual_seed(25)).double()
    bad_frames = ~torch.isfinite(torch.ops.fastgan.stft_mel(*args, mel_basis.float(), False)).all(-1)
    true_bad_frames = ~torch.isfinite(stft_mel_reference(x, y, 64, 12, window, 1e-7, mel_basis)).all(-1)
    # torch.stft also multiplies the window's zero padding (0 · NaN, 0 · Inf are NaN); the kernels read only the
    # window's support: non-finite the frames whose window covers the sample, and no other.
    assert bad_frames.any() and not (bad_frames & ~true_bad_frames).any()


def test_deterministic():
    x, y = signals((2, LENGTH), seed=10, dtype=torch.float32)
    loss = fastgan.nn.MultiResolutionSTFTLoss(**CONFIG).to(DEVICE)
    first = value_and_grads(loss, x, y)
    second = value_and_grads(loss, x, y)
    for a, b in zip(first[0] + list(first[1]), second[0] + list(second[1]), strict=True):
        assert torch.equal(a, b)


@CONFIGS
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_inputs_compute_in_fp32(dtype, config):
    x, y = signals((2, LENGTH), seed=11)
    x, y = x.to(dtype), y.to(dtype)  # the rounded inputs
    loss = fastgan.nn.MultiResolutionSTFTLoss(**config).to(DEVICE)
    (values, (grad,)) = value_and_grads(loss, x, y)
    assert grad.dtype == dtype
    (true_values, (true_grad,)) = value_and_grads(loss.double(), x.double(), y.double())
    for value, true_value in zip(values, true_values, strict=True):
        assert value.dtype == torch.float32
        torch.testing.assert_close(value.double(), true_value, rtol=STFT_LOSS["value_rtol"], atol=0)
    assert rel(grad, true_grad) <= STFT_LOSS_HALF_GRAD[dtype]


def test_autocast_computes_in_fp32():
    x, y = signals((2, LENGTH), seed=12, dtype=torch.float32)
    loss = fastgan.nn.MultiResolutionSTFTLoss(**CONFIG).to(DEVICE)
    expected = loss(x, y)
    device_type = DEVICE.type
    dtype = torch.float16 if device_type == "cuda" else torch.bfloat16
    with torch.autocast(device_type, dtype=dtype):
        # A half prediction (as a model under autocast makes it) against an fp32 target.
        values = loss(x.to(dtype), y)
    for value, want in zip(values, expected, strict=True):
        assert value.dtype == torch.float32 and torch.isfinite(value)
        torch.testing.assert_close(value, want, rtol=1e-2, atol=0)  # only the prediction's rounding differs


def test_opcheck():
    x, y = signals((2, 70), seed=13, dtype=torch.float32)
    window = torch.hann_window(20)
    x.requires_grad_()
    torch.library.opcheck(torch.ops.fastgan.stft_loss.default, (x, y, window, 32, 8, 1e-7, None, False))
    grad_sums = torch.tensor([1.0, 0.5, 2.0, 0.0])
    torch.library.opcheck(
        torch.ops.fastgan.stft_loss_backward.default, (grad_sums, x.detach(), y, window, 32, 8, 1e-7, None, True)
    )
    mel = torch.rand(4, 17)
    torch.library.opcheck(torch.ops.fastgan.stft_loss.default, (x, y, window, 32, 8, 1e-7, mel, False))
    torch.library.opcheck(torch.ops.fastgan.stft_mel.default, (x, y, window, 32, 8, 1e-7, mel, True))
    grad_mel = torch.randn(2, 2, 9, 4)
    torch.library.opcheck(
        torch.ops.fastgan.stft_mel_backward.default, (grad_mel, x.detach(), y, window, 32, 8, 1e-7, mel, False)
    )


def test_torch_compile_fullgraph_forward_and_backward():
    torch._dynamo.reset()
    loss = fastgan.nn.MultiResolutionSTFTLoss(**SMALL).to(DEVICE)

    def step(x, y):
        sc, mag = loss(x, y)
        return sc + 2 * mag

    compiled = torch.compile(step, fullgraph=True)
    x, y = signals((2, 90), seed=14, dtype=torch.float32)
    x_compiled, x_eager = x.clone().requires_grad_(), x.clone().requires_grad_()
    compiled(x_compiled, y).backward()
    step(x_eager, y).backward()
    torch.testing.assert_close(x_compiled.grad, x_eager.grad, rtol=1e-6, atol=1e-9)


@pytest.mark.skipif(not KERNELS_RUN, reason="the route picks between kernels; this pass runs the reference")
@CONFIGS
@pytest.mark.parametrize("grad_target", [False, True])
def test_fft_route_module_matches_parallel_wavegan(grad_target, config, monkeypatch):
    monkeypatch.setenv("FASTGAN_STFT_LOSS_PATH", "fft")
    x, y = signals((2, LENGTH), seed=19)
    oracle = pwg_losses().MultiResolutionSTFTLoss(**config).to(DEVICE)
    ours = fastgan.nn.MultiResolutionSTFTLoss(**config, grad_target=grad_target).to(DEVICE)
    against_oracle(ours, oracle, x, y, grad_target=grad_target)


class TestBadInput:
    @pytest.mark.parametrize("length", [100, 512, 513, 700, 1023])
    def test_signal_shorter_than_the_fft(self, length):
        """Issue 5: a signal shorter than an FFT raises, also where reflect padding alone would allow it
        (fft_size // 2 < T < fft_size)."""
        x = torch.randn(2, length)
        with pytest.raises(ValueError, match=rf"signals \({length} samples\) are too short for fft_size=1024"):
            stft_loss(x, x, 1024, 120, 600)
        with pytest.raises(ValueError, match=rf"signals \({length} samples\) are too short for fft_size=1024"):
            torch.ops.fastgan.stft_loss(x, x, torch.hann_window(600), 1024, 120, 1e-7, None, False)

    def test_signal_shorter_than_the_largest_fft(self):
        x = torch.randn(2, 1500)  # long enough for the 1024 and 512 resolutions, not for 2048
        with pytest.raises(ValueError, match=r"signals \(1500 samples\) are too short for fft_size=2048"):
            fastgan.nn.MultiResolutionSTFTLoss()(x, x)

    def test_signal_of_exactly_fft_size_samples_is_taken(self):
        """The shortest signal allowed (T = fft_size) matches parallel_wavegan's loss."""
        n_fft, hop, win = resolutions()[0]
        x, y = signals((2, n_fft), seed=26)
        with pytest.raises(ValueError, match="too short"):
            stft_loss(x[:, 1:].float(), y[:, 1:].float(), n_fft, hop, win)
        oracle = pwg_losses().STFTLoss(n_fft, hop, win).to(DEVICE)
        against_oracle(fastgan.nn.STFTLoss(n_fft, hop, win).to(DEVICE), oracle, x, y)

    def test_window_tensor_of_another_length(self):
        """torch.stft raises on a window tensor whose length is not win_length; so must the loss."""
        x = torch.randn(2, 1100)
        with pytest.raises(ValueError, match="window tensor has 100 samples, but win_length=600"):
            stft_loss(x, x, window=torch.ones(100))
        with pytest.raises(ValueError, match="window tensor has 40 samples, but win_length=32"):
            stft_loss_terms(x, x, 64, 16, 32, torch.hann_window(40), mel_basis=torch.rand(4, 33))

    def test_shape_mismatch(self):
        with pytest.raises(ValueError, match=r"x and y must have the same shape, got \(2, 100\) and \(2, 99\)"):
            stft_loss(torch.randn(2, 100), torch.randn(2, 99), 32, 8, 32)

    def test_wrong_ndim(self):
        with pytest.raises(ValueError, match=r"x must be \(batch, time\) or \(batch, channels, time\), got \(100,\)"):
            stft_loss(torch.randn(100), torch.randn(100), 32, 8, 32)

    def test_wrong_dtype(self):
        with pytest.raises(TypeError, match="x has dtype torch.int64"):
            stft_loss(torch.ones(2, 100, dtype=torch.int64), torch.ones(2, 100, dtype=torch.int64), 32, 8, 32)

    def test_bad_sizes(self):
        x = torch.randn(2, 100)
        with pytest.raises(ValueError, match="fft_size must be >= 2, got 1"):
            stft_loss(x, x, 1, 1, 1)
        with pytest.raises(ValueError, match="STFTLoss: fft_size must be >= 2, got 0"):
            fastgan.nn.STFTLoss(0, 1, 1)
        with pytest.raises(ValueError, match=r"win_length must be in \[1, fft_size=32\], got 40"):
            stft_loss(x, x, 32, 8, 40)
        with pytest.raises(ValueError, match="hop_size must be >= 1"):
            stft_loss(x, x, 32, 0, 32)
        with pytest.raises(ValueError, match="unknown window 'nope_window'"):
            stft_loss(x, x, 32, 8, 32, "nope_window")

    def test_bad_mel_basis(self):
        x = torch.randn(2, 100)
        with pytest.raises(ValueError, match=r"mel_basis must be \(n_mels, fft_size // 2 \+ 1 = 17\)"):
            stft_loss_terms(x, x, 32, 8, 32, mel_basis=torch.rand(4, 16))
        with pytest.raises(ValueError, match=r"mel_basis must be \(n_mels, fft_size // 2 \+ 1 = 16\)"):
            stft_loss_terms(x, x, 31, 8, 31, mel_basis=torch.rand(4, 17))  # an odd size has no Nyquist bin

    def test_unknown_kernel_route(self, monkeypatch):
        monkeypatch.setenv("FASTGAN_STFT_LOSS_PATH", "dft")
        x = torch.randn(2, 100)
        if KERNELS_RUN:
            with pytest.raises(ValueError, match="FASTGAN_STFT_LOSS_PATH must be one of"):
                stft_loss(x, x, 32, 8, 32)
        else:  # the reference path does not read it
            stft_loss(x, x, 32, 8, 32)

    def test_module_arguments(self):
        with pytest.raises(ValueError, match="one length"):
            fastgan.nn.MultiResolutionSTFTLoss([1024], [120, 240], [600])
        with pytest.raises(ValueError, match="mode must be one of"):
            fastgan.nn.MultiResolutionSTFTLoss(mode="other")
        with pytest.raises(ValueError, match="scale='mel' needs sample_rate and n_bins"):
            fastgan.nn.STFTLoss(scale="mel")

    @pytest.mark.parametrize("window", ["nope", "stft", "hann", 3])
    def test_unknown_window_is_refused_at_construction(self, window):
        with pytest.raises(ValueError, match=rf"MultiResolutionSTFTLoss: unknown window {window!r}; expected the name "
                                             r"of a torch window function, e\.g\. 'hann_window'"):  # fmt: skip
            fastgan.nn.MultiResolutionSTFTLoss(window=window)
        with pytest.raises(ValueError, match=rf"STFTLoss: unknown window {window!r}"):
            fastgan.nn.STFTLoss(window=window)
        assert fastgan.nn.STFTLoss(64, 16, 32, window="hamming_window").window.shape == (32,)

    @pytest.mark.parametrize("loss", ["multi", "single"])
    def test_module_pairs_signals_of_one_shape_only(self, loss):
        """Flattening (B, C, T) must not pair different signals: (2, 2, T) against (4, T) is refused, as is
        (4, 1, T) against (2, 2, T); (B, 1, T) against (B, T) is parallel_wavegan's pairing and stays."""
        module = fastgan.nn.MultiResolutionSTFTLoss(**SMALL) if loss == "multi" else fastgan.nn.STFTLoss(64, 16, 40)
        name = "MultiResolutionSTFTLoss" if loss == "multi" else "STFTLoss"
        a = torch.randn(2, 2, 200)
        for x, y in ((a, a.reshape(4, 200)), (a.reshape(4, 1, 200), a), (a[:, :1], a), (a, a[:, 0])):
            message = (f"{name}: x and y must have the same shape (or be (batch, 1, time) and (batch, time)), "
                       f"got x {tuple(x.shape)} and y {tuple(y.shape)}")  # fmt: skip
            with pytest.raises(ValueError, match=re.escape(message)):
                module(x, y)
        x, y = torch.randn(2, 1, 200), torch.randn(2, 200)
        expected = module(x, y.unsqueeze(1))
        for pair in ((x, y), (x[:, 0], y.unsqueeze(1))):
            for got, want in zip(module(*pair), expected, strict=True):
                torch.testing.assert_close(got, want)

    @pytest.mark.parametrize("n_bins", [0, -1])
    def test_mel_needs_a_bin(self, n_bins):
        with pytest.raises(ValueError, match=f"n_bins must be >= 1, got {n_bins}"):
            fastgan.nn.MultiResolutionSTFTLoss(scale="mel", sample_rate=16000, n_bins=n_bins)

    @pytest.mark.parametrize("sample_rate", [0, -16000, float("nan"), float("inf")])
    def test_mel_needs_a_sample_rate(self, sample_rate):
        with pytest.raises(ValueError, match=f"sample_rate must be positive and finite, got {sample_rate}"):
            fastgan.nn.MultiResolutionSTFTLoss(scale="mel", sample_rate=sample_rate, n_bins=64)

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device for a CPU/CUDA mismatch")
    def test_device_mismatch(self):
        with pytest.raises(ValueError, match="one device"):
            stft_loss(torch.randn(2, 100, device="cuda"), torch.randn(2, 100, device="cpu"), 32, 8, 32)


@pytest.mark.skipif(not KERNELS_RUN, reason="checks the kernel path's buffers; this pass runs the reference")
def test_forward_writes_nothing_of_size_frames_by_bins():
    """The kernel forward's largest allocation is its partial sums, not a spectrum."""
    from fastgan.kernels import stft_loss as kernels

    x, y = signals((2, LENGTH), seed=15, dtype=torch.float32)
    n_fft, hop, win = resolutions()[0]
    window = torch.hann_window(win)
    allocations = []
    real_empty = torch.empty

    def recording_empty(*args, **kwargs):
        tensor = real_empty(*args, **kwargs)
        allocations.append(tensor.numel())
        return tensor

    torch.empty = recording_empty
    try:
        kernels.stft_loss_forward(x, y, n_fft, hop, window, 1e-7)
    finally:
        torch.empty = real_empty
    frames = 2 * (1 + LENGTH // hop)
    assert max(allocations) < frames * (n_fft // 2 + 1)
