"""Every tolerance the tests use, stated once: (atol, rtol) by dtype, per kind of computation.

A tolerance is a claim about the arithmetic, not a knob: each table says why it holds.
"""

from __future__ import annotations

import torch

# Element-wise ops (gathers, activations): the kernel computes in fp32 and rounds once to the
# storage dtype, the reference may round once more; one or two units in the last place.
ELEMENTWISE = {
    torch.float32: (0.0, 0.0),  # bit-exact: same fp32 operations in the same order
    torch.float16: (1e-3, 2e-3),  # fp16 ulp = 2**-10 ~ 9.8e-4 relative
    torch.bfloat16: (8e-3, 1.6e-2),  # bf16 ulp = 2**-7 ~ 7.8e-3 relative
}


# Convolutions and other reductions (transposed conv, PWG upsampler): the kernel sums the same
# fp32 products in another order than the reference (oneDNN/cuDNN/matmul). Compared on tensors
# scaled to max |expected| = 1 (see `assert_close_scaled`), so sums of thousands of terms (weight
# gradients) and of a few (outputs) use one table. fp32: reordering over <= ~10^4 terms
# ~ sqrt(n) * 2**-24 relative, well under 1e-5. Half dtypes: fp32 accumulation, one rounding of
# the result plus the rounding of the LeakyReLU'd half inputs the GPU's tensor cores read.
REDUCTION = {
    torch.float32: (1e-5, 1e-5),
    torch.float16: (2e-3, 4e-3),  # ~2 fp16 ulps (2**-10) relative to the largest value
    torch.bfloat16: (1.6e-2, 3.2e-2),  # ~2 bf16 ulps (2**-7)
}


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor, table: dict, dtype: torch.dtype | None = None):
    """assert_close after dividing both tensors by max |expected| (a scale-free tolerance for sums)."""
    assert not torch.isnan(actual).any(), "output holds NaN (an unwritten element?)"
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} != expected {tuple(expected.shape)}"
    scale = expected.detach().double().abs().max().clamp_min(1e-30)
    assert_close((actual.double() / scale).float(), (expected.double() / scale).float(), table, dtype or actual.dtype)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, table: dict, dtype: torch.dtype | None = None):
    atol, rtol = table[dtype or actual.dtype]
    assert not torch.isnan(actual).any(), "output holds NaN (an unwritten element?)"
    if atol == 0 and rtol == 0:
        assert torch.equal(actual, expected.to(actual.dtype)), (
            f"not bit-exact: max abs diff {(actual.double() - expected.double()).abs().max().item():.3e}"
        )
    else:
        torch.testing.assert_close(actual, expected.to(actual.dtype), atol=atol, rtol=rtol)


# STFT loss (issue 5): scalar losses and input gradients, each compared with the float64 truth
# (parallel_wavegan / auraloss / the reference run in float64 on the same fp32-valued inputs and
# window, so only arithmetic is measured, not the inputs' rounding). Loss values are sums of ~10^5
# well-conditioned terms: fp32 with fp32 (or tf32x3) DFT products stays within 1e-5 relative.
# Gradients go through 1/|X| for every bin (the log-magnitude term), so a bin with a tiny
# magnitude amplifies the DFT's rounding; no fp32 implementation meets 1e-5 there. The gradient
# bound is therefore 1e-5 relative (Frobenius norm of the error over the norm of the truth) or,
# where larger, GRAD_CONDITIONING times the larger error of two independent fp32 implementations
# on the same input (parallel_wavegan's loss and fastgan's torch.stft reference, both FFT-based):
# "as accurate as the loss it replaces", measured, not assumed. Half-precision inputs:
# the op computes in fp32 on the rounded inputs, so the same bounds hold against the fp32 math
# on those inputs; the gradient it returns is rounded once to the input dtype (HALF_GRAD).
STFT_LOSS = {"value_rtol": 1e-5, "grad_rel": 1e-5, "grad_conditioning": 4.0}
STFT_LOSS_HALF_GRAD = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2}  # ~2 ulps, relative norm


# WaveNet gated residual block (issue 3, part 2): every output and gradient against a float64
# composition of torch ops on the same (rounded) inputs. Entries are (atol, rtol) with atol a
# fraction of the expected tensor's largest magnitude (outputs and weight gradients are sums of
# hundreds of products, so an element-wise atol needs the tensor's scale). fp32: sums of
# <= ~10^3 products in fp32 (IEEE, no TF32) and a different order than float64: ~1e-6 of the
# scale. fp16/bf16: inputs and weights are the same rounded values on both sides; the kernel
# accumulates in fp32 but rounds the gate g (and in the backward dz) once to the storage dtype
# before the next GEMM, as PyTorch's own half-precision path does, and rounds each result once:
# a few ulps of the storage dtype relative to the scale.
WAVENET_BLOCK = {
    torch.float32: (2e-5, 1e-4),
    torch.float16: (4e-3, 8e-3),  # fp16 ulp = 2**-10 ~ 9.8e-4
    torch.bfloat16: (3e-2, 6e-2),  # bf16 ulp = 2**-7 ~ 7.8e-3
}

# Log-mel features (fastgan.audio, torch.stft in fp32) vs parallel_wavegan's preprocessing (librosa.stft on float64
# audio). Both take |FFT| of the same windowed frames; fp32 FFT rounding is ~1e-7 of the frame's energy, so the
# error in a mel band is bounded relative to the frame's loudest band, not to the band itself (a band 1e-6 below
# the peak may differ by ~1e-3 in log10). Stated in the linear mel domain, relative to the frame's peak band.
LOG_MEL = {"frame_peak_rtol": 1e-6, "log10_atol_loud": 1e-4, "loud_below_peak": 1e-3}


# Dilated residual steps (issue 3, part 1: MelGAN's residual stack, HiFi-GAN's ResBlock1/2):
# outputs and every gradient against a float64 composition of torch ops on the same (rounded)
# inputs, and against parallel_wavegan's layers. (atol, rtol) with atol a fraction of the expected
# tensor's largest magnitude (sums of up to C*k ~ 10^3-10^4 products need the tensor's scale).
# fp32: the kernels dot in 3xTF32 (~fp32 products) or IEEE fp32 in the interpreter, the reference
# uses oneDNN/cuDNN; another summation order over <= ~10^4 terms is ~1e-6 of the scale. fp16/bf16:
# fp32 accumulation, but LeakyReLU'd inputs, the intermediate leaky(z) and, in the backward, the
# recomputed z and dz are rounded once to the storage dtype before the next GEMM (as PyTorch's own
# half path rounds every intermediate), and each result is rounded once: a few ulps of the scale.
RESIDUAL_BLOCK = {
    torch.float32: (2e-5, 1e-4),
    torch.float16: (4e-3, 8e-3),  # fp16 ulp = 2**-10 ~ 9.8e-4
    torch.bfloat16: (3e-2, 6e-2),  # bf16 ulp = 2**-7 ~ 7.8e-3
}


# Whole vocoders (models/) against parallel_wavegan 0.6.1's models with the same state_dict:
# outputs, and every parameter's gradient, scaled to max |expected| = 1 (`assert_close_scaled`).
# A model chains up to ~40 convolutions, each within RESIDUAL_BLOCK / WAVENET_BLOCK / REDUCTION's
# fp32 bound (~1e-6..2e-5 of its scale) and computed in another summation order than oneDNN/cuDNN;
# those errors propagate through the remaining layers (whose gains are O(1) at these
# initialisations) and add: ~40 x 2e-6 typical. fp32 only: the half-precision paths are the
# modules' own tests' business.
MODELS = {torch.float32: (1e-4, 1e-4)}

# A training step's generator loss (fastgan.train) vs parallel_wavegan's trainer composition on the same weights and
# batch: sums of a few fp32 losses (multi-resolution STFT within 1e-5 relative: STFT_LOSS; mel L1 and adversarial
# terms the same ops in another order), each a mean over ~1e4..1e5 terms.
TRAIN_LOSS = {"rel": 1e-5}

# A whole (small) generator under torch.autocast(bfloat16), or cast to bf16 for inference, against its fp32
# output, relative RMS error. Each bf16
# rounding of an operand costs up to 2**-8 ~ 3.9e-3 relative, and roughly independent roundings in series add up
# as their square root: the small PWG (conv_in, 2 upsample scales, 8 gated layers of ~4 rounded stages each, skip
# sum) has ~40 stages, 3.9e-3 * sqrt(40) ~ 2.5e-2; the MelGAN/HiFi-GAN ones fewer.
AUTOCAST_BF16_REL_RMS = 3e-2
