"""Loading trained generators safely: :func:`load_generator`.

Two formats are read:

* parallel_wavegan's training checkpoints (``checkpoint-400000steps.pkl``): a dict whose
  ``"model"`` holds ``"generator"`` (and ``"discriminator"``) state dicts, with the run's
  ``config.yml`` beside it (``generator_type``, ``generator_params``, ``pqmf_params`` ...), and
  optionally ``stats.h5`` / ``stats.npy`` for feature normalisation; ``fastgan train``'s checkpoints have the
  same layout with the config and stats inside (used when no ``config.yml`` / stats file is beside them);
* the original HiFi-GAN repository's generator checkpoints (``g_02500000``): ``{"generator":
  state_dict}`` with its ``config.json`` (``resblock``, ``upsample_rates``, ...), mapped onto
  :class:`fastgan.models.HiFiGANGenerator`'s keys.

A checkpoint never runs code: files are read with ``torch.load(weights_only=True)`` and YAML with a
safe loader (which also accepts the ``!!python/tuple`` tag PyYAML's default dumper writes).
"""

from __future__ import annotations

import json
import os
import pickle
import pickletools
import re
from pathlib import Path

import torch
import yaml

from fastgan._checks import one_line

PWG_GENERATORS = ("ParallelWaveGANGenerator", "MelGANGenerator", "HiFiGANGenerator")


class CheckpointError(ValueError):
    """A checkpoint or its configuration cannot be turned into a generator; the message says why.

    From :func:`load_checkpoint`, ``reason`` is the message without the file's name (for callers that name it their way).
    """

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = message if reason is None else reason


class _SafeLoaderWithTuples(yaml.SafeLoader):
    pass


_SafeLoaderWithTuples.add_constructor(
    "tag:yaml.org,2002:python/tuple", lambda loader, node: tuple(loader.construct_sequence(node))
)


def _read_yaml(path: Path) -> dict:
    try:
        with open(path) as f:
            config = yaml.load(f, Loader=_SafeLoaderWithTuples)  # noqa: S506  (a SafeLoader subclass)
    except yaml.constructor.ConstructorError as error:
        raise CheckpointError(
            f"{path}: the config holds a Python object tag that a safe loader refuses ({error.problem})"
        ) from error
    except yaml.YAMLError as error:
        raise CheckpointError(f"{path}: not valid YAML ({one_line(error)})") from error
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: cannot read the config ({one_line(error)})") from error
    return _check_mapping(config, path)


def _read_json(path: Path) -> dict:
    try:
        with open(path) as f:
            config = json.load(f)
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from error
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: cannot read the config ({one_line(error)})") from error
    return _check_mapping(config, path)


def _check_mapping(config, path: Path) -> dict:
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: expected a mapping of settings, got {type(config).__name__}")
    return config


def _read_config(config, checkpoint: Path, default_name: str) -> tuple[dict, Path | None]:
    if isinstance(config, dict):
        return config, None
    path = Path(config) if config is not None else checkpoint.parent / default_name
    if not path.exists():
        raise CheckpointError(
            f"{checkpoint}: no configuration found: expected {path}"
            + ("" if config is not None else f" (the {default_name} beside the checkpoint); pass config=...")
        )
    if path.suffix == ".json":
        return _read_json(path), path
    return _read_yaml(path), path


# Numpy dtypes a checkpoint may hold arrays of (feature statistics; the numpy RNG state of earlier fastgan runs).
_NUMPY_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                 "uint64", "bool")  # fmt: skip


def numpy_safe_globals() -> list:
    """What ``torch.load(weights_only=True)`` needs to admit plain numeric numpy arrays: they rebuild from bytes and
    a dtype, no code runs."""
    import numpy

    core = getattr(numpy, "_core", None) or numpy.core
    return [numpy.ndarray, numpy.dtype, core.multiarray._reconstruct, *(type(numpy.dtype(t)) for t in _NUMPY_DTYPES)]


def load_weights_only(path, map_location="cpu") -> object:
    """``torch.load(weights_only=True)`` that also admits numeric numpy arrays (no code runs either way)."""
    with torch.serialization.safe_globals(numpy_safe_globals()):
        return torch.load(path, map_location=map_location, weights_only=True)


_PICKLE_OPCODES = {op.code for op in pickletools.opcodes}


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> object:
    """A checkpoint file's contents via :func:`load_weights_only`, or a :class:`CheckpointError` naming the file and
    what is wrong (missing, a directory, empty, not a torch checkpoint, holds objects that would run code).

    The one checked loader behind :func:`load_generator`, ``fastgan vocode`` and training's resume: all report a bad
    file the same way."""
    path = Path(path)

    def unreadable(reason: str) -> CheckpointError:
        return CheckpointError(f"{path}: {reason}", reason)

    if not path.exists():
        raise unreadable("no such checkpoint file")
    if path.is_dir():
        raise unreadable("is a directory, not a checkpoint file")
    if path.stat().st_size == 0:
        raise unreadable("empty file, not a checkpoint")
    try:
        return load_weights_only(path, map_location)
    except pickle.UnpicklingError as error:
        opcode = re.search(r"Unsupported operand (\d+)", str(error))
        if opcode and chr(int(opcode[1])) not in _PICKLE_OPCODES:  # no pickle at all (text...), not code inside
            raise unreadable(f"not a readable torch checkpoint (not a pickle: {opcode[0]})") from error
        raise unreadable(
            "not loadable with torch.load(weights_only=True) — it holds objects other than tensors and "
            f"plain containers, and fastgan does not run code from checkpoints ({one_line(error)})"
        ) from error
    except Exception as error:  # torn zip archives, legacy pickles cut short, junk: torch raises many types
        raise unreadable(f"not a readable torch checkpoint ({type(error).__name__}: {one_line(error)})") from error


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", str(version))[:3])


def _load_state(model: torch.nn.Module, state: dict, path: Path, description: str) -> None:
    expected = set(model.state_dict())
    given = set(state)
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    if missing or unexpected:

        def show(keys):
            return ", ".join(keys[:8]) + (f" ... ({len(keys)} in all)" if len(keys) > 8 else "")

        parts = []
        if missing:
            parts.append(f"missing keys: {show(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {show(unexpected)}")
        raise CheckpointError(
            f"{path}: the {description} does not match the checkpoint's state dict; " + "; ".join(parts)
        )
    model_state = model.state_dict()
    mismatched = [
        f"{key} {tuple(value.shape)} in the checkpoint, {tuple(model_state[key].shape)} in the model"
        for key, value in state.items()
        if isinstance(value, torch.Tensor) and value.shape != model_state[key].shape
    ]
    if mismatched:
        more = f" ... ({len(mismatched)} in all)" if len(mismatched) > 4 else ""
        raise CheckpointError(
            f"{path}: the {description} does not match the checkpoint: size mismatch for "
            + "; ".join(mismatched[:4])
            + more
        )
    model.load_state_dict(state)


def _uses_weight_norm(state: dict) -> bool:
    return any(key.endswith("weight_g") for key in state)


def _load_parallel_wavegan(path: Path, checkpoint: dict, config, stats) -> torch.nn.Module:
    import fastgan.models
    from fastgan.nn import PQMF

    inside = checkpoint.get("config") if isinstance(checkpoint.get("config"), dict) else None
    if config is None and inside is not None and not (path.parent / "config.yml").exists():
        config = inside  # fastgan's trainer keeps the run's config in the checkpoint and writes no config.yml
    config, config_path = _read_config(config, path, "config.yml")
    where = config_path or ("the config inside the checkpoint" if config is inside else "the config")
    generator_type = config.get("generator_type", "ParallelWaveGANGenerator")
    if generator_type not in PWG_GENERATORS:
        raise CheckpointError(
            f"{where}: unknown generator_type {generator_type!r}; fastgan loads {', '.join(PWG_GENERATORS)}"
        )
    if "generator_params" not in config:
        raise CheckpointError(f"{where}: no generator_params")
    if not isinstance(config["generator_params"], dict):
        raise CheckpointError(
            f"{where}: generator_params must be a mapping, got {type(config['generator_params']).__name__}"
        )
    # parallel_wavegan's workaround for an old typo in its configs.
    params = {
        k.replace("upsample_kernal_sizes", "upsample_kernel_sizes"): v for k, v in config["generator_params"].items()
    }
    state = checkpoint["model"]["generator"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: model.generator is not a state dict")
    state = {k: v for k, v in state.items() if not k.startswith("pqmf.")}
    if params.get("use_weight_norm", True) and not _uses_weight_norm(state):
        params["use_weight_norm"] = False  # saved after remove_weight_norm(): plain weights
    try:
        model = getattr(fastgan.models, generator_type)(**params)
    except (TypeError, ValueError) as error:  # unknown keywords, or values the constructor rejects
        raise CheckpointError(f"{where}: generator_params do not fit {generator_type}: {error}") from error
    _load_state(model, state, path, f"{generator_type} built from {where}")

    if stats is None:
        # parallel_wavegan's rule: stats.h5 for format "hdf5", stats.npy otherwise; both tried if unset.
        fmt = config.get("format")
        exts = ("h5", "npy") if fmt is None else (("h5",) if fmt == "hdf5" else ("npy",))
        found = [path.parent / f"stats.{ext}" for ext in exts if (path.parent / f"stats.{ext}").exists()]
        stats = found[0] if found else None
    if stats is not None:
        model.register_stats(str(stats))
    elif isinstance(checkpoint.get("stats"), dict) and {"mean", "scale"} <= set(checkpoint["stats"]):
        _register_inside_stats(model, checkpoint["stats"], path)

    subbands = params.get("out_channels", 1)
    if generator_type == "MelGANGenerator" and subbands > 1:
        pqmf_params = {}
        if _version_tuple(config.get("version", "0.1.0")) <= (0, 4, 2):
            pqmf_params = {"taps": 62, "cutoff_ratio": 0.15, "beta": 9.0}  # the defaults of those versions
        model.pqmf = PQMF(subbands=subbands, **config.get("pqmf_params", pqmf_params)).to(
            next(model.parameters()).device
        )
    return model


def _register_inside_stats(model: torch.nn.Module, stats: dict, path: Path) -> None:
    """The statistics fastgan's trainer stores in its checkpoints, as the model's ``mean``/``scale`` buffers."""
    import numpy

    try:
        mean, scale = (numpy.asarray(stats[k], dtype=numpy.float32).reshape(-1) for k in ("mean", "scale"))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: stats inside the checkpoint are not numeric arrays ({error})") from error
    if mean.shape != scale.shape:
        raise CheckpointError(f"{path}: stats mean {mean.shape} and scale {scale.shape} differ in shape")
    model.register_buffer("mean", torch.from_numpy(mean.copy()))
    model.register_buffer("scale", torch.from_numpy(scale.copy()))


_HIFIGAN_KEY_MAP = [
    (re.compile(r"^conv_pre\."), "input_conv."),
    (re.compile(r"^ups\.(\d+)\."), r"upsamples.\1.1."),
    (re.compile(r"^resblocks\.(\d+)\.convs1\.(\d+)\."), r"blocks.\1.convs1.\2.1."),
    (re.compile(r"^resblocks\.(\d+)\.convs2\.(\d+)\."), r"blocks.\1.convs2.\2.1."),
    (re.compile(r"^resblocks\.(\d+)\.convs\.(\d+)\."), r"blocks.\1.convs1.\2.1."),  # ResBlock2
    (re.compile(r"^conv_post\."), "output_conv.1."),
]


def hifigan_state_dict_from_official(state: dict) -> dict:
    """The original HiFi-GAN repository's generator keys renamed to :class:`HiFiGANGenerator`'s."""
    renamed = {}
    for key, value in state.items():
        new = key
        for pattern, replacement in _HIFIGAN_KEY_MAP:
            new, hits = pattern.subn(replacement, key)
            if hits:
                break
        renamed[new] = value
    return renamed


def hifigan_params_from_official(config: dict, where) -> dict:
    """The original HiFi-GAN ``config.json`` as :class:`HiFiGANGenerator` keyword arguments."""
    required = ["resblock", "upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel",
                "resblock_kernel_sizes", "resblock_dilation_sizes"]  # fmt: skip
    missing = [key for key in required if key not in config]
    if missing:
        raise CheckpointError(f"{where}: not a HiFi-GAN config.json: missing {', '.join(missing)}")
    if str(config["resblock"]) not in ("1", "2"):
        raise CheckpointError(f"{where}: resblock must be '1' or '2', got {config['resblock']!r}")
    lists = ["upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes", "resblock_dilation_sizes"]
    not_lists = [key for key in lists if not isinstance(config[key], (list, tuple))]
    if not_lists:
        raise CheckpointError(f"{where}: {', '.join(not_lists)} must be lists")
    for a, b in (lists[:2], lists[2:]):
        if len(config[a]) != len(config[b]):
            raise CheckpointError(
                f"{where}: {a} ({len(config[a])}) and {b} ({len(config[b])}) differ in length; they pair up one to one"
            )
    scales, kernels = list(config["upsample_rates"]), list(config["upsample_kernel_sizes"])
    for scale, kernel in zip(scales, kernels, strict=True):
        if kernel != 2 * scale or scale % 2:
            raise CheckpointError(
                f"{where}: upsample rate {scale} with kernel {kernel}: HiFiGANGenerator supports kernel = 2 x rate, even rates"
            )
    return dict(
        in_channels=config.get("num_mels", 80),
        out_channels=1,
        channels=config["upsample_initial_channel"],
        kernel_size=7,
        upsample_scales=scales,
        upsample_kernel_sizes=kernels,
        resblock_kernel_sizes=list(config["resblock_kernel_sizes"]),
        resblock_dilations=[list(d) for d in config["resblock_dilation_sizes"]],
        use_additional_convs=str(config["resblock"]) == "1",
    )


def _load_official_hifigan(path: Path, checkpoint: dict, config) -> torch.nn.Module:
    from fastgan.models import HiFiGANGenerator

    config, config_path = _read_config(config, path, "config.json")
    where = config_path or "the config"
    params = hifigan_params_from_official(config, where)
    state = checkpoint["generator"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: 'generator' is not a state dict")
    state = hifigan_state_dict_from_official(state)
    try:
        model = HiFiGANGenerator(**params, use_weight_norm=_uses_weight_norm(state))
    except (TypeError, ValueError) as error:  # values of the wrong type or shape in config.json
        raise CheckpointError(f"{where}: the settings do not fit HiFiGANGenerator: {error}") from error
    _load_state(model, state, path, f"HiFiGANGenerator built from {where}")
    return model


def load_generator(
    path: str | os.PathLike,
    config: str | os.PathLike | dict | None = None,
    *,
    stats: str | os.PathLike | None = None,
    map_location="cpu",
    eval: bool = True,  # noqa: A002
) -> torch.nn.Module:
    """A :mod:`fastgan.models` generator from a parallel_wavegan or original HiFi-GAN checkpoint.

    ``config``: the run's ``config.yml`` (parallel_wavegan) or ``config.json`` (HiFi-GAN), a path or
    an already-parsed dict; by default the one beside the checkpoint. ``stats``: parallel_wavegan's
    normalisation statistics (``stats.h5``/``stats.npy`` beside the checkpoint are used when
    present). Multi-band MelGAN checkpoints get their :class:`fastgan.nn.PQMF` as ``model.pqmf``.
    The model comes back in eval mode (``eval=False`` to keep training mode), weight norm intact:
    call ``model.remove_weight_norm()`` to fold it for inference.
    """
    path = Path(path)
    model, _ = _generator_from_checkpoint(path, load_checkpoint(path, map_location), config, stats)
    return model.eval() if eval else model


def checkpoint_format(path: Path, checkpoint) -> str:
    """``"parallel_wavegan"`` or ``"hifigan"`` (the original repository's), by the loaded checkpoint's keys."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(checkpoint).__name__}")
    if isinstance(checkpoint.get("model"), dict) and "generator" in checkpoint["model"]:
        return "parallel_wavegan"
    if "generator" in checkpoint:
        return "hifigan"
    raise CheckpointError(
        f"{path}: not a generator checkpoint: expected 'model' -> 'generator' (parallel_wavegan) or "
        f"'generator' (HiFi-GAN); found keys {sorted(map(str, checkpoint))[:10]}"
    )


# The config file each format keeps beside its checkpoints.
CONFIG_NAMES = {"parallel_wavegan": "config.yml", "hifigan": "config.json"}


def _generator_from_checkpoint(path: Path, checkpoint, config, stats) -> tuple[torch.nn.Module, str]:
    """The generator of an already loaded checkpoint, and its format (shared with ``fastgan vocode``)."""
    kind = checkpoint_format(path, checkpoint)
    if kind == "parallel_wavegan":
        return _load_parallel_wavegan(path, checkpoint, config, stats), kind
    return _load_official_hifigan(path, checkpoint, config), kind
