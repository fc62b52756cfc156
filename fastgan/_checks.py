"""Input checks shared by the ops (each error names the op, the argument and what was wrong) and by the commands."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_tensor(
    op: str,
    name: str,
    tensor: object,
    *,
    ndim: int | None = None,
    dtypes: Iterable[torch.dtype] | None = None,
) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"fastgan::{op}: {name} must be a torch.Tensor, got {type(tensor).__name__}")
    if ndim is not None and tensor.dim() != ndim:
        raise ValueError(f"fastgan::{op}: {name} must have {ndim} dimensions, got shape {tuple(tensor.shape)}")
    if dtypes is not None:
        dtypes = tuple(dtypes)
        if tensor.dtype not in dtypes:
            allowed = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
            raise TypeError(f"fastgan::{op}: {name} has dtype {tensor.dtype}; supported: {allowed}")
    return tensor


def check_same_device(op: str, **tensors: torch.Tensor) -> None:
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        listed = ", ".join(f"{name} on {device}" for name, device in devices.items())
        raise ValueError(f"fastgan::{op}: tensors must be on one device, got {listed}")


def autocast_inputs(*tensors: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """Under torch.autocast on the tensors' device, cast the floating tensors to the autocast dtype,
    as autocast does for the convolutions an op replaces; otherwise return them unchanged. Custom
    ops are opaque to autocast, so each functional form that takes weights calls this first."""
    device_type = next(t.device.type for t in tensors if t is not None)
    if not torch.is_autocast_enabled(device_type):
        return tensors
    dtype = torch.get_autocast_dtype(device_type)
    return tuple(t.to(dtype) if t is not None and t.is_floating_point() else t for t in tensors)


def without_autocast(tensor: torch.Tensor):
    """A context that turns autocast off around an op whose inputs autocast_inputs already cast, so
    its reference runs in that one dtype; a no-op context when autocast is off."""
    device_type = tensor.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def one_line(error: object) -> str:
    """An error's message on one line (library messages, YAML's marks, OS errors can span several), or its type."""
    return " ".join(str(error).split()) or type(error).__name__


def usable_device(device: str | torch.device, what: str = "--device") -> torch.device:
    """``device`` as a torch.device that can hold tensors here, or a one-line ValueError naming it (``what``
    says where it came from): torch's own errors for these come from deep inside it, at first use."""
    try:
        device = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as error:
        raise ValueError(f"{what} {device!r}: not a device torch knows ({one_line(error)})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{what} {str(device)!r}: CUDA is not available here")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"{what} {str(device)!r}: there are {torch.cuda.device_count()} CUDA device(s) here")
    if device.type == "meta":
        raise ValueError(f"{what} 'meta' holds no data; give cpu or cuda")
    try:
        torch.zeros(1, device=device)
    except Exception as error:  # mps / xpu / ... builds without that backend (torch's message lists them all)
        reason = " ".join(str(error).split(". ")[0].split())[:160]
        raise ValueError(f"{what} {str(device)!r} is not usable here ({reason})") from None
    return device
