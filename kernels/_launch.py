"""Shared launch helpers and the description of every configuration a launcher can use.

Each kernel module lists its configurations through ``aot_specs()`` so that the ahead-of-time
compile check (``tests/aot_compile.py``) can build every one of them for sm_90
without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

TRITON_DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


@dataclass(frozen=True)
class KernelSpec:
    """One compilable configuration: the jit function, its argument types and constexpr values."""

    kernel: Any
    signature: dict[str, str]
    constexprs: dict[str, Any]
    num_warps: int = 4
    num_stages: int = 3
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return getattr(self.kernel, "__name__", None) or self.kernel.fn.__name__


def half_precision_dots(tensor: torch.Tensor) -> bool:
    """Whether a kernel gives tl.dot fp16/bf16 operands as they are (tensor cores, fp32 accumulation).

    fp32 tensors: no, their dots run as 3xTF32 (about fp32 accuracy). bf16 on CPU, which only the
    Triton interpreter runs: no either, its bf16 dot is wrong, so the operands are widened to fp32
    (its fp16 dot multiplies in fp32, as the tensor cores do). Every launcher asks this one rule.
    """
    if tensor.dtype == torch.float32:
        return False
    return not (tensor.dtype == torch.bfloat16 and tensor.device.type == "cpu")


def contiguous(*tensors: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """The given tensors, each made contiguous (the same tensor when it already is; None stays None).

    For the tensors a kernel indexes by position alone, ignoring their strides (biases, shift
    vectors, ...): a launcher passes them through this where it receives them, so that a strided
    view (``b[::2]``, a column of a matrix) reads the right elements instead of its neighbours'.
    """
    return tuple(None if tensor is None else tensor.contiguous() for tensor in tensors)


def next_power_of_2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def _fix_interpreter_scalar_index() -> None:
    """Let ``range(0, n)`` over a runtime int argument run in the Triton interpreter on NumPy >= 2.3.

    The interpreter (triton 3.6) wraps scalar arguments as 1-element 1-D arrays and converts them
    with ``int(array)``, which current NumPy rejects ("only 0-dimensional arrays can be converted").
    The GPU compiler is unaffected; this only teaches the interpreter's ``__index__`` to take ``.item()``.
    """
    import os

    if os.environ.get("TRITON_INTERPRET", "0").strip() in ("", "0"):
        return
    from triton.runtime import interpreter

    original = getattr(interpreter, "_patch_lang_tensor", None)
    if original is None or getattr(original, "_fastgan_fixed", False):
        return  # another Triton release: its interpreter has no such hook (and may not need one)

    def patched(tensor, scope):
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

    patched._fastgan_fixed = True
    interpreter._patch_lang_tensor = patched


_fix_interpreter_scalar_index()
