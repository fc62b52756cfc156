"""Which implementation an op runs: the Triton kernel or the PyTorch reference.

Every op asks :func:`use_triton` once per call with its input tensor. The rule, in order:

* ``FASTGAN_BACKEND=torch`` (or ``set_backend("torch")``): always the reference.
* ``FASTGAN_BACKEND=triton``: always the kernel; a tensor the kernel cannot run on
  (a CPU tensor without ``TRITON_INTERPRET=1``, or no triton installed) raises
  :class:`BackendUnavailableError` naming the reason.
* ``auto`` (the default): the kernel for CUDA tensors, and for CPU tensors when the
  Triton interpreter is on; the reference otherwise.

``TRITON_INTERPRET`` must be set before triton (and so fastgan) is imported: triton reads it
when a kernel is decorated.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

BACKENDS = ("auto", "triton", "torch")
_ENV_VAR = "FASTGAN_BACKEND"
_override: str | None = None


class BackendUnavailableError(RuntimeError):
    """The Triton backend was forced for a tensor it cannot run on."""


def _check_name(name: str) -> str:
    name = name.strip().lower()
    if name not in BACKENDS:
        raise ValueError(f"unknown fastgan backend {name!r}; expected one of {BACKENDS}")
    return name


def set_backend(name: str | None) -> None:
    """Force ``"triton"`` or ``"torch"`` for every op, or ``"auto"``; ``None`` returns to the environment's choice."""
    global _override
    _override = None if name is None else _check_name(name)


def get_backend() -> str:
    """The backend in force: set_backend's choice, else ``$FASTGAN_BACKEND``, else ``"auto"``."""
    if _override is not None:
        return _override
    return _check_name(os.environ.get(_ENV_VAR, "auto"))


def interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").strip() not in ("", "0")


@functools.cache
def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def triton_unavailable_reason(device: torch.device) -> str | None:
    """Why the Triton kernels cannot run on ``device`` in this process, or None if they can."""
    if not triton_available():
        return "triton is not installed (pip install 'fastgan[triton]')"
    if device.type == "cuda" or (device.type == "cpu" and interpreter_enabled()):
        return None
    if device.type == "cpu":
        return "CPU tensors run Triton kernels only through the interpreter: set TRITON_INTERPRET=1 before importing fastgan"
    return f"Triton kernels do not run on {device.type} tensors"


def use_triton(tensor: torch.Tensor, op: str) -> bool:
    """True when ``op`` should launch its Triton kernel for ``tensor``."""
    backend = get_backend()
    if backend == "torch":
        return False
    reason = triton_unavailable_reason(tensor.device)
    if backend == "triton" and reason is not None:
        raise BackendUnavailableError(f"fastgan::{op}: backend 'triton' was forced, but {reason}")
    return reason is None


def path_for(device: torch.device) -> str:
    """A one-line description of the path an op takes for tensors on ``device`` (for `fastgan info`)."""
    backend = get_backend()
    if backend == "torch":
        return "torch reference (forced)"
    reason = triton_unavailable_reason(device)
    if reason is None:
        kind = "Triton interpreter" if device.type == "cpu" else "Triton kernel"
        return f"{kind}{' (forced)' if backend == 'triton' else ''}"
    if backend == "triton":
        return f"error: {reason}"
    return "torch reference"


def reference_runs_eagerly(tensor: torch.Tensor, op: str) -> bool:
    """True outside torch.compile when ``op`` would run its reference for ``tensor`` anyway.

    An op's entry function may then call the reference directly (after the same input checks):
    that skips the custom op's dispatch (~70 us a call on CPU), which matters for the small
    per-layer calls of CPU inference. Under torch.compile and tracing (ONNX export) the custom op always runs.
    """
    # Graph capture must see the op (ONNX export swaps in its traceable form).
    capturing = torch.compiler.is_compiling() or torch.jit.is_tracing()
    return not capturing and not use_triton(tensor, op)


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 inference runs at bf16 speed on ``device``: CUDA (the kernels on tensor cores), or a CPU
    with native bf16 GEMMs, where the references keep bf16 in inference (elsewhere they compute it in fp32,
    slower than fp32 inputs; see ``fastgan.references._precision``)."""
    from fastgan.references._precision import native_cpu_bf16

    return device.type == "cuda" or (device.type == "cpu" and native_cpu_bf16())


def needs_grad(*tensors: torch.Tensor | None) -> bool:
    """Whether autograd will record a call on these tensors."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
