"""The dispatch rule: which path an op takes, and the errors when a forced path cannot run."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import fastgan
from fastgan import _backend
from tests.conftest import DEVICE, INTERPRETER, KERNELS_RUN


def test_this_pass_takes_the_intended_path():
    """Guard against a pass that silently tests the reference twice."""
    x = torch.zeros(1, 1, 4, device=DEVICE)
    assert _backend.use_triton(x, "test") == KERNELS_RUN


@pytest.fixture
def restore_backend():
    yield
    fastgan.set_backend(None)


def test_set_backend_torch_forces_reference(restore_backend):
    fastgan.set_backend("torch")
    assert fastgan.get_backend() == "torch"
    assert not _backend.use_triton(torch.zeros(1), "test")


def test_unknown_backend_is_rejected(restore_backend):
    with pytest.raises(ValueError, match="unknown fastgan backend 'cuda'"):
        fastgan.set_backend("cuda")


def test_environment_variable_is_read(monkeypatch, restore_backend):
    monkeypatch.setenv("FASTGAN_BACKEND", "torch")
    assert fastgan.get_backend() == "torch"
    monkeypatch.setenv("FASTGAN_BACKEND", "bogus")
    with pytest.raises(ValueError, match="bogus"):
        fastgan.get_backend()


@pytest.mark.skipif(INTERPRETER, reason="with the interpreter on, triton runs CPU tensors")
def test_forced_triton_on_cpu_without_interpreter_is_a_clear_error(restore_backend):
    fastgan.set_backend("triton")
    x = torch.randn(2, 3, 8, device="cpu")
    with pytest.raises(fastgan.BackendUnavailableError, match="TRITON_INTERPRET=1"):
        fastgan.functional.phase_shuffle(x, torch.zeros(2, dtype=torch.int64, device="cpu"))


def test_ops_are_registered():
    for name in fastgan.ops.OPS:
        assert hasattr(torch.ops.fastgan, name), name
        assert hasattr(torch.ops.fastgan, f"{name}_backward"), name


def test_info_command_lists_every_op():
    result = subprocess.run([sys.executable, "-m", "fastgan", "info"], capture_output=True, text=True, check=True)
    for name in fastgan.ops.OPS:
        assert name in result.stdout
    assert "torch" in result.stdout
    native = _backend.native_bf16(torch.device("cpu"))
    assert ("bf16 native" if native else "bf16 not native") in result.stdout
