"""Working precision of the references on CPU."""

from __future__ import annotations

import functools

import torch

HALF_DTYPES = (torch.float16, torch.bfloat16)


@functools.cache
def native_cpu_bf16() -> bool:
    """Whether this CPU runs oneDNN's bf16 convolutions and GEMMs natively (AVX512-BF16 or AMX).

    There a bf16 GEMM multiplies bf16 operands, accumulates in fp32 and rounds the result once, at
    about twice fp32's rate (measured on this project's 2-core AMD EPYC: 155-210 GFLOP/s against
    80-97 for fp32 at vocoder sizes). Without native support oneDNN emulates bf16, slower than fp32.
    """
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without the probe: assume not
        return False


def cpu_compute_dtype(x: torch.Tensor, inference: bool = False) -> torch.dtype:
    """The CPU references' working dtype for ``x``: fp32 for fp16/bf16 CPU tensors, else x's dtype;
    with ``inference`` (no autograd through the result), bf16 stays bf16 on a CPU with native bf16 GEMMs.

    Gradients compute in fp32 and round once, as the kernels do: PyTorch's CPU half-precision ops
    round every intermediate, and a gradient reads the sign of a pre-activation (LeakyReLU's
    derivative), which a rounding difference near zero flips (caught by the ResBlock1 bf16 tests).
    Inference in native bf16 rounds each conv's and GEMM's result (fp32 accumulation inside), as the
    kernels round each operand to the storage dtype before a tensor-core dot. Measured (fastgan vs
    parallel_wavegan, both bf16, 0.5 s, one thread, this project's 2-core AMD EPYC): computing in fp32
    made fastgan 1.3-1.6x slower than parallel_wavegan for no accuracy, since the error against the
    fp32 model is set by the bf16 weights and inputs (MelGAN 3.6e-3 relative either way, PWG 1.2e-2 vs
    1.4e-2). fp16 keeps fp32 (no native fp16 GEMMs on these CPUs).
    """
    if x.device.type != "cpu" or x.dtype not in HALF_DTYPES:
        return x.dtype
    if inference and x.dtype == torch.bfloat16 and native_cpu_bf16():
        return torch.bfloat16
    return torch.float32
