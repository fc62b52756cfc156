"""Test set-up shared by both passes.

`make test` runs the suite twice: with TRITON_INTERPRET=0 every op takes its PyTorch fallback;
with TRITON_INTERPRET=1 every op on a CPU tensor runs its Triton kernel through the interpreter.
Tests marked ``reference`` check a reference alone and are left out of the second pass.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# Interpreter examples cost tens of ms per program: keep fuzzing small and without deadlines.
settings.register_profile(
    "fastgan",
    max_examples=int(os.environ.get("FASTGAN_HYPOTHESIS_EXAMPLES", "25")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("fastgan")

INTERPRETER = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")

# `make gpu-check` sets FASTGAN_TEST_DEVICE=cuda: tensors are then made on the GPU by default, so the
# same tests run the compiled kernels. Tests that seed a generator use torch.Generator(device=DEVICE).
DEVICE = torch.device(os.environ.get("FASTGAN_TEST_DEVICE", "cpu"))
if DEVICE.type != "cpu":
    torch.set_default_device(DEVICE)
if DEVICE.type == "cuda":
    # The oracles (cuDNN convs, cuBLAS matmuls in the references and in parallel_wavegan) must be IEEE fp32:
    # torch lets cuDNN round fp32 conv inputs to TF32 (10-bit mantissa, ~1e-3) by default, which no fp32
    # tolerance here admits. The kernels' own fp32 path is 3xTF32, near fp32 (tests/tolerances.py).
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
KERNELS_RUN = INTERPRETER or DEVICE.type == "cuda"  # ops on DEVICE tensors take the Triton path

_real_empty = torch.empty


def _nan_empty(*args, **kwargs):
    """torch.empty, filled with NaN for floating dtypes, so an unwritten output element shows."""
    tensor = _real_empty(*args, **kwargs)
    if tensor.is_floating_point():
        tensor.fill_(float("nan"))
    return tensor


@pytest.fixture(autouse=True)
def _poison_empty(monkeypatch):
    monkeypatch.setattr(torch, "empty", _nan_empty)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_report_header(config):
    import fastgan
    from fastgan import _backend

    path = _backend.path_for(DEVICE)
    return [f"fastgan {fastgan.__version__}: backend {_backend.get_backend()}, {DEVICE.type} tensors take: {path}"]
