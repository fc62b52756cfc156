"""One training loop for every fastgan model, configured by a YAML file with parallel_wavegan's keys.

Two families share the loop (:class:`Trainer`):

* **vocoders** (MelGAN, Parallel WaveGAN, HiFi-GAN V1-V3, Multi-band MelGAN): log-mels -> waveform. The step
  follows parallel_wavegan 0.6.1's ``bin/train.py``: the generator's auxiliary losses (multi-resolution STFT,
  sub-band STFT with the 0.5/0.5 balance, mel L1), times ``lambda_aux``; after ``discriminator_train_start_steps``
  the adversarial loss (plus ``lambda_feat_match`` x feature matching) times ``lambda_adv``; then one discriminator
  step on a fresh prediction. Features are computed on the training device from each segment's audio context
  (:mod:`fastgan.data`) and normalised with the corpus statistics (``stats`` key, or computed at the start).
* **WGAN-GP** (WaveGAN, conditional WaveGAN, controllable WaveGAN with an auxiliary classifier, SpecGAN):
  ``critic_steps`` (5) critic updates, each on a fresh real batch, with the gradient penalty (lambda = 10), then one
  generator update.

Checkpoints (``checkpoint-<steps>steps.pkl``, parallel_wavegan's layout: ``model``/``optimizer``/``scheduler``/
``steps`` plus fastgan's ``rng``, ``samples``, ``config``, ``stats``) are written to a temporary file and renamed;
they hold only tensors and plain containers, so ``fastgan vocode --checkpoint`` and :func:`fastgan.load_generator`
read them with ``torch.load(weights_only=True)`` (config and stats inside). ``resume=True`` restores models,
optimisers, schedulers, RNG states and the data position, so a resumed run matches an uninterrupted one; an
unreadable newest checkpoint is skipped (with a warning) for the next-newest, and the config's optimizer and
scheduler settings take effect (see :meth:`Trainer._load`). A fresh run refuses an ``out`` that already holds
checkpoints. SIGINT (Ctrl-C) or SIGTERM (a scheduler's preemption) stops the run after the
step in progress, with a checkpoint at that step (a second SIGINT stops at once). A non-finite loss stops the run
before any parameter update with
:class:`NonFiniteLossError` naming the step and the loss; no checkpoint is written after it. Losses go to a
progress bar, ``losses.csv`` and, when the ``tensorboard`` package is installed, TensorBoard scalars.
Multi-GPU / multi-node: launch with ``torchrun``; DistributedDataParallel, per-rank data streams, rank-0 logging
and checkpoints.
"""

from __future__ import annotations

import collections
import copy
import csv
import logging
import math
import os
import random
import re
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from fastgan import losses as L
from fastgan._checks import one_line, usable_device
from fastgan.audio import LogMelSpectrogram, MelConfig, MelStats, compute_stats, load_stats, normalize, save_stats
from fastgan.checkpoints import CheckpointError, _load_state

__all__ = ["ConfigError", "NonFiniteLossError", "Trainer", "load_config", "latest_checkpoint", "load_generator"]

log = logging.getLogger("fastgan.train")

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

# parallel_wavegan's defaults for keys a config may leave out
DEFAULTS = {
    "window": "hann",
    "win_length": None,
    "num_mels": 80,
    "fmin": 80,
    "fmax": 7600,
    "generator_params": {},
    "discriminator_params": {},
    "use_stft_loss": True,
    "stft_loss_params": {},
    "use_subband_stft_loss": False,
    "subband_stft_loss_params": {
        "fft_sizes": [384, 683, 171],
        "hop_sizes": [30, 60, 10],
        "win_lengths": [150, 300, 60],
    },
    "use_mel_loss": False,
    "mel_loss_params": {},
    "use_feat_match_loss": False,
    "feat_match_loss_params": {},
    "generator_adv_loss_params": {},
    "discriminator_adv_loss_params": {},
    "lambda_aux": 1.0,
    "lambda_adv": 4.0,
    "lambda_feat_match": 25.0,
    "pqmf_params": {},
    "generator_optimizer_type": "Adam",
    "generator_optimizer_params": {"lr": 1e-4},
    "generator_scheduler_type": "StepLR",
    "generator_scheduler_params": {"step_size": 10**9, "gamma": 0.5},
    "generator_grad_norm": -1,
    "discriminator_optimizer_type": "Adam",
    "discriminator_optimizer_params": {"lr": 1e-4},
    "discriminator_scheduler_type": "StepLR",
    "discriminator_scheduler_params": {"step_size": 10**9, "gamma": 0.5},
    "discriminator_grad_norm": -1,
    "discriminator_train_start_steps": 0,
    "generator_train_start_steps": 0,
    "num_workers": 0,
    "pin_memory": False,
    "save_interval_steps": 1000,
    "eval_interval_steps": 1000,
    "log_interval_steps": 100,
    "keep_checkpoints": 3,
    "seed": 1,
    "amp": None,  # "bf16": bf16 autocast of the model forwards (CUDA, or CPU where it is asked for)
    # WGAN-GP family (fastgan keys)
    "critic_steps": L.WGAN_CRITIC_STEPS,
    "gradient_penalty_weight": L.WGAN_GP_WEIGHT,
    "classifier_type": None,
    "classifier_params": {},
    "classifier_optimizer_type": "Adam",
    "classifier_optimizer_params": {"lr": 1e-4, "betas": [0.5, 0.9]},
    "lambda_ac": 1.0,
    "specgan_fit_batches": 8,
}

REQUIRED = (
    "sampling_rate",
    "fft_size",
    "hop_size",
    "generator_type",
    "batch_size",
    "batch_max_steps",
    "train_max_steps",
)
WGAN_GENERATORS = ("WaveGANGenerator", "SpecGANGenerator")


class ConfigError(ValueError):
    """A config that cannot be trained: the message names the file and the key."""


class NonFiniteLossError(RuntimeError):
    """A loss became inf or NaN; the run stopped before using it."""


# Top-level keys fastgan does not use but a config may carry without a warning: parallel_wavegan's (its recipes'
# feature and data keys, and the command-line arguments its trainer dumps into config.yml) and fastgan's own.
KNOWN_KEYS = {
    *DEFAULTS, *REQUIRED, "discriminator_type", "stats", "allow_cache", "transform_params", "format", "version",
    "global_gain_scale", "trim_silence", "trim_threshold_in_db", "trim_frame_size", "trim_hop_size",
    "remove_short_samples", "num_save_intermediate_results", "sampling_rate_for_feats", "offset", "reduction",
    "update_prediction_after_generator_update", "use_global_condition", "use_local_condition", "use_duration_loss",
    "duration_loss_params", "lambda_commit", "log_base", "distributed", "rank", "world_size", "outdir", "config",
    "resume", "pretrain", "verbose", "dumpdir", "rootdir", "train_dumpdir", "dev_dumpdir", "train_wav_scp",
    "dev_wav_scp", "train_feats_scp", "dev_feats_scp", "train_segments", "dev_segments", "allow_different_sampling_rate",
    "skip_mel_ext",
}  # fmt: skip

# Range checks: (key, minimum) for integer counts and sizes; a 0 interval would divide by zero at the first step.
INT_KEYS = {
    "sampling_rate": 1, "fft_size": 1, "hop_size": 1, "num_mels": 1, "batch_size": 1, "batch_max_steps": 1,
    "train_max_steps": 1, "save_interval_steps": 1, "eval_interval_steps": 1, "log_interval_steps": 1,
    "keep_checkpoints": 0, "num_workers": 0, "seed": 0, "critic_steps": 1, "specgan_fit_batches": 1,
    "discriminator_train_start_steps": None, "generator_train_start_steps": None,  # -1: from the first step
}  # fmt: skip
NUMBER_KEYS = ("fmin", "lambda_aux", "lambda_adv", "lambda_feat_match", "lambda_ac", "gradient_penalty_weight",
               "generator_grad_norm", "discriminator_grad_norm")  # fmt: skip
BOOL_KEYS = ("use_stft_loss", "use_subband_stft_loss", "use_mel_loss", "use_feat_match_loss", "pin_memory",
             "allow_cache")  # fmt: skip
MAPPING_KEYS = tuple(k for k, v in DEFAULTS.items() if isinstance(v, dict)) + ("transform_params",)
TYPE_KEYS = ("generator_type", "discriminator_type", "generator_optimizer_type", "discriminator_optimizer_type",
             "generator_scheduler_type", "discriminator_scheduler_type", "classifier_optimizer_type")  # fmt: skip


def _merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        out[key] = value
    return out


def _apply_overrides(raw: dict, overrides: dict, name: str) -> None:
    """Top-level keys replace; a dotted key (``generator_params.channels``, from ``--set``) sets one nested key and
    keeps the rest of its mapping (taken from the defaults when the config leaves the mapping out)."""
    for key, value in (overrides or {}).items():
        if "." not in key:
            raw[key] = value
            continue
        parts = key.split(".")
        if not all(parts):
            raise ConfigError(f"--set {key}: an empty key between dots")
        if parts[0] not in raw and isinstance(DEFAULTS.get(parts[0]), dict):
            raw[parts[0]] = copy.deepcopy(DEFAULTS[parts[0]])
        node = raw
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(f"--set {key}: {where} is not a mapping ({name} has {where}={child!r})")
            node = child
        node[parts[-1]] = value


def _warn_unknown_keys(config: dict, name: str) -> None:
    import difflib

    for key in sorted(k for k in config if not k.startswith("_") and k not in KNOWN_KEYS):
        close = difflib.get_close_matches(key, sorted(KNOWN_KEYS), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        log.warning("%s: unknown config key %s is ignored%s", name, key, hint)


def _check_types(config: dict, name: str) -> None:
    """Values of the wrong type or range, named now rather than as a traceback from deep inside a step."""

    def fail(key, expected):
        raise ConfigError(f"{name}: {key} must be {expected}, got {config[key]!r}")

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    def is_number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    for key, minimum in INT_KEYS.items():
        if key in config and not (is_int(config[key]) and (minimum is None or config[key] >= minimum)):
            fail(key, "an integer" if minimum is None else f"an integer >= {minimum}")
    for key in NUMBER_KEYS:
        if key in config and not is_number(config[key]):
            fail(key, "a number")
    if config.get("fmax") is not None and not is_number(config["fmax"]):
        fail("fmax", "a number or null")
    if config.get("win_length") is not None and not (is_int(config["win_length"]) and config["win_length"] >= 1):
        fail("win_length", "an integer >= 1 or null")
    for key in BOOL_KEYS:
        if key in config and not isinstance(config[key], bool):
            fail(key, "true or false")
    for key in MAPPING_KEYS:
        if key in config and not isinstance(config[key], dict):
            fail(key, "a mapping")
    for key in TYPE_KEYS:
        if key in config and not isinstance(config[key], str):
            fail(key, "a name (a string)")
    if config.get("classifier_type") is not None and not isinstance(config["classifier_type"], str):
        fail("classifier_type", "a name (a string) or null")


def load_config(path: str | os.PathLike | dict, overrides: dict | None = None) -> dict:
    """Read a YAML config (or take a dict), apply ``overrides`` and the defaults, and check the keys.

    A ``path`` without a folder that does not exist is looked up in fastgan's ``configs/`` (``melgan`` or
    ``melgan.yaml``). An override ``a.b`` sets the nested key ``b`` of ``a``. Values of the wrong type or range are a
    :class:`ConfigError` naming the key; unknown top-level keys (typos) get a warning, with the closest known key.
    """
    import yaml

    if isinstance(path, dict):
        name, raw = str(path.get("_source", "<dict>")), copy.deepcopy(path)
    else:
        p = Path(path)
        if not p.exists() and p.parent == Path("."):
            candidate = CONFIG_DIR / (p.name if p.suffix else p.name + ".yaml")
            p = candidate if candidate.exists() else p
        if not p.exists():
            raise ConfigError(
                f"config {path} does not exist (bundled: {', '.join(sorted(c.stem for c in CONFIG_DIR.glob('*.yaml')))})"
            )
        name = str(p)
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{name}: not valid YAML ({one_line(error)})") from error
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{name}: cannot read the config ({error})") from error
        if not isinstance(raw, dict):
            raise ConfigError(f"{name}: the top level must be a mapping of keys, got {type(raw).__name__}")
    _apply_overrides(raw, overrides, name)
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise ConfigError(f"{name}: missing required config key(s): {', '.join(missing)}")
    config = _merge(DEFAULTS, raw)
    config["_source"] = name
    _warn_unknown_keys(config, name)  # first: a typo may be why a value below is missing or wrong
    _check_types(config, name)
    if config["batch_max_steps"] % config["hop_size"] != 0:
        raise ConfigError(
            f"{name}: batch_max_steps={config['batch_max_steps']} must be a multiple of hop_size={config['hop_size']}"
        )
    if config["generator_type"] not in WGAN_GENERATORS and "discriminator_type" not in config:
        raise ConfigError(f"{name}: missing required config key: discriminator_type")
    if config["amp"] not in (None, "bf16"):
        raise ConfigError(f"{name}: amp={config['amp']!r}: use bf16 (autocast of the model forwards) or leave it out")
    return config


def _model_class(name: str, key: str, source: str):
    import fastgan.models as models

    cls = getattr(models, name, None)
    if cls is None or not isinstance(cls, type):
        raise ConfigError(f"{source}: {key}={name!r} is not a model in fastgan.models")
    return cls


def _build(cls, params: dict, key: str, source: str, *args):
    """``cls(*args, **params)``; a parameter it does not take (a typo) or a value it refuses is a ConfigError
    naming the config key, not a traceback from inside the constructor."""
    try:
        return cls(*args, **params)
    except (TypeError, ValueError, AssertionError, KeyError) as error:
        message = one_line(error)
        raise ConfigError(f"{source}: {key} do not fit {cls.__name__}: {message}") from error


def _constructor_default(cls, name: str):
    import inspect

    parameter = inspect.signature(cls).parameters.get(name)
    return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default


def _check_finite(step: int, values: dict[str, float]):
    for name, value in values.items():
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"step {step}: loss {name} is {value}; the run stopped before using it (no checkpoint written)"
            )


# ---------------------------------------------------------------------------------------------------------------------
# The data stream: batch k of rank r holds the positions [(k * world + r) * B, ... + B) of one endless sequence,
# each position naming (a file from the permutation of its epoch, a segment draw) -- a pure function of the seed,
# so a resumed run (or one with another worker count) sees the same batches.


class _Stream(torch.utils.data.Sampler):
    def __init__(self, n: int, batch_size: int, seed: int, start_batch: int = 0, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_batch, self.rank, self.world = start_batch, rank, world
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            self._perms = {epoch: torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch))}
        return self._perms[epoch]

    def __iter__(self):
        k = self.start_batch
        while True:
            first = (k * self.world + self.rank) * self.batch_size
            for pos in range(first, first + self.batch_size):
                yield int(self._perm(pos // self.n)[pos % self.n]), pos
            k += 1


def _rng_state() -> dict:
    """The global RNG states in weights-only form (tensors, ints, floats): a checkpoint must load with
    ``torch.load(weights_only=True)`` (``fastgan vocode``, :func:`fastgan.load_generator`), and numpy's state is a
    uint32 array that such a load refuses."""
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),  # uint32 values: exact in int64
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": random.getstate(),  # (version, tuple of ints, float or None): plain containers
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict):
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    if isinstance(numpy_state, dict):
        keys = np.asarray(numpy_state["keys"], dtype=np.int64).astype(np.uint32)
        numpy_state = (numpy_state["name"], keys, numpy_state["pos"], numpy_state["has_gauss"],
                       numpy_state["cached_gaussian"])  # fmt: skip
    np.random.set_state(numpy_state)  # else the tuple of checkpoints written before the weights-only layout
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


CHECKPOINT_RE = re.compile(r"checkpoint-(\d+)steps\.pkl$")


def latest_checkpoint(out: str | os.PathLike) -> Path | None:
    """The checkpoint with the most steps in ``out`` (temporary files are never matched)."""
    found = [
        (int(m.group(1)), p) for p in Path(out).glob("checkpoint-*steps.pkl") if (m := CHECKPOINT_RE.search(p.name))
    ]
    return max(found)[1] if found else None


def load_generator(checkpoint: str | os.PathLike, device: str | torch.device = "cpu", config=None, stats=None):
    """(generator in eval mode, config, MelStats or None) from a fastgan or parallel_wavegan checkpoint.

    A parallel_wavegan checkpoint keeps its config beside it: pass ``config`` (its ``config.yml`` path or a dict)
    and ``stats`` (its ``stats.h5`` / ``stats.npy``) when the checkpoint holds none.
    """
    import yaml

    from fastgan.checkpoints import load_weights_only

    state = load_weights_only(checkpoint)  # a checkpoint never runs code
    if config is None:
        config = state.get("config")
    elif not isinstance(config, dict):
        config = yaml.safe_load(Path(config).read_text())
    if config is None:
        raise ConfigError(f"{checkpoint}: no config inside (a parallel_wavegan checkpoint needs its config.yml)")
    cls = _model_class(config["generator_type"], "generator_type", str(checkpoint))
    generator = cls(**config.get("generator_params", {}))
    generator.load_state_dict(state["model"]["generator"])
    if stats is not None:
        stats = stats if isinstance(stats, MelStats) else load_stats(stats)
    elif state.get("stats"):
        stats = MelStats(state["stats"]["mean"], state["stats"]["scale"])
    return generator.to(device).eval(), config, stats


def _read_checkpoint(path: Path) -> dict:
    """A training checkpoint's state, loaded weights-only (numeric numpy arrays admitted: the RNG state and stats of
    checkpoints written before they were stored as tensors). ConfigError naming the file when it cannot be read."""
    from fastgan.checkpoints import CheckpointError, load_checkpoint

    def fail(reason, cause=None):
        error = ConfigError(f"{path}: {reason}")
        error.reason = reason
        raise error from cause

    try:
        state = load_checkpoint(path)
    except CheckpointError as error:  # its reason says what is wrong with the file (directory, torn, not weights)
        fail(error.reason, error)
    if not isinstance(state, dict):
        fail(f"not a training checkpoint (a {type(state).__name__}, not a dict)")
    return state


def _float(outputs):
    """Discriminator outputs (tensors, lists of them) in float32: the losses are taken in full precision."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float()
    return type(outputs)(_float(o) for o in outputs)


class Trainer:
    """Train the model a config describes on the audio in ``data``, writing into ``out``.

    ``data``: a folder or list file of audio, or an :class:`~fastgan.data.AudioMelDataset` (e.g. ``from_arrays``).
    ``valid``: a folder or list file of held-out audio; vocoders report its multi-resolution STFT distance every
    ``eval_interval_steps``. ``resume``: continue from the newest readable checkpoint in ``out`` (which must fit the
    config's models; changed optimizer/scheduler settings apply from the resumed step on); without it, an ``out``
    that already holds checkpoints is a :class:`ConfigError` (nothing of the earlier run is touched). ``device``: default CUDA when available. Under ``torchrun`` (``WORLD_SIZE`` > 1) each
    process trains one replica (DistributedDataParallel; gloo on CPU, NCCL on CUDA).
    """

    def __init__(
        self,
        config: dict,
        data: str | os.PathLike,
        out: str | os.PathLike,
        valid: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        resume: bool = False,
        progress: bool = True,
    ):
        from fastgan.data import AudioMelDataset

        self.config = config
        self.out = Path(out)
        self.progress = progress
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.distributed = self.world > 1
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.device = usable_device(device)
        except ValueError as error:
            raise ConfigError(str(error)) from error
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"--out {self.out}: is a file, not a folder")
        if not resume and (previous := latest_checkpoint(self.out)) is not None:
            # a fresh run would interleave its checkpoints with the old run's (and prune them) and overwrite its log
            raise ConfigError(
                f"--out {self.out} already holds a run's checkpoints ({previous.name}): pass --resume to continue it, "
                "or another --out for a new run"
            )
        if self.distributed:
            import torch.distributed as dist

            if self.device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(self.device)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.is_main = self.rank == 0
        source = config.get("_source", "<config>")
        self.wgan = config["generator_type"] in WGAN_GENERATORS
        self.specgan = config["generator_type"] == "SpecGANGenerator"
        self.mel = MelConfig.from_config(config)
        self.hop = config["hop_size"]
        self.segment_frames = config["batch_max_steps"] // self.hop
        gen_cls = _model_class(config["generator_type"], "generator_type", source)
        self.noise_input = config["generator_type"] == "ParallelWaveGANGenerator"
        mel_context = config["generator_params"].get("aux_context_window", 2) if self.noise_input else 0
        seed = int(config["seed"])
        torch.manual_seed(seed + self.rank)
        np.random.seed(seed + self.rank)
        random.seed(seed + self.rank)

        if isinstance(data, AudioMelDataset):  # an in-memory dataset (AudioMelDataset.from_arrays)
            self.dataset = data
            if (data.mel, data.segment_frames, data.mel_context) != (self.mel, self.segment_frames, mel_context):
                raise ConfigError(f"{source}: the given dataset's features / segment length differ from the config's")
        else:
            # allow_cache (parallel_wavegan's key, default true): decode the corpus once, up front, so every bad file is
            # reported once before the workers start; false: decode lazily in the workers (large corpora).
            cached = bool(config.get("allow_cache", True))
            self.dataset = AudioMelDataset(
                data, self.mel, self.segment_frames, seed=seed, cache=cached, preload=cached, mel_context=mel_context
            )
        self.valid = AudioMelDataset(valid, self.mel, segment_frames=None, preload=True) if valid else None
        self._short_valid: set[int] = set()  # validation utterances too short for the STFT distance (warned once)
        num_classes = len(self.dataset.labels)

        gen_params = dict(config["generator_params"])
        dis_params = dict(config.get("discriminator_params", {}))
        for params in (gen_params, dis_params):
            if params.get("num_classes") == "auto":
                if num_classes < 2:
                    raise ConfigError(f"{source}: num_classes: auto needs at least 2 label folders in {data}")
                params["num_classes"] = num_classes
        self.config = config = copy.deepcopy(config)  # the checkpoint keeps the resolved parameters
        config["generator_params"], config["discriminator_params"] = gen_params, dis_params
        self.conditional = gen_params.get("num_classes") is not None
        self.d_conditional = dis_params.get("num_classes") is not None
        if not self.wgan:
            self._check_generator_features(gen_cls, gen_params, source)
        self.models: dict[str, torch.nn.Module] = {"generator": _build(gen_cls, gen_params, "generator_params", source)}
        if self.wgan:
            dis_type = config.get("discriminator_type", config["generator_type"].replace("Generator", "Discriminator"))
        else:
            dis_type = config["discriminator_type"]
        dis_cls = _model_class(dis_type, "discriminator_type", source)
        self.models["discriminator"] = _build(dis_cls, dis_params, "discriminator_params", source)
        if config["classifier_type"]:
            cls_params = dict(config["classifier_params"])
            if cls_params.get("num_classes", "auto") == "auto":
                cls_params["num_classes"] = num_classes
            config["classifier_params"] = cls_params
            cls_cls = _model_class(config["classifier_type"], "classifier_type", source)
            self.models["classifier"] = _build(cls_cls, cls_params, "classifier_params", source)
        if self.specgan:
            from fastgan.models import SpecGANTransform

            self.models["transform"] = _build(
                SpecGANTransform, config.get("transform_params", {}), "transform_params", source
            )
        for model in self.models.values():
            model.to(self.device)

        self.pqmf = None
        if not self.wgan:
            if gen_params.get("out_channels", 1) > 1:
                from fastgan.nn import PQMF

                pqmf = dict(subbands=gen_params["out_channels"], **config["pqmf_params"])
                self.pqmf = _build(PQMF, pqmf, "pqmf_params", source).to(self.device)
            self.melspec = LogMelSpectrogram(self.mel).to(self.device)
            self.criterion = {}
            stft_loss = L.MultiResolutionSTFTLoss
            if config["use_stft_loss"]:
                self.criterion["stft"] = _build(stft_loss, config["stft_loss_params"], "stft_loss_params", source)
            if config["use_subband_stft_loss"]:
                if self.pqmf is None:
                    raise ConfigError(f"{source}: use_subband_stft_loss needs generator_params.out_channels > 1")
                sub = config["subband_stft_loss_params"]
                self.criterion["sub_stft"] = _build(stft_loss, sub, "subband_stft_loss_params", source)
            if config["use_mel_loss"]:
                params = {"fs": config["sampling_rate"], "fft_size": config["fft_size"], "hop_size": self.hop}
                params.update(config["mel_loss_params"])
                self.criterion["mel"] = _build(L.MelSpectrogramLoss, params, "mel_loss_params", source)
            self.criterion = {k: v.to(self.device) for k, v in self.criterion.items()}
            self._check_stft_segments(source)
            self.gen_adv = _build(
                L.GeneratorAdversarialLoss, config["generator_adv_loss_params"], "generator_adv_loss_params", source
            )
            self.dis_adv = _build(L.DiscriminatorAdversarialLoss, config["discriminator_adv_loss_params"],
                                  "discriminator_adv_loss_params", source)  # fmt: skip
            self.feat_match = _build(
                L.FeatureMatchLoss, config["feat_match_loss_params"], "feat_match_loss_params", source
            )

        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            for name in ("generator", "discriminator", "classifier"):
                if name in self.models:
                    self.models[name] = DDP(self.models[name], device_ids=ids)

        self.optimizers, self.schedulers = {}, {}
        for name in ("generator", "discriminator", "classifier"):
            if name not in self.models:
                continue
            opt_cls = getattr(torch.optim, config[f"{name}_optimizer_type"], None)
            if opt_cls is None:
                raise ConfigError(
                    f"{source}: {name}_optimizer_type={config[f'{name}_optimizer_type']!r} is not in torch.optim"
                )
            self.optimizers[name] = _build(
                opt_cls, config[f"{name}_optimizer_params"], f"{name}_optimizer_params", source,
                self.models[name].parameters(),
            )  # fmt: skip
            sched_type = config.get(f"{name}_scheduler_type", "StepLR")
            sched_cls = getattr(torch.optim.lr_scheduler, sched_type, None)
            if sched_cls is None:
                raise ConfigError(f"{source}: {name}_scheduler_type={sched_type!r} is not in torch.optim.lr_scheduler")
            sched_params = config.get(f"{name}_scheduler_params", {"step_size": 10**9, "gamma": 1.0})
            self.schedulers[name] = _build(
                sched_cls, sched_params, f"{name}_scheduler_params", source, self.optimizers[name]
            )

        self.steps = 0
        self.samples_batches = 0  # batches drawn from the stream by this rank
        self.stats = None
        checkpoint, state = self._newest_readable_checkpoint() if resume else (None, None)
        if resume and checkpoint is None:
            log.warning("--resume: no checkpoint in %s, starting from step 0", self.out)
        if self.is_main:  # only now: a config or checkpoint that cannot be used leaves no folder behind
            try:
                self.out.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ConfigError(f"--out {self.out}: cannot create the folder ({error})") from error
        if checkpoint is not None:
            self._load(checkpoint, state)
        elif not self.wgan:
            self.stats = load_stats(config["stats"]) if config.get("stats") else self._corpus_stats()
        elif self.specgan:
            self._fit_specgan_transform()
        if self.stats is not None and self.is_main:
            save_stats(self.out / "stats.npy", self.stats)
        self.resumed_from = checkpoint
        self._writer = None

    # -- set-up helpers -----------------------------------------------------------------------------------------------
    def _check_generator_features(self, gen_cls, params: dict, source: str) -> None:
        """The feature keys against the generator, said now rather than as a shape error at step 1: it must take
        num_mels channels and make hop_size samples per frame (the product of its upsampling scales, times its
        sub-bands)."""

        def param(name, default=None):
            value = params.get(name, _constructor_default(gen_cls, name))
            return default if value is None else value

        if self.noise_input:  # Parallel WaveGAN: the mels are its auxiliary input
            mel_key, mels = "aux_channels", param("aux_channels")
            upsample = param("upsample_params", {})
            scales_key = "generator_params.upsample_params.upsample_scales"
            scales = upsample.get("upsample_scales") if isinstance(upsample, dict) else None
            if not param("upsample_conditional_features", True):
                scales = None  # features given at the sample rate: nothing to check
        else:
            mel_key, mels = "in_channels", param("in_channels")
            scales_key, scales = "generator_params.upsample_scales", param("upsample_scales")
        num_mels = self.config["num_mels"]
        if isinstance(mels, int) and mels != num_mels:
            raise ConfigError(
                f"{source}: num_mels={num_mels} but generator_params.{mel_key}={mels}: the generator takes "
                f"{mels}-band mels; make them equal"
            )
        subbands = param("out_channels", 1)
        if isinstance(scales, (list, tuple)) and all(isinstance(x, int) for x in scales) and isinstance(subbands, int):
            samples = math.prod(scales) * subbands
            if samples != self.hop:
                bands = f" x out_channels {subbands}" if subbands > 1 else ""
                raise ConfigError(
                    f"{source}: hop_size={self.hop} but the generator makes {samples} samples per frame "
                    f"({scales_key} {list(scales)}{bands}); make them equal"
                )

    def _corpus_stats(self) -> MelStats:
        """Statistics over every frame of the training utterances (parallel_wavegan's compute_statistics)."""
        from fastgan.data import BadAudioError

        def frames():
            with torch.no_grad():
                for i in range(len(self.dataset)):
                    try:
                        utt = self.dataset.utterance(i)
                    except BadAudioError as error:
                        self.dataset._report(str(error), self.dataset.files[i])
                        continue
                    padded = torch.from_numpy(utt.padded).to(self.device)  # the utterance's own frames
                    yield self.melspec(padded, center=False)[0].T.cpu().numpy()

        return compute_stats(frames())

    def _fit_specgan_transform(self):
        loader = self._loader(start_batch=10**6)  # a part of the stream training never reaches
        it = iter(loader)
        waves = torch.cat([next(it)["audio"] for _ in range(self.config["specgan_fit_batches"])])
        self.models["transform"].fit(waves[:, 0].to(self.device))

    def _loader(self, start_batch: int):
        stream = _Stream(
            len(self.dataset), self.config["batch_size"], int(self.config["seed"]), start_batch, self.rank, self.world
        )
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_size=self.config["batch_size"],
            sampler=stream,
            num_workers=self.config["num_workers"],
            pin_memory=self.config["pin_memory"] and self.device.type == "cuda",
            generator=torch.Generator(),  # leaves the global RNG alone (exact resume)
            persistent_workers=False,
        )

    def _module(self, name: str) -> torch.nn.Module:
        model = self.models[name]
        return model.module if hasattr(model, "module") else model

    def _autocast(self):
        # Losses and optimiser steps stay outside: the STFT loss computes in fp32 under autocast anyway.
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config["amp"] == "bf16")

    # -- checkpoints --------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        rng = _rng_state()
        if self.distributed:
            import torch.distributed as dist

            states = [None] * self.world
            dist.all_gather_object(states, rng)
            rng = {"ranks": states}
        return {
            "model": {name: self._module(name).state_dict() for name in self.models},
            "optimizer": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "scheduler": {name: s.state_dict() for name, s in self.schedulers.items()},
            "steps": self.steps,
            "batches": self.samples_batches,
            "rng": rng,
            "config": {k: v for k, v in self.config.items() if not k.startswith("_")},
            # tensors, not numpy arrays: the checkpoint loads with torch.load(weights_only=True) as it is
            "stats": None
            if self.stats is None
            else {"mean": torch.from_numpy(self.stats.mean.copy()), "scale": torch.from_numpy(self.stats.scale.copy())},
            "labels": self.dataset.labels,
            "world_size": self.world,
        }

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoint-<steps>steps.pkl`` atomically (rank 0); keep the newest ``keep_checkpoints``."""
        state = self.state_dict()  # every rank takes part (RNG gather)
        if not self.is_main:
            return None
        for name, model in state["model"].items():
            for key, tensor in model.items():
                if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                    raise NonFiniteLossError(f"step {self.steps}: {name}.{key} holds non-finite values; not saved")
        target = self.out / f"checkpoint-{self.steps}steps.pkl"
        if target.is_dir():  # os.replace cannot put a file there; say so plainly
            raise ConfigError(f"{target}: is a directory: cannot write the checkpoint of step {self.steps}")
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk must not also leave a partial file behind
            raise
        keep = int(self.config["keep_checkpoints"])
        if keep > 0:
            # The one just written always stays: a checkpoint with more steps (left by a run that was resumed from
            # an earlier one) must not push it out.
            others = sorted(
                (int(m.group(1)), p)
                for p in self.out.glob("checkpoint-*steps.pkl")
                if (m := CHECKPOINT_RE.search(p.name)) and p != target
            )
            for _, old in others[: max(len(others) - (keep - 1), 0)]:
                if old.is_file():
                    old.unlink(missing_ok=True)
        return target

    def _newest_readable_checkpoint(self) -> tuple[Path | None, dict | None]:
        """(path, state) of the newest checkpoint in ``out`` that loads; an unreadable newer one (cut short by a
        crash, a folder of that name) is skipped with a warning naming it. None when there is no checkpoint."""
        found = sorted(
            (
                (int(m.group(1)), p)
                for p in self.out.glob("checkpoint-*steps.pkl")
                if (m := CHECKPOINT_RE.search(p.name))
            ),
            reverse=True,
        )
        skipped = []
        for _, path in found:
            try:
                state = _read_checkpoint(path)
            except ConfigError as error:
                log.warning("--resume: skipping %s (%s)", path, error.reason)
                skipped.append(path.name)
                continue
            return path, state
        if skipped:
            raise ConfigError(f"--resume: no readable checkpoint in {self.out} (unreadable: {', '.join(skipped)})")
        return None, None

    def _load(self, path: Path, state: dict | None = None):
        """Restore a checkpoint; one that does not fit this config is a ConfigError naming the file and the problem.

        The config's optimizer and scheduler settings take effect on resume (a changed lr, betas, step_size ...):
        they are what the config says and what later checkpoints record. A changed lr is the new base of the
        schedule, the decay so far applied to it. A changed optimizer or scheduler type is refused."""
        state = _read_checkpoint(path) if state is None else state
        try:
            models, optimizers, schedulers = state["model"], state["optimizer"], state["scheduler"]
            steps, batches, rng = int(state["steps"]), int(state["batches"]), state["rng"]
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(f"{path}: not a fastgan training checkpoint (no {error} entry to resume from)") from error
        saved_config = state.get("config") if isinstance(state.get("config"), dict) else {}
        for name in self.models:
            if not isinstance(models, dict) or name not in models:
                raise ConfigError(
                    f"{path}: holds no {name} state (a generator-only checkpoint?): it cannot resume this run"
                )
            try:
                _load_state(self._module(name), models[name], path, f"{name} of this config")
            except CheckpointError as error:
                raise ConfigError(str(error)) from error
        for name, opt in self.optimizers.items():
            for kind in ("optimizer", "scheduler"):
                key = f"{name}_{kind}_type"
                if key in saved_config and saved_config[key] != self.config.get(key, saved_config[key]):
                    raise ConfigError(
                        f"{path}: written with {key}={saved_config[key]!r}, the config says {self.config[key]!r}: its "
                        f"state cannot continue another {kind}; train into another --out"
                    )
            if name not in optimizers or name not in schedulers:
                raise ConfigError(f"{path}: holds no {name} optimizer or scheduler state: it cannot resume this run")
            try:
                opt.load_state_dict(optimizers[name])
                self.schedulers[name].load_state_dict(schedulers[name])
            except (KeyError, ValueError, TypeError) as error:
                raise ConfigError(f"{path}: the {name} optimizer state does not fit this config: {error}") from error
            self._apply_optimizer_config(name)
        self.steps, self.samples_batches = steps, batches
        stats = state.get("stats")
        self.stats = MelStats(stats["mean"], stats["scale"]) if stats else None
        if "ranks" in rng:
            if len(rng["ranks"]) != self.world:
                raise ConfigError(f"{path}: written by {len(rng['ranks'])} processes, resumed with {self.world}")
            rng = rng["ranks"][self.rank]
        _set_rng_state(rng)
        if self.is_main:
            log.info("resumed from %s at step %d", path, self.steps)

    def _apply_optimizer_config(self, name: str) -> None:
        """The config's optimizer/scheduler parameters over those restored from the checkpoint (see _load)."""
        opt, sched = self.optimizers[name], self.schedulers[name]
        for key, value in self.config[f"{name}_optimizer_params"].items():
            for group in opt.param_groups:
                if key not in group:
                    continue
                old = group[key]
                new = tuple(value) if isinstance(old, tuple) and isinstance(value, list) else value
                if key == "lr":
                    base = group.get("initial_lr", old)
                    if new == base:
                        continue  # unchanged: keep the restored value bit for bit
                    group["initial_lr"], group["lr"] = new, new * (old / base if base else 1.0)
                elif new != old:
                    group[key] = new
                else:
                    continue
                log.info("resume: %s_optimizer_params.%s = %s (the config's, was %s)", name, key, value, old)
        if hasattr(sched, "base_lrs"):
            sched.base_lrs = [group.get("initial_lr", group["lr"]) for group in opt.param_groups]
            sched._last_lr = [group["lr"] for group in opt.param_groups]
        for key, value in self.config.get(f"{name}_scheduler_params", {}).items():
            current = getattr(sched, key, None)
            if current is None or key in ("optimizer", "last_epoch"):
                continue
            if isinstance(current, collections.Counter):
                value = collections.Counter(value)  # MultiStepLR keeps its milestones as a Counter
            if current != value:
                setattr(sched, key, value)
                log.info("resume: %s_scheduler_params.%s = %s (the config's, was %s)", name, key, value, current)

    # -- logging ------------------------------------------------------------------------------------------------------
    def _csv_reset(self, names: list[str]):
        """losses.csv: rows after the resumed step (from a run that died before its next checkpoint) are dropped.

        The earlier rows are kept under their own columns when the columns change on resume (``--valid`` added or
        dropped, another loss switched on): new columns are empty in them, and columns no longer written stay."""
        path = self.out / "losses.csv"
        fixed = ["step", "elapsed_s", "steps_per_s"]
        extra, rows = [], []
        if path.exists() and self.steps > 0:
            with open(path, newline="") as f:
                reader = csv.reader(f)
                old_header = next(reader, None) or []
                extra = [n for n in old_header if n not in fixed and n not in names]
                header = [*fixed, *names, *extra]
                for row in reader:
                    if not row or not row[0].isdigit() or int(row[0]) > self.steps:
                        continue  # past the resumed step, or a line cut short by a crash
                    cells = dict(zip(old_header, row, strict=False))
                    rows.append([cells.get(n, "") for n in header])
        header = [*fixed, *names, *extra]
        tmp = path.with_name("losses.csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(tmp, path)
        self._csv_names = [*names, *extra]

    def _csv_row(self, elapsed: float, rate: float, values: dict[str, float]):
        with open(self.out / "losses.csv", "a", newline="") as f:
            row = [self.steps, f"{elapsed:.3f}", f"{rate:.4f}"]
            row += ["" if n not in values else f"{values[n]:.6g}" for n in self._csv_names]
            csv.writer(f).writerow(row)
        if self._writer is not None:
            for name, value in values.items():
                self._writer.add_scalar(name, value, self.steps)

    def loss_names(self) -> list[str]:
        c = self.config
        if self.wgan:
            names = ["generator_loss", "critic_loss", "real_loss", "fake_loss", "gradient_penalty"]
            if "classifier" in self.models:
                names += ["classifier_loss", "aux_classifier_loss"]
            return names
        names = ["generator_loss"]
        if c["use_stft_loss"]:
            names += ["spectral_convergence_loss", "log_stft_magnitude_loss"]
        if c["use_subband_stft_loss"]:
            names += ["sub_spectral_convergence_loss", "sub_log_stft_magnitude_loss"]
        if c["use_mel_loss"]:
            names.append("mel_loss")
        names.append("adversarial_loss")
        if c["use_feat_match_loss"]:
            names.append("feature_matching_loss")
        names += ["real_loss", "fake_loss", "discriminator_loss"]
        if self.valid is not None:
            names.append("valid_stft_distance")
        return names

    def _check_stft_segments(self, source: str) -> None:
        """Every resolution of the STFT losses needs a full frame of signal: say so now, not at step 1."""
        subbands = self.pqmf.subbands if self.pqmf is not None else 1
        for key, params_key, bands in (
            ("stft", "stft_loss_params", 1),
            ("sub_stft", "subband_stft_loss_params", subbands),
        ):
            loss = self.criterion.get(key)
            if loss is None:
                continue
            longest = max(resolution.fft_size for resolution in loss.stft_losses)
            samples = self.config["batch_max_steps"] // bands
            if samples < longest:
                per_band = f" / {bands} sub-bands = {samples} samples" if bands > 1 else ""
                raise ConfigError(
                    f"{source}: batch_max_steps={self.config['batch_max_steps']}{per_band} is shorter than "
                    f"{params_key}' largest fft_size={longest}: the STFT loss needs a full frame at every resolution"
                )

    # -- one step -----------------------------------------------------------------------------------------------------
    def _features(self, batch) -> torch.Tensor:
        context = batch["context"].to(self.device, non_blocking=True)
        with torch.no_grad():
            mel = self.melspec(context, center=False)
            return normalize(mel, self.stats, mel_axis=1)

    def _generate(
        self, c: torch.Tensor, length: int, rng: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(full-band waveform, sub-band waveform or None); ``rng`` draws Parallel WaveGAN's noise."""
        generator = self.models["generator"]
        with self._autocast():
            if self.noise_input:
                z = torch.randn(c.size(0), 1, length, device=self.device, generator=rng)
                y_ = generator(z, c)
            else:
                y_ = generator(c)
        y_ = y_.float()
        if self.pqmf is not None:
            return self.pqmf.synthesis(y_), y_
        return y_, None

    def _optimize(self, name: str, loss: torch.Tensor):
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.config.get(f"{name}_grad_norm", -1)
        if clip and clip > 0:
            torch.nn.utils.clip_grad_norm_(self.models[name].parameters(), clip)
        opt.step()
        self.schedulers[name].step()

    def _discriminate(self, y):
        with self._autocast():
            out = self.models["discriminator"](y)
        return _float(out) if self.config["amp"] else out

    def _vocoder_step(self, it) -> dict[str, float]:
        c = self.config
        batch = next(it)
        self.samples_batches += 1
        y = batch["audio"].to(self.device, non_blocking=True)
        feats = self._features(batch)
        values: dict[str, float] = {}
        adversarial = self.steps > c["discriminator_train_start_steps"]
        if self.steps >= c["generator_train_start_steps"]:
            y_, y_mb_ = self._generate(feats, y.size(-1))
            gen_loss = torch.zeros((), device=self.device)
            if "stft" in self.criterion:
                sc, mag = self.criterion["stft"](y_.squeeze(1), y.squeeze(1))
                gen_loss = gen_loss + sc + mag
                values["spectral_convergence_loss"], values["log_stft_magnitude_loss"] = sc.item(), mag.item()
            if "sub_stft" in self.criterion:
                gen_loss = gen_loss * 0.5  # parallel_wavegan's balance with the sub-band loss
                y_mb = self.pqmf.analysis(y)
                sc, mag = self.criterion["sub_stft"](y_mb_, y_mb)
                gen_loss = gen_loss + 0.5 * (sc + mag)
                values["sub_spectral_convergence_loss"], values["sub_log_stft_magnitude_loss"] = sc.item(), mag.item()
            if "mel" in self.criterion:
                mel_loss = self.criterion["mel"](y_, y)
                gen_loss = gen_loss + mel_loss
                values["mel_loss"] = mel_loss.item()
            gen_loss = gen_loss * c["lambda_aux"]
            if adversarial:
                p_ = self._discriminate(y_)
                adv_loss = self.gen_adv(p_)
                values["adversarial_loss"] = adv_loss.item()
                if c["use_feat_match_loss"]:
                    with torch.no_grad():
                        p = self._discriminate(y)
                    fm_loss = self.feat_match(p_, p)
                    values["feature_matching_loss"] = fm_loss.item()
                    adv_loss = adv_loss + c["lambda_feat_match"] * fm_loss
                gen_loss = gen_loss + c["lambda_adv"] * adv_loss
            values["generator_loss"] = gen_loss.item()
            _check_finite(self.steps, values)
            self._optimize("generator", gen_loss)
        if adversarial:
            with torch.no_grad():
                y_, _ = self._generate(feats, y.size(-1))
            p = self._discriminate(y)
            p_ = self._discriminate(y_.detach())
            real_loss, fake_loss = self.dis_adv(p_, p)
            dis_loss = real_loss + fake_loss
            d_values = {
                "real_loss": real_loss.item(),
                "fake_loss": fake_loss.item(),
                "discriminator_loss": dis_loss.item(),
            }
            _check_finite(self.steps, d_values)
            values.update(d_values)
            self._optimize("discriminator", dis_loss)
        return values

    def _wgan_real(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        wave = batch["audio"].to(self.device, non_blocking=True)
        labels = batch["label"].to(self.device)
        real = self.models["transform"](wave[:, 0]) if self.specgan else wave
        return wave, real, labels

    def _wgan_step(self, it) -> dict[str, float]:
        c = self.config
        G, D = self.models["generator"], self.models["discriminator"]
        gen = self._module("generator")
        values: dict[str, float] = {}
        sums = {"critic_loss": 0.0, "real_loss": 0.0, "fake_loss": 0.0, "gradient_penalty": 0.0, "classifier_loss": 0.0}
        g_labels = None
        for _ in range(int(c["critic_steps"])):
            batch = next(it)
            self.samples_batches += 1
            wave, real, labels = self._wgan_real(batch)
            g_labels = labels if self.conditional else None
            d_args = (labels,) if self.d_conditional else ()
            with torch.no_grad(), self._autocast():
                fake = G(gen.sample_latent(real.size(0), self.device), g_labels).float()
            with self._autocast():
                d_real, d_fake = D(real, *d_args).float(), D(fake, *d_args).float()
            real_loss, fake_loss = L.discriminator_adversarial_loss(d_fake, d_real, "wgan")
            gp = L.gradient_penalty(D, real, fake, c["gradient_penalty_weight"], *d_args)
            critic_loss = real_loss + fake_loss + gp
            step_values = {
                "critic_loss": critic_loss.item(),
                "real_loss": real_loss.item(),
                "fake_loss": fake_loss.item(),
                "gradient_penalty": gp.item(),
            }
            if "classifier" in self.models:
                with self._autocast():
                    logits = self.models["classifier"](wave).float()
                cls_loss = L.auxiliary_classifier_loss(logits, labels)
                step_values["classifier_loss"] = cls_loss.item()
            _check_finite(self.steps, step_values)
            self._optimize("discriminator", critic_loss)
            if "classifier" in self.models:
                self._optimize("classifier", cls_loss)
            for k, v in step_values.items():
                sums[k] += v / c["critic_steps"]
        values.update({k: v for k, v in sums.items() if k != "classifier_loss" or "classifier" in self.models})
        batch_size = c["batch_size"]
        if g_labels is None and "classifier" in self.models:
            g_labels = torch.randint(0, self._module("classifier").num_classes, (batch_size,), device=self.device)
        with self._autocast():
            fake = G(gen.sample_latent(batch_size, self.device), g_labels if self.conditional else None).float()
            d_fake = D(fake, *((g_labels,) if self.d_conditional else ())).float()
        gen_loss = L.generator_adversarial_loss(d_fake, "wgan")
        if "classifier" in self.models:
            wave_fake = fake if not self.specgan else None
            if wave_fake is None:
                raise ConfigError("the auxiliary classifier is for WaveGAN (waveform) generators")
            with self._autocast():
                logits = self.models["classifier"](wave_fake).float()
            aux = L.auxiliary_classifier_loss(logits, g_labels)
            values["aux_classifier_loss"] = aux.item()
            gen_loss = gen_loss + c["lambda_ac"] * aux
        values["generator_loss"] = gen_loss.item()
        _check_finite(self.steps, values)
        self._optimize("generator", gen_loss)
        return values

    def _should_stop(self, out_of_time: bool, interrupted: bool) -> tuple[bool, bool]:
        """(out of time, interrupted), agreed by every rank so that all stop at the same step: rank 0's clock
        decides the first; a signal that reached any rank, the second."""
        if not self.distributed:
            return out_of_time, interrupted
        import torch.distributed as dist

        flags = torch.tensor([float(out_of_time and self.is_main), float(interrupted)], device=self.device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        return bool(flags[0].item()), bool(flags[1].item())

    def _install_stop_handlers(self) -> dict:
        """SIGINT/SIGTERM set ``self._stop_signal`` (the loop then stops after the step in progress and saves); a
        second SIGINT raises KeyboardInterrupt as usual. Returns the previous handlers (main thread only)."""
        self._stop_signal = None
        if threading.current_thread() is not threading.main_thread():
            return {}

        def request_stop(signum, frame):
            if self._stop_signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._stop_signal = signum
            log.warning("%s: stopping after step %d, with a checkpoint", signal.Signals(signum).name, self.steps + 1)

        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, request_stop)
        return previous

    # -- validation ---------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> float | None:
        """Mean multi-resolution STFT distance (spectral convergence + log magnitude) over the validation set.

        Deterministic: Parallel WaveGAN's noise comes from a generator seeded with the config's seed each time (the
        global RNG, and so a resumed run, is untouched).
        """
        if self.valid is None or self.wgan:
            return None
        G = self._module("generator")
        G.eval()
        stft = L.MultiResolutionSTFTLoss().to(self.device)
        longest = max(resolution.fft_size for resolution in stft.stft_losses)
        total, count = 0.0, 0
        w = self.dataset.mel_context
        rng = torch.Generator(self.device).manual_seed(int(self.config["seed"]))  # the same noise every time
        for i in range(len(self.valid)):
            utt = self.valid.utterance(i)
            if utt.audio.size < longest:  # the loss needs a full frame: leave it out (said once) rather than stop
                if i not in self._short_valid:
                    self._short_valid.add(i)
                    log.warning("validation: %s (%d samples) is shorter than the STFT distance's largest FFT (%d): "
                                "left out", utt.path, utt.audio.size, longest)  # fmt: skip
                continue
            count += 1
            audio = torch.from_numpy(utt.audio).to(self.device)  # the aligned utterance: frames * hop samples
            padded = torch.from_numpy(utt.padded).to(self.device)  # the same frames, without the alignment pad
            mel = normalize(self.melspec(padded, center=False), self.stats, mel_axis=1)
            if w:
                mel = torch.nn.functional.pad(mel, (w, w), mode="replicate")
            y_, _ = self._generate(mel, audio.numel(), rng)
            sc, mag = stft(y_.reshape(1, -1)[:, : audio.numel()], audio[None])
            total += (sc + mag).item()
            if i == 0 and self.is_main:
                self._write_sample(y_.reshape(-1)[: audio.numel()], utt.path.stem)
        G.train()
        return total / count if count else None

    def _write_sample(self, audio: torch.Tensor, name: str):
        """The first validation utterance as generated now: ``samples/step<N>-<name>.wav`` and, with TensorBoard,
        its audio and log-mel image."""
        from fastgan.audio import write_wav

        wave = audio.detach().float().cpu().clamp(-1, 1)
        folder = self.out / "samples"
        folder.mkdir(exist_ok=True)
        write_wav(folder / f"step{self.steps}-{name}.wav", wave, self.mel.sampling_rate)
        if self._writer is not None:
            self._writer.add_audio(f"valid/{name}", wave[None], self.steps, sample_rate=self.mel.sampling_rate)
            mel = self.melspec(wave.to(self.device))[0].cpu()
            image = (mel - mel.min()) / (mel.max() - mel.min()).clamp_min(1e-6)
            self._writer.add_image(f"valid/{name}_logmel", image.flip(0)[None], self.steps)

    # -- the loop -----------------------------------------------------------------------------------------------------
    def train(self, max_steps: int | None = None, max_seconds: float | None = None) -> dict:
        """Train until ``train_max_steps`` (or ``max_steps``, for a shorter run, or until ``max_seconds`` of wall time
        have passed: a checkpoint is then written at the step reached); returns a summary."""
        c = self.config
        end = min(c["train_max_steps"], max_steps if max_steps is not None else c["train_max_steps"])
        first_step = self.steps
        for model in self.models.values():
            model.train()
        if self.is_main:
            self._csv_reset(self.loss_names())
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(self.out / "tensorboard"))
            except ImportError:
                self._writer = None
        it = iter(self._loader(self.samples_batches))
        step_fn = self._wgan_step if self.wgan else self._vocoder_step
        bar = None
        if self.progress and self.is_main:
            try:
                from tqdm import tqdm
            except ImportError:  # no progress bar without tqdm
                tqdm = None
        if self.progress and self.is_main and tqdm is not None:
            bar = tqdm(total=end, initial=self.steps, desc="train", unit="step", dynamic_ncols=True, file=sys.stderr)
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        start_time = time.perf_counter()
        interval_start, interval_steps = start_time, 0
        last_saved, out_of_time, interrupted, saved_at = None, False, False, None
        previous_handlers = self._install_stop_handlers()
        try:
            while self.steps < end:
                late = max_seconds is not None and time.perf_counter() - start_time > max_seconds
                out_of_time, interrupted = self._should_stop(late, self._stop_signal is not None)
                if out_of_time or interrupted:
                    break
                values = step_fn(it)
                self.steps += 1
                interval_steps += 1
                for k, v in values.items():
                    sums[k] = sums.get(k, 0.0) + v
                    counts[k] = counts.get(k, 0) + 1
                if bar is not None:
                    bar.update(1)
                if self.steps % c["eval_interval_steps"] == 0 and self.valid is not None:
                    distance = self.validate()
                    if distance is not None:
                        sums["valid_stft_distance"] = distance
                        counts["valid_stft_distance"] = 1
                if self.steps % c["log_interval_steps"] == 0 or self.steps == end:
                    now = time.perf_counter()
                    rate = interval_steps / max(now - interval_start, 1e-9)
                    means = {k: sums[k] / counts[k] for k in sums}
                    if self.is_main:
                        self._csv_row(now - start_time, rate, means)
                        if bar is not None:
                            shown = {
                                k: f"{v:.3g}"
                                for k, v in means.items()
                                if k in ("generator_loss", "discriminator_loss", "critic_loss", "valid_stft_distance")
                            }
                            bar.set_postfix(shown, refresh=False)
                    sums, counts = {}, {}
                    interval_start, interval_steps = now, 0
                if self.steps % c["save_interval_steps"] == 0 or self.steps == end:
                    last_saved, saved_at = self.save_checkpoint(), self.steps
        finally:
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
            if bar is not None:
                bar.close()
            if self._writer is not None:
                self._writer.close()
        if (out_of_time or interrupted) and saved_at != self.steps:  # every rank (the RNG gather)
            last_saved = self.save_checkpoint()
        if last_saved is None and self.steps == first_step and self.resumed_from is not None:
            last_saved = self.resumed_from  # nothing left to train: the run's checkpoint is the one resumed from
        return {
            "steps": self.steps,
            "trained_steps": self.steps - first_step,
            "end": end,
            "checkpoint": None if last_saved is None else str(last_saved),
            "seconds": time.perf_counter() - start_time,
            "interrupted": interrupted,
        }


# ---------------------------------------------------------------------------------------------------------------------
# CLI: `fastgan train` and `fastgan preprocess` (registered by fastgan.cli)


def _parse_overrides(items: list[str]) -> dict:
    import yaml

    overrides = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set takes KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise ConfigError(f"--set {item}: the value is not valid YAML ({one_line(error)})") from error
    return overrides


def _cmd_train(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config, _parse_overrides(args.set))
        trainer = Trainer(
            config,
            args.data,
            args.out,
            valid=args.valid,
            device=args.device,
            resume=args.resume,
            progress=not args.no_progress,
        )
        summary = trainer.train(max_steps=args.steps)
    except (ConfigError, NonFiniteLossError, FileNotFoundError, ValueError) as error:
        print(f"fastgan train: error: {one_line(error)}", file=sys.stderr)
        return 2
    if trainer.is_main and summary["trained_steps"] == 0 and summary["steps"] >= summary["end"]:
        limit = "train_max_steps" if summary["end"] == config["train_max_steps"] else "--steps"
        print(f"already at step {summary['steps']} ({limit}): nothing to train; checkpoint {summary['checkpoint']}")
    elif trainer.is_main:
        print(f"trained to step {summary['steps']} in {summary['seconds']:.1f} s; checkpoint {summary['checkpoint']}")
        if summary["interrupted"]:
            print("fastgan train: interrupted; --resume continues from that checkpoint", file=sys.stderr)
    return 1 if summary["interrupted"] else 0


def _cmd_preprocess(args) -> int:
    from fastgan.data import preprocess

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        mel = MelConfig()
        if args.config:
            import yaml

            path = Path(args.config)
            if not path.exists() and (CONFIG_DIR / (path.name if path.suffix else path.name + ".yaml")).exists():
                path = CONFIG_DIR / (path.name if path.suffix else path.name + ".yaml")
            if not path.exists():
                raise ConfigError(f"config {args.config} does not exist")
            mel = MelConfig.from_config(yaml.safe_load(path.read_text()) or {})
        summary = preprocess(
            args.data, args.out, mel, fmt=args.format, device=args.device, progress=not args.no_progress
        )
    except (ConfigError, FileNotFoundError, ValueError) as error:
        print(f"fastgan preprocess: error: {error}", file=sys.stderr)
        return 2
    print(
        f"{summary['utterances']} utterances, {summary['frames']} frames -> {args.out} "
        f"({len(summary['skipped'])} skipped); statistics in {summary['stats']}"
    )
    return 0


def add_commands(commands) -> None:
    """Register ``train`` and ``preprocess`` on the ``fastgan`` command's subparsers."""
    train = commands.add_parser(
        "train",
        help="train a model from a YAML config",
        description="Train a fastgan model. Configs use parallel_wavegan's keys; bundled ones: "
        + ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))),
    )
    train.add_argument("--config", required=True, help="YAML config (a path, or the name of a bundled config)")
    train.add_argument("--data", required=True, help="folder of audio (searched recursively) or a list file")
    train.add_argument("--out", required=True, help="output folder: checkpoints, losses.csv, stats.npy")
    train.add_argument("--valid", default=None, help="held-out audio (folder or list) for the validation STFT distance")
    train.add_argument("--resume", action="store_true", help="continue exactly from the newest checkpoint in --out")
    train.add_argument("--steps", type=int, default=None, help="stop after this many steps (default train_max_steps)")
    train.add_argument("--device", default=None, help="torch device (default cuda when available)")
    train.add_argument("--set", nargs="*", metavar="KEY=VALUE",
                       help="override config keys (YAML values); a.b=VALUE sets the nested key b of a")  # fmt: skip
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(run=_cmd_train)

    pre = commands.add_parser(
        "preprocess",
        help="write parallel_wavegan-style features (and stats) for a corpus",
        description="Log-mel features and aligned waveforms for every audio file, as parallel_wavegan's "
        "preprocess writes them (<utt>.h5 with wave/feats, or <utt>-wave.npy/<utt>-feats.npy), plus stats.",
    )
    pre.add_argument("--data", required=True, help="folder of audio or a list file")
    pre.add_argument("--out", required=True, help="dump folder")
    pre.add_argument("--config", default=None, help="YAML config for the feature keys (default: the PWG recipe's)")
    pre.add_argument("--format", choices=("hdf5", "npy"), default="hdf5")
    pre.add_argument("--device", default=None, help="torch device for the features (default cuda when available)")
    pre.add_argument("--no-progress", action="store_true", help="no progress bar")
    pre.set_defaults(run=_cmd_preprocess)
