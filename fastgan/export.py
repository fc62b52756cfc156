"""ONNX export of a generator through the reference path: ``fastgan.export_onnx(generator, path)``.

fastgan's custom ops (``torch.ops.fastgan.*``) have no ONNX form. While exporting, the backend is
forced to ``torch`` and every fastgan op is traced through its Python implementation — which,
with that backend, is the plain-PyTorch reference — so the ONNX graph holds only standard
operators (Conv, ConvTranspose, Pad, LeakyRelu, Tanh, ...). Weight norm is folded in a copy of
the generator first; the caller's model is not changed.

The exported graph takes ``mel`` (batch, mel_channels, frames) — plus ``noise`` (batch, 1,
frames * hop) for Parallel WaveGAN — and returns ``audio`` (batch, 1, frames * hop), with dynamic
batch and length axes. Multi-band MelGAN (``generator.pqmf`` set) includes the PQMF synthesis.
``check=True`` runs the file in onnxruntime (if installed) on a second length and compares it
with PyTorch's output.
"""

from __future__ import annotations

import contextlib
import copy
import numbers
import os
import warnings

import torch
from torch import nn

__all__ = ["export_onnx", "onnx_check"]


def copy_for_inference(generator: nn.Module) -> nn.Module:
    """A deep copy in eval mode with weight norm (either form) folded into plain weights."""
    from torch.nn.utils import parametrize
    from torch.nn.utils.weight_norm import WeightNorm

    for m in generator.modules():  # the old form caches a non-leaf ``weight`` that deepcopy refuses
        for hook in m._forward_pre_hooks.values():
            if isinstance(hook, WeightNorm) and isinstance(getattr(m, hook.name, None), torch.Tensor):
                setattr(m, hook.name, getattr(m, hook.name).detach())
    model = copy.deepcopy(generator).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in model.modules():
            for hook in list(m._forward_pre_hooks.values()):
                if isinstance(hook, WeightNorm):
                    nn.utils.remove_weight_norm(m, hook.name)
            if parametrize.is_parametrized(m, "weight"):
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _stretch_conv1d_traceable(c, taps, causal, negative_slope=None):
    """``fastgan::stretch_conv1d``'s reference with slices for ``unfold`` (which ONNX cannot take with a
    dynamic length): the same three-tap windows and the same matrix product."""
    first = -2 if causal else -1
    length = c.shape[-1]
    padded = torch.nn.functional.pad(c, (-first, 2 + first))
    windows = torch.stack([padded[..., m : m + length] for m in range(3)], dim=-1)  # (B, C, T, 3)
    out = torch.matmul(windows, taps.t().to(c.dtype)).flatten(-2)
    if negative_slope is not None:
        out = torch.nn.functional.leaky_relu(out, negative_slope)
    return out


def _leaky_dilated_residual_traceable(
    x, weight1, bias1, weight2, bias2, shortcut_weight, shortcut_bias, negative_slope, dilation, padding, causal
):
    """``fastgan::leaky_dilated_residual`` as the plain composition (the reference writes into
    preallocated buffers in place, which a trace records with the example's sizes fixed):
    ``out = conv(leaky(conv_d(pad(leaky(x))))) + residual(x)`` (see fastgan.references.residual_block)."""
    F = torch.nn.functional
    kernel = weight1.shape[-1]
    total = (kernel - 1) * dilation
    left, right = (total, 0) if causal else (total // 2, total - total // 2)
    a = F.leaky_relu(x, negative_slope)
    if left or right:
        a = F.pad(a, (left, right), mode="constant" if padding == "zeros" else padding)
    z = F.conv1d(a, weight1, bias1, dilation=dilation)
    if weight2 is not None:
        k2 = weight2.shape[-1]
        left2, right2 = (k2 - 1, 0) if causal else ((k2 - 1) // 2, k2 - 1 - (k2 - 1) // 2)
        h = F.leaky_relu(z, negative_slope)
        if left2 or right2:
            h = F.pad(h, (left2, right2))
        z = F.conv1d(h, weight2, bias2)
    residual = x if shortcut_weight is None else F.conv1d(x, shortcut_weight, shortcut_bias)
    return z + residual


def _wavenet_block_traceable(
    x, c, w_conv, b_conv, w_aux, w_out, b_out, w_skip, b_skip, skip_sum=None, dilation=1, causal=False
):
    """``fastgan::wavenet_block`` as the plain composition (the CPU reference fills preallocated
    buffers chunk by chunk, which a trace cannot follow): dilated conv (+ 1x1 aux conv) -> tanh *
    sigmoid gate -> 1x1 convs to the residual and skip outputs; ``(out + x) * sqrt(1/2)``."""
    F = torch.nn.functional
    kernel = w_conv.shape[-1]
    total = (kernel - 1) * dilation
    length = x.shape[-1]
    h = F.conv1d(x, w_conv, b_conv, padding=total if causal else total // 2, dilation=dilation)
    if causal:
        h = h[..., :length]
    if c is not None and w_aux is not None:
        h = h + F.conv1d(c, w_aux if w_aux.dim() == 3 else w_aux.unsqueeze(-1))
    a, b = h.split(h.shape[1] // 2, dim=1)
    g = torch.tanh(a) * torch.sigmoid(b)
    as_conv = lambda w: w if w.dim() == 3 else w.unsqueeze(-1)  # noqa: E731
    skip = F.conv1d(g, as_conv(w_skip), b_skip)
    if skip_sum is not None:
        skip = skip_sum + skip
    return (F.conv1d(g, as_conv(w_out), b_out) + x) * (0.5**0.5), skip


# Ops whose reference uses something ONNX cannot express (or a trace would fix the example's
# sizes in): an equivalent traceable form of the same computation.
_TRACEABLE = {
    "stretch_conv1d": _stretch_conv1d_traceable,
    "leaky_dilated_residual": _leaky_dilated_residual_traceable,
    "wavenet_block": _wavenet_block_traceable,
}


@contextlib.contextmanager
def reference_path():
    """Inside: the backend is ``torch`` and each ``torch.ops.fastgan.<op>`` runs (and traces as) its
    Python implementation, i.e. the plain-PyTorch reference, instead of an opaque custom op."""
    from torch._library.custom_ops import CustomOpDef

    import fastgan
    from fastgan import _backend
    from fastgan.ops import OPS

    namespace = torch.ops.fastgan
    saved = {name: namespace.__dict__.get(name) for name in OPS}
    previous = _backend._override
    original_call = CustomOpDef.__call__

    def python(op):
        return _TRACEABLE.get(op._name, op._init_fn)

    def call(self, *args, **kwargs):
        if self._namespace == "fastgan":
            return python(self)(*args, **kwargs)
        return original_call(self, *args, **kwargs)

    fastgan.set_backend("torch")
    try:
        for name, op in OPS.items():
            setattr(namespace, name, python(op))
        CustomOpDef.__call__ = call
        yield
    finally:
        CustomOpDef.__call__ = original_call
        for name, op in saved.items():
            if op is None:
                namespace.__dict__.pop(name, None)
            else:
                setattr(namespace, name, op)
        _backend._override = previous


class _Synthesis(nn.Module):
    """mel (B, C, T) [, noise (B, 1, T * hop)] -> audio (B, 1, T * hop), as ``inference`` computes it."""

    def __init__(self, model: nn.Module, pqmf: nn.Module | None):
        super().__init__()
        self.model = model
        self.pqmf = pqmf
        self.pwg = hasattr(model, "conv_layers") and hasattr(model, "first_conv")
        self.context = int(getattr(model, "aux_context_window", 0)) if self.pwg else 0

    def forward(self, mel: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if self.pwg:
            if self.context:
                mel = nn.functional.pad(mel, (self.context, self.context), mode="replicate")
            return self.model(noise, mel)
        audio = self.model(mel)
        if self.pqmf is not None:
            audio = self.pqmf.synthesis(audio)
        return audio


def _mel_channels(model: nn.Module) -> int:
    if hasattr(model, "aux_channels") and hasattr(model, "first_conv"):
        return int(model.aux_channels)
    for m in model.modules():
        if isinstance(m, nn.Conv1d):
            return m.in_channels
    raise ValueError(f"export_onnx: cannot tell the mel channels of {type(model).__name__}")


def export_onnx(
    generator: nn.Module,
    path: str | os.PathLike,
    *,
    frames: int = 32,
    opset: int = 17,
    check: bool = True,
    atol: float = 1e-4,
) -> str:
    """Write ``generator`` as an ONNX file at ``path`` (through the reference path); returns the path.

    ``frames``: the length of the example input used for tracing (the length axis stays dynamic).
    With ``check`` and onnxruntime installed, the file is run on ``frames + 7`` frames and must
    match PyTorch within ``atol`` (a ``RuntimeError`` says by how much otherwise).
    """
    if isinstance(frames, bool) or not isinstance(frames, numbers.Integral):
        raise TypeError(f"export_onnx: frames must be an integer, got {frames!r}")
    need = min_frames(generator)
    if frames < need:
        raise ValueError(
            f"export_onnx: frames={frames} is too short for {type(generator).__name__}, which needs at least "
            f"{need} frames (the traced example's length; the exported length axis stays dynamic)"
        )
    path = os.fspath(path)
    model = copy_for_inference(generator).cpu().float()
    pqmf = getattr(model, "pqmf", None)
    wrapper = _Synthesis(model, pqmf).eval()
    mel_channels = _mel_channels(model)
    example = _example(wrapper, mel_channels, frames)
    names = ["mel", "noise"] if wrapper.pwg else ["mel"]
    axes = {"mel": {0: "batch", 2: "frames"}, "audio": {0: "batch", 2: "samples"}}
    if wrapper.pwg:
        axes["noise"] = {0: "batch", 2: "samples"}
    # A CPU default device for the trace too: tensors a forward creates must sit with the CPU copy of the model.
    with torch.device("cpu"), reference_path(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, example, path, dynamo=False, input_names=names, output_names=["audio"],
            dynamic_axes=axes, opset_version=opset,
        )  # fmt: skip
    if check:
        error = onnx_check(generator, path, frames=frames + 7)
        if error is not None and error > atol:
            raise RuntimeError(f"export_onnx: {path} differs from PyTorch by {error:.3g} (> {atol}) in onnxruntime")
    return path


def min_frames(generator: nn.Module) -> int:
    """The fewest mel frames ``generator`` runs on: its ``min_frames`` (fastgan's generators), else derived
    the same way from its layers (parallel_wavegan's classes: reflection pads in forward order)."""
    need = getattr(generator, "min_frames", None)
    if need is None:
        from fastgan.models._common import min_input_frames

        need = min_input_frames(generator.modules())
    return int(need)


def _example(wrapper: _Synthesis, mel_channels: int, frames: int, seed: int = 0) -> tuple:
    """CPU inputs whatever the default device (the export and its check run a CPU copy of the model)."""
    g = torch.Generator().manual_seed(seed)
    mel = torch.randn(1, mel_channels, frames, generator=g, device="cpu")
    if not wrapper.pwg:
        return (mel,)
    hop = int(wrapper.model.upsample_factor)
    return (mel, torch.randn(1, 1, frames * hop, generator=g, device="cpu"))


def onnx_check(generator: nn.Module, path: str | os.PathLike, *, frames: int = 39) -> float | None:
    """Max |onnxruntime - PyTorch| on a random input of ``frames`` frames; None without onnxruntime."""
    try:
        import onnxruntime
    except ImportError:
        return None
    model = copy_for_inference(generator).cpu().float()
    wrapper = _Synthesis(model, getattr(model, "pqmf", None)).eval()
    example = _example(wrapper, _mel_channels(model), frames, seed=1)
    with torch.device("cpu"), reference_path(), torch.no_grad():
        expected = wrapper(*example).numpy()
    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), example, strict=True)}
    (got,) = session.run(["audio"], feeds)
    if got.shape != expected.shape:
        raise RuntimeError(f"onnx_check: {path} gave shape {got.shape}, PyTorch {expected.shape}")
    return float(abs(got - expected).max())
