"""What every parallel_wavegan-compatible model here shares: weight norm (the form whose
``weight_g``/``weight_v`` keys parallel_wavegan's checkpoints hold), removing/folding it for
inference, de-normalisation statistics, and the (frames, features) ``inference`` convention."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm

from fastgan.nn import ConvTranspose1d
from fastgan.nn._weight_norm import fold_weight_norm, has_weight_norm


def apply_weight_norm(module: nn.Module, types: tuple[type, ...]) -> None:
    """``torch.nn.utils.weight_norm`` (keys ``weight_g``, ``weight_v``) on every submodule of ``types``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated in favour of parametrizations; keys differ
        for m in module.modules():
            if isinstance(m, types) and not has_weight_norm(m):
                nn.utils.weight_norm(m)


def apply_spectral_norm(module: nn.Module, types: tuple[type, ...]) -> None:
    for m in module.modules():
        if isinstance(m, types):
            nn.utils.spectral_norm(m)


def remove_weight_norm(module: nn.Module) -> None:
    """Fold weight norm (either form) into plain weights everywhere under ``module``, in place."""
    fold_weight_norm(module)


def remove_spectral_norm(module: nn.Module) -> None:
    for m in module.modules():
        if any(isinstance(h, SpectralNorm) for h in m._forward_pre_hooks.values()):
            nn.utils.remove_spectral_norm(m)


def normal_init(module: nn.Module, std: float) -> None:
    """parallel_wavegan's ``reset_parameters``: conv weights ~ N(0, std).

    Like parallel_wavegan, this writes the ``weight`` tensor, which weight norm recomputes from
    ``weight_g``/``weight_v`` on the next call when it is applied: same behaviour either way.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
            m.weight.data.normal_(0.0, std)


def leaky_slope(activation: nn.Module) -> float | None:
    """The slope of a plain LeakyReLU module (fusable into the next layer), else None."""
    return float(activation.negative_slope) if type(activation) is nn.LeakyReLU else None


def upsample_conv(activation: nn.Module, *args, **kwargs) -> ConvTranspose1d:
    """A :class:`fastgan.nn.ConvTranspose1d` that fuses ``activation`` when it is a LeakyReLU.

    The activation module stays in the model's module list (the state_dict keys count on it);
    the forward skips it when the conv took its slope (see :func:`run_sequential`).
    """
    return ConvTranspose1d(*args, negative_slope=leaky_slope(activation), **kwargs)


def fused_into_next(layers: list[nn.Module], index: int) -> bool:
    """True when ``layers[index]`` is a LeakyReLU that the transposed conv after it applies itself."""
    if index + 1 >= len(layers) or leaky_slope(layers[index]) is None:
        return False
    follower = layers[index + 1]
    follower = getattr(follower, "deconv", follower)  # causal wrapper: replicate pad commutes with leaky
    return isinstance(follower, ConvTranspose1d) and follower.negative_slope == leaky_slope(layers[index])


def run_layers(layers, x: torch.Tensor) -> torch.Tensor:
    """Run a module list in order, skipping the LeakyReLUs fused into the transposed conv after them.

    Without autograd, plain activations run in place (their input is a temporary).
    """
    layers = list(layers)
    grad = torch.is_grad_enabled()
    for i, layer in enumerate(layers):
        if fused_into_next(layers, i):
            continue
        inplace = not grad and i > 0  # never overwrite the caller's tensor
        if inplace and type(layer) is nn.LeakyReLU:
            x = torch.nn.functional.leaky_relu_(x, layer.negative_slope)
        elif inplace and type(layer) is nn.Tanh:
            x = x.tanh_()
        elif inplace and type(layer) is nn.ReLU:
            x = x.relu_()
        else:
            x = layer(x)
    return x


def min_input_frames(modules: Iterable[nn.Module]) -> int:
    """The fewest input frames a generator's layers run on, from ``modules`` in the order the forward
    runs them (nested modules included, as ``Module.modules()`` lists them).

    Every layer needs at least one frame; a reflection pad of ``p`` samples needs more than ``p``
    samples where it runs, i.e. ``frames * scale > p`` with ``scale`` the product of the strides of
    the transposed convs before it (each stage's length is exactly ``frames * scale``).
    """
    scale, need = 1, 1
    for m in modules:
        if isinstance(m, nn.ConvTranspose1d):
            scale *= int(m.stride[0])
        elif isinstance(m, nn.ReflectionPad1d):
            need = max(need, max(m.padding) // scale + 1)
        elif isinstance(m, nn.Conv1d) and m.padding_mode == "reflect" and isinstance(m.padding, tuple):
            need = max(need, m.padding[0] // scale + 1)
    return need


def _autocast_takes(t: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether autocast (enabled for ``t``'s device) casts ``t`` and weights of ``dtype`` to a common dtype:
    it casts floating tensors other than float64."""
    if torch.float64 in (t.dtype, dtype):
        return False
    return torch.is_autocast_enabled(t.device.type)


class GeneratorMixin:
    """``remove_weight_norm``, ``register_stats`` and parallel_wavegan's ``inference`` input handling."""

    def remove_weight_norm(self) -> None:
        """Fold weight norm into plain weights (the deploy-time fold: weights computed once, not per call)."""
        remove_weight_norm(self)

    fold_weight_norm = remove_weight_norm

    def register_stats(self, stats: str) -> None:
        """De-normalisation statistics (``.h5`` with ``mean``/``scale``, or ``.npy`` holding [mean, scale])."""
        if stats.endswith(".h5"):
            import h5py

            with h5py.File(stats, "r") as f:
                mean = np.asarray(f["mean"]).reshape(-1)
                scale = np.asarray(f["scale"]).reshape(-1)
        elif stats.endswith(".npy"):
            loaded = np.load(stats, allow_pickle=False)
            mean, scale = loaded[0].reshape(-1), loaded[1].reshape(-1)
        else:
            raise ValueError(f"{type(self).__name__}.register_stats: expected a .h5 or .npy file, got {stats!r}")
        self.register_buffer("mean", torch.from_numpy(mean).float())
        self.register_buffer("scale", torch.from_numpy(scale).float())

    #: The fewest frames ``forward``/``inference`` take (each generator derives it from its layers).
    min_frames: int = 1

    def _feature_channels(self) -> int:
        return self.in_channels

    def _check_tensor(self, name: str, t: torch.Tensor, where: str) -> None:
        """``t``'s dtype and device against the model's parameters (metadata only: no device sync)."""
        if not t.is_floating_point():
            raise TypeError(f"{where}: {name} must be a floating-point tensor, got dtype {t.dtype}")
        parameter = next(self.parameters(), None)
        if parameter is None:
            return
        if t.device != parameter.device:
            raise ValueError(
                f"{where}: {name} is on {t.device}, the model's parameters on {parameter.device}; "
                f"move it with .to({str(parameter.device)!r})"
            )
        if t.dtype != parameter.dtype and not _autocast_takes(t, parameter.dtype):
            raise TypeError(
                f"{where}: {name} has dtype {t.dtype}, the model's parameters {parameter.dtype}; "
                f"cast it with .to({parameter.dtype}) (or the model, or run under torch.autocast)"
            )

    def _check_frames(self, c: torch.Tensor, frames: int, where: str) -> None:
        if frames < self.min_frames:
            raise ValueError(
                f"{where}: too short: {int(frames)} frames, this model needs at least {self.min_frames} "
                f"(got shape {tuple(int(d) for d in c.shape)})"
            )

    def _check_forward(self, c: torch.Tensor, where: str = "forward") -> None:
        """``forward``'s features: (batch, channels, frames), or unbatched (channels, frames) as torch's layers take."""
        where = f"{type(self).__name__}.{where}"
        channels = self._feature_channels()
        if not isinstance(c, torch.Tensor):
            raise TypeError(f"{where}: c must be a tensor (batch, {channels}, frames), got {type(c).__name__}")
        if c.dim() not in (2, 3) or c.shape[-2] != channels:
            shape = tuple(int(d) for d in c.shape)
            raise ValueError(f"{where}: c must be (batch, {channels}, frames), got shape {shape}")
        self._check_tensor("c", c, where)
        self._check_frames(c, c.shape[-1], where)

    def _features(self, c, normalize_before: bool) -> torch.Tensor:
        """(frames, features) array or tensor -> (1, features, frames) on the model's device.

        Arrays become the model's floats on its device (parallel_wavegan's conversion); a tensor must
        already match the model's device and dtype, as parallel_wavegan needs too.
        """
        where = f"{type(self).__name__}.inference"
        channels = self._feature_channels()
        parameter = next(self.parameters())
        if not isinstance(c, torch.Tensor):
            dtype = parameter.dtype if parameter.is_floating_point() else torch.float
            c = torch.tensor(np.asarray(c), dtype=dtype, device=parameter.device)
        if c.dim() != 2 or c.shape[1] != channels:
            hint = " (it looks transposed: pass (frames, features))" if c.dim() == 2 and c.shape[0] == channels else ""
            raise ValueError(f"{where}: c must be (frames, {channels}), got shape {tuple(c.shape)}{hint}")
        self._check_tensor("c", c, where)
        self._check_frames(c, c.shape[0], where)
        if normalize_before:
            if not hasattr(self, "mean"):
                raise ValueError(f"{where}: normalize_before needs register_stats first")
            c = (c - self.mean) / self.scale
        return c.transpose(1, 0).unsqueeze(0)


def check_num_classes(owner: str, num_classes: int | None) -> None:
    """A conditional model needs at least two classes (None: unconditional)."""
    integral = isinstance(num_classes, numbers.Integral) and not isinstance(num_classes, bool)
    if num_classes is not None and (not integral or num_classes < 2):
        raise ValueError(f"{owner}: num_classes must be an integer >= 2, got {num_classes!r}")


def checked_labels(owner: nn.Module, labels: torch.Tensor | None, batch: int) -> torch.Tensor | None:
    """``labels`` as a conditional model's embedding needs them: (batch,) integers in [0, owner.num_classes),
    None for an unconditional model (``owner.num_classes`` None); anything else is a clear error (an
    out-of-range index would be an IndexError on CPU and a device-side assert on CUDA)."""
    name, classes = type(owner).__name__, owner.num_classes
    if classes is None:
        if labels is not None:
            raise ValueError(f"{name}: labels given, but the model was built without num_classes")
        return None
    if labels is None:
        raise ValueError(f"{name}: this model is conditional (num_classes set): pass labels")
    if not isinstance(labels, torch.Tensor) or labels.shape != (batch,) or labels.is_floating_point():
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        dtype = f" {labels.dtype}" if isinstance(labels, torch.Tensor) else ""
        raise ValueError(f"{name}: labels must be ({batch},) integers, one per example, got{dtype} {shape}")
    if not torch.compiler.is_compiling() and bool(((labels < 0) | (labels >= classes)).any()):
        raise ValueError(
            f"{name}: labels must be in [0, {classes}), got values {labels.min().item()}..{labels.max().item()}"
        )
    return labels
