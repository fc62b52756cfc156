"""Working precision of the references on CPU."""

from __future__ import annotations

import torch

HALF_DTYPES = (torch.float16, torch.bfloat16)


def cpu_compute_dtype(x: torch.Tensor) -> torch.dtype:
    """fp32 for half-precision CPU tensors, else x's dtype.

    PyTorch's CPU half-precision convs and GEMMs are slow and round every intermediate (a conv output
    feeding a LeakyReLU gate can flip its sign), so the CPU references compute in fp32 and round once,
    as the kernels do (fp32 accumulation, one rounding at the store).
    """
    if x.device.type == "cpu" and x.dtype in HALF_DTYPES:
        return torch.float32
    return x.dtype
