"""The dispatch rule: which path an op takes, and the errors when a forced path cannot run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


CORPUS_DIR = Path(__file__).resolve().parent.parent / "data" / "corpus" / "espeak_en-us"


def test_bad_backend_environment_is_one_line_for_info():
    env = {**os.environ, "FASTGAN_BACKEND": "bogus"}
    result = subprocess.run([sys.executable, "-m", "fastgan", "info"], capture_output=True, text=True, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert "FASTGAN_BACKEND" in result.stderr and "bogus" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize("command", ["vocode", "preprocess", "train", "demo"])
def test_bad_backend_environment_is_one_line_for_every_command(tmp_path, monkeypatch, capsys, command):
    """Before any work: one line naming FASTGAN_BACKEND, exit status 2 (vocode blamed the model; preprocess ran)."""
    from fastgan import cli, demo

    fastgan.set_backend(None)
    monkeypatch.setenv("FASTGAN_BACKEND", "bogus")
    out = tmp_path / "out"
    wav = str(CORPUS_DIR / "s01.wav")
    argv = {
        "vocode": ["vocode", wav, "--out", str(out), "--device", "cpu", "--no-progress"],
        "preprocess": ["preprocess", "--data", str(CORPUS_DIR), "--out", str(out), "--device", "cpu", "--no-progress"],
        "train": ["train", "--config", "melgan", "--data", str(CORPUS_DIR), "--out", str(out), "--device", "cpu"],
        "demo": ["--out", str(out), "--device", "cpu", "--no-bench"],
    }[command]
    rc = demo.main(argv) if command == "demo" else cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "FASTGAN_BACKEND" in err and "bogus" in err, err
    assert not out.exists()


def test_demo_options_all_have_help():
    from fastgan import demo

    parser = demo.build_parser()
    for action in parser._actions:
        assert action.help, action.option_strings
    text = parser.format_help()
    assert "--out" in text and "--device" in text


def test_demo_bad_device_is_one_line(tmp_path, capsys):
    from fastgan import demo

    assert demo.main(["--out", str(tmp_path / "out"), "--device", "gpu0", "--no-bench"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gpu0" in err, err
    assert not (tmp_path / "out").exists()
