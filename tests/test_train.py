"""fastgan.train: every model trains a few steps on the bundled corpus, checkpoints load, resume is exact,
non-finite losses stop the run cleanly, the CLI reports config/data errors, DDP runs with 2 CPU processes.

Models are shrunk to a few thousand parameters (the bundled configs with smaller widths, 64-sample hops and
1024-sample segments), so each step takes well under a second on one CPU core.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fastgan.train import ConfigError, NonFiniteLossError, Trainer, latest_checkpoint, load_config, load_generator
from tests.conftest import INTERPRETER
from tests.tiny_configs import VOCODERS, WGANS, tiny_config

# Training runs thousands of op calls; each op's kernels are checked on their own in the interpreter pass.
pytestmark = [
    pytest.mark.reference,
    pytest.mark.skipif(INTERPRETER, reason="training loops are too long for the Triton interpreter"),
]

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    """Four training files in two label folders and one validation file (copies of the bundled corpus)."""
    root = tmp_path_factory.mktemp("corpus")
    for name in ("arctic/arctic_a0007.wav", "espeak_en-us/s01.wav", "espeak_en-us/s02.wav", "arctic/arctic_a0009.wav"):
        (root / "train" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CORPUS / name, root / "train" / name)
    (root / "valid").mkdir()
    shutil.copy(CORPUS / "espeak_en-gb" / "s05.wav", root / "valid" / "s05.wav")
    return root


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _subprocess_env() -> dict[str, str]:
    """The environment for a `fastgan train` child: this checkout first on its path, the rest of PYTHONPATH kept
    (the GPU machine carries librosa there; without it the child's mel filterbank is fastgan's copy, ~1e-9 off)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path)


def _params(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {f"{m}.{k}": v.detach().clone() for m in trainer.models for k, v in trainer._module(m).state_dict().items()}


@pytest.mark.parametrize("name", list(VOCODERS))
def test_vocoder_few_steps_reduce_loss_and_checkpoint_loads(name, small_corpus, tmp_path):
    config = tiny_config(
        name,
        discriminator_train_start_steps=2,
        eval_interval_steps=5,
        generator_optimizer_params={"lr": 2e-3},
        discriminator_optimizer_params={"lr": 2e-3},
    )
    trainer = Trainer(
        config, small_corpus / "train", tmp_path, valid=small_corpus / "valid", device="cpu", progress=False
    )
    before = trainer.validate()
    summary = trainer.train(max_steps=5)
    after = trainer.validate()
    assert summary["steps"] == 5
    assert after < before, f"{name}: validation STFT distance {before:.4f} -> {after:.4f}"
    rows = (tmp_path / "losses.csv").read_text().splitlines()
    assert len(rows) == 6 and rows[0].startswith("step,elapsed_s,steps_per_s,generator_loss")
    assert rows[-1].split(",")[rows[0].split(",").index("discriminator_loss")] != ""  # the adversarial phase ran
    assert float(rows[-1].split(",")[-1]) == pytest.approx(after, rel=1e-5)  # valid_stft_distance (6 digits)
    assert (tmp_path / "samples" / "step5-s05.wav").exists()
    # the checkpoint loads into a fresh generator that reproduces the trained one
    generator, loaded_config, stats = load_generator(summary["checkpoint"])
    assert loaded_config["generator_type"] == config["generator_type"] and stats is not None
    ours = trainer._module("generator").eval()
    mel = torch.randn(1, 20, 24 + (4 if name == "parallel_wavegan" else 0))
    with torch.no_grad():
        if name == "parallel_wavegan":
            z = torch.randn(1, 1, 24 * 64)
            torch.testing.assert_close(generator(z, mel), ours(z, mel), rtol=0, atol=0)
        else:
            torch.testing.assert_close(generator(mel), ours(mel), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["melgan", "parallel_wavegan"])
def test_bf16_autocast_steps_reduce_loss(name, small_corpus, tmp_path):
    # amp: bf16 runs the model forwards under bf16 autocast (the GPU setting, here on CPU): losses stay finite,
    # the parameters stay fp32, and training still reduces the validation distance.
    config = tiny_config(name, amp="bf16", discriminator_train_start_steps=2, generator_optimizer_params={"lr": 2e-3},
                         discriminator_optimizer_params={"lr": 2e-3})  # fmt: skip
    trainer = Trainer(
        config, small_corpus / "train", tmp_path, valid=small_corpus / "valid", device="cpu", progress=False
    )
    with trainer._autocast():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    before = trainer.validate()
    trainer.train(max_steps=5)
    after = trainer.validate()
    assert math.isfinite(after) and after < before, f"{name}: validation STFT distance {before:.4f} -> {after:.4f}"
    assert all(p.dtype == torch.float32 for p in trainer._module("generator").parameters())
    with pytest.raises(ConfigError, match="amp='fp16'"):
        tiny_config(name, amp="fp16")


@pytest.mark.parametrize("name", WGANS)
def test_wgan_few_steps_reduce_critic_loss_and_checkpoint_loads(name, tmp_path):
    config = tiny_config(name, discriminator_optimizer_params={"lr": 1e-3, "betas": [0.5, 0.9]})
    assert config["critic_steps"] == 5 and config["gradient_penalty_weight"] == 10.0
    trainer = Trainer(config, CORPUS / "train.txt", tmp_path, device="cpu", progress=False)
    summary = trainer.train(max_steps=3)
    assert trainer.samples_batches == 15  # 5 critic batches per generator step
    rows = [r.split(",") for r in (tmp_path / "losses.csv").read_text().splitlines()]
    col = rows[0].index("critic_loss")
    assert float(rows[-1][col]) < float(rows[1][col]), f"{name}: critic loss {rows[1][col]} -> {rows[-1][col]}"
    if name == "wavegan_controllable":
        assert rows[0][-2:] == ["classifier_loss", "aux_classifier_loss"] and rows[-1][-1] != ""
    state = torch.load(summary["checkpoint"], weights_only=False)
    assert set(state["model"]) >= {"generator", "discriminator"}
    generator, _, _ = load_generator(summary["checkpoint"])
    z = torch.rand(2, 100) * 2 - 1
    labels = torch.tensor([0, 1]) if trainer.conditional else None
    with torch.no_grad():
        torch.testing.assert_close(generator(z, labels), trainer._module("generator").eval()(z, labels))


def test_wavegan_phase_shuffle_gradient_penalty(tmp_path):
    config = tiny_config("wavegan", critic_steps=1)
    config["discriminator_params"]["phase_shuffle"] = 2
    Trainer(config, CORPUS / "train.txt", tmp_path, device="cpu", progress=False).train(max_steps=1)


@pytest.mark.parametrize("name", ["parallel_wavegan", "specgan"])
def test_resume_equals_uninterrupted(name, small_corpus, tmp_path):
    """Stop at step 2 (a checkpoint), resume in a fresh Trainer to step 4: bitwise the uninterrupted run's state."""
    steps = 4 if name != "specgan" else 2
    config = tiny_config(name, discriminator_train_start_steps=1, save_interval_steps=steps // 2)
    if name == "specgan":
        config["critic_steps"] = 2
    data = small_corpus / "train"
    full = Trainer(config, data, tmp_path / "full", device="cpu", progress=False)
    full.train(max_steps=steps)
    first = Trainer(config, data, tmp_path / "split", device="cpu", progress=False)
    first.train(max_steps=steps // 2)
    torch.randn(100)  # a process that went on drawing random numbers after its last checkpoint
    del first
    resumed = Trainer(config, data, tmp_path / "split", device="cpu", progress=False, resume=True)
    assert resumed.steps == steps // 2
    resumed.train(max_steps=steps)
    expected, actual = _params(full), _params(resumed)
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), f"{key} differs after resume"
    for opt_name, opt in full.optimizers.items():
        a, b = opt.state_dict()["state"], resumed.optimizers[opt_name].state_dict()["state"]
        for i in a:
            for k in a[i]:
                assert torch.equal(torch.as_tensor(a[i][k]), torch.as_tensor(b[i][k])), f"{opt_name} state {i}.{k}"
    rows = (tmp_path / "split" / "losses.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == [str(s) for s in range(1, steps + 1)]


def test_killed_process_resumes_to_the_uninterrupted_result(small_corpus, tmp_path):
    """SIGKILL a `fastgan train` process after its first checkpoint (step K); `--resume` to K + 3 reaches the state
    of an uninterrupted run of K + 3 steps."""
    import yaml

    config = tiny_config("melgan", discriminator_train_start_steps=1, save_interval_steps=2, train_max_steps=1000)
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump({k: v for k, v in config.items() if not k.startswith("_")}))
    data, out = small_corpus / "train", tmp_path / "killed"
    env = _subprocess_env()
    cmd = [sys.executable, "-m", "fastgan", "train", "--config", str(config_path), "--data", str(data)]
    cmd += ["--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while latest_checkpoint(out) is None and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    killed_at = torch.load(latest_checkpoint(out), weights_only=False)["steps"]
    end = killed_at + 3
    resumed = subprocess.run([*cmd, "--resume", "--steps", str(end)], env=env, capture_output=True)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert f"resumed from {out / f'checkpoint-{killed_at}steps.pkl'}" in resumed.stderr.decode()
    full = Trainer(config, data, tmp_path / "full", device="cpu", progress=False)
    full.train(max_steps=end)
    state = torch.load(latest_checkpoint(out), weights_only=False)
    assert state["steps"] == end
    for name, params in _params(full).items():
        model, key = name.split(".", 1)
        assert torch.equal(state["model"][model][key], params), f"{name} differs after kill at {killed_at} and resume"


def test_ctrl_c_stops_after_the_step_with_a_checkpoint(small_corpus, tmp_path):
    """SIGINT during step 3 (of 10; checkpoints every 1000 steps): the step finishes, a checkpoint of step 3 is
    written, the handlers are restored, and resuming to step 5 equals an uninterrupted 5-step run."""
    config = tiny_config("melgan", discriminator_train_start_steps=1, save_interval_steps=1000)
    data = small_corpus / "train"
    trainer = Trainer(config, data, tmp_path / "stopped", device="cpu", progress=False)
    step, calls = trainer._vocoder_step, []

    def step_then_signal(it):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)  # arrives mid-step, as a Ctrl-C would
        return step(it)

    trainer._vocoder_step = step_then_signal
    before = signal.getsignal(signal.SIGINT)
    summary = trainer.train(max_steps=10)
    assert summary["interrupted"] and summary["steps"] == 3 and len(calls) == 3
    assert Path(summary["checkpoint"]).name == "checkpoint-3steps.pkl"
    assert signal.getsignal(signal.SIGINT) is before
    resumed = Trainer(config, data, tmp_path / "stopped", device="cpu", progress=False, resume=True)
    assert resumed.steps == 3
    resumed.train(max_steps=5)
    full = Trainer(config, data, tmp_path / "full", device="cpu", progress=False)
    full.train(max_steps=5)
    for name, params in _params(full).items():
        assert torch.equal(_params(resumed)[name], params), f"{name} differs after Ctrl-C at step 3 and resume"


def test_sigterm_stops_the_cli_with_a_checkpoint(small_corpus, tmp_path):
    """A scheduler's SIGTERM to `fastgan train`: exit status 1 after the step in progress, with its checkpoint."""
    import yaml

    config = tiny_config("melgan", discriminator_train_start_steps=1, save_interval_steps=1000, train_max_steps=1000)
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump({k: v for k, v in config.items() if not k.startswith("_")}))
    out = tmp_path / "run"
    env = _subprocess_env()
    cmd = [
        sys.executable,
        "-m",
        "fastgan",
        "train",
        "--config",
        str(config_path),
        "--data",
        str(small_corpus / "train"),
    ]
    proc = subprocess.Popen([*cmd, "--out", str(out), "--no-progress"], env=env, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    csv_path = out / "losses.csv"
    while proc.poll() is None and time.time() < deadline:  # two logged steps: the loop is running
        if csv_path.exists() and len(csv_path.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, err.decode()[-2000:]
    assert "interrupted; --resume continues" in err.decode()
    state = torch.load(latest_checkpoint(out), weights_only=False)
    assert state["steps"] >= 2 and state["steps"] == len(csv_path.read_text().splitlines()) - 1


def test_non_finite_loss_stops_without_a_broken_checkpoint(small_corpus, tmp_path):
    # lambda_adv = NaN: steps 0-1 (no adversarial term) are fine and checkpointed; step 2 must stop the run.
    config = tiny_config("melgan", discriminator_train_start_steps=1, save_interval_steps=1, lambda_adv=float("nan"))
    trainer = Trainer(config, small_corpus / "train", tmp_path, device="cpu", progress=False)
    with pytest.raises(NonFiniteLossError, match=r"step 2: loss generator_loss is nan"):
        trainer.train(max_steps=5)
    assert latest_checkpoint(tmp_path).name == "checkpoint-2steps.pkl"
    state = torch.load(latest_checkpoint(tmp_path), weights_only=False)
    current = _params(trainer)
    for model, params in state["model"].items():
        for key, value in params.items():
            assert torch.isfinite(value).all() if value.is_floating_point() else True
            assert torch.equal(value, current[f"{model}.{key}"]), "parameters changed after the non-finite loss"


def test_checkpoint_write_is_atomic(small_corpus, tmp_path, monkeypatch):
    config = tiny_config("melgan", discriminator_train_start_steps=10)
    trainer = Trainer(config, small_corpus / "train", tmp_path, device="cpu", progress=False)
    trainer.train(max_steps=1)
    good = latest_checkpoint(tmp_path)
    before = good.read_bytes()

    def failing_save(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    trainer.steps = 1
    with pytest.raises(OSError, match="disk full"):
        trainer.save_checkpoint()
    assert good.read_bytes() == before and latest_checkpoint(tmp_path) == good


def test_config_and_data_errors(tmp_path, capsys):
    from fastgan.cli import main

    with pytest.raises(ConfigError, match="missing required config key.*train_max_steps"):
        load_config({"sampling_rate": 22050, "fft_size": 1024, "hop_size": 256, "generator_type": "MelGANGenerator",
                     "discriminator_type": "MelGANMultiScaleDiscriminator", "batch_size": 2, "batch_max_steps": 8192})  # fmt: skip
    with pytest.raises(ConfigError, match="multiple of hop_size"):
        tiny_config("melgan", batch_max_steps=1000)
    bad = tmp_path / "bad.yaml"
    bad.write_text("sampling_rate: 22050\nfft_size: 1024\n")
    assert main(["train", "--config", str(bad), "--data", str(CORPUS), "--out", str(tmp_path / "o")]) == 2
    assert "missing required config key(s): hop_size, generator_type" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["train", "--config", "melgan", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no audio files" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="not a model in fastgan.models"):
        Trainer(tiny_config("melgan", generator_type="NoSuchGenerator"), CORPUS, tmp_path / "o", device="cpu")
    for command in ("train", "preprocess"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert "--data" in capsys.readouterr().out


def test_cli_preprocess(tmp_path, capsys):
    from fastgan.cli import main

    assert main(["preprocess", "--data", str(CORPUS / "valid.txt"), "--out", str(tmp_path), "--format", "npy", "--no-progress", "--device", "cpu"]) == 0  # fmt: skip
    assert "5 utterances" in capsys.readouterr().out
    assert (tmp_path / "stats.npy").exists() and len(list(tmp_path.glob("*-feats.npy"))) == 5


def _ddp_worker(rank: int, world: int, port: int, config: dict, data: str, out: str):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    trainer = Trainer(config, data, out, device="cpu", progress=False)
    trainer.train(max_steps=2)
    torch.save(_params(trainer), Path(out) / f"rank{rank}.pt")
    import torch.distributed as dist

    dist.destroy_process_group()


def test_ddp_two_cpu_processes(small_corpus, tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tiny_config("melgan", discriminator_train_start_steps=0, save_interval_steps=2)
    mp.spawn(_ddp_worker, args=(2, port, config, str(small_corpus / "train"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for key in ranks[0]:
        torch.testing.assert_close(ranks[0][key], ranks[1][key], rtol=1e-6, atol=1e-7, msg=f"{key} differs")
    assert latest_checkpoint(tmp_path).name == "checkpoint-2steps.pkl"  # rank 0 only
    state = torch.load(latest_checkpoint(tmp_path), weights_only=False)
    assert len(state["rng"]["ranks"]) == 2


@pytest.mark.parametrize("name", list(VOCODERS))
def test_generator_loss_is_parallel_wavegans(name):
    """The trainer's generator loss equals parallel_wavegan's trainer composition (its own models, loss modules and
    weightings) on the same weights, batch and noise."""
    from bench.train import ParallelWaveGANStep, make_trainer
    from tests.oracle import parallel_wavegan
    from tests.tolerances import TRAIN_LOSS

    pwg = parallel_wavegan()
    parallel_wavegan("models")
    parallel_wavegan("layers")
    parallel_wavegan("losses")
    trainer, it = make_trainer(name, quick=True, device=torch.device("cpu"))
    batch = next(it)
    reference = ParallelWaveGANStep(
        pwg, trainer.config, torch.device("cpu"), trainer._module("generator"), trainer._module("discriminator")
    )
    y = batch["audio"]
    torch.manual_seed(5)
    z = torch.randn(y.size(0), 1, y.size(-1))
    expected, _ = reference.generator_loss(trainer._features(batch), y, z)
    torch.manual_seed(5)  # the trainer draws the same noise
    values = trainer._vocoder_step(iter([batch]))
    assert values["generator_loss"] == pytest.approx(expected.item(), rel=TRAIN_LOSS["rel"])
    assert "discriminator_loss" in values


def test_default_model_export_loads_and_matches(small_corpus, tmp_path):
    from fastgan.default_model import Vocoder, export, griffin_lim_from_mel

    config = tiny_config("multiband_melgan", discriminator_train_start_steps=1)
    trainer = Trainer(config, small_corpus / "train", tmp_path, device="cpu", progress=False)
    checkpoint = trainer.train(max_steps=2)["checkpoint"]
    exported = export(checkpoint, tmp_path / "default.pt")
    assert exported.stat().st_size < Path(checkpoint).stat().st_size
    original, shipped = Vocoder.load(checkpoint), Vocoder.load(exported)
    audio = torch.from_numpy(trainer.dataset.utterance(0).audio[:8192].copy())
    mel = original.features(audio)
    expected, actual = original(mel), shipped(mel)
    assert actual.shape == (mel.shape[-1] * 64,)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)  # weight norm folded: same math, reordered
    gl = griffin_lim_from_mel(mel, original, iterations=4)
    assert gl.shape == ((mel.shape[-1] - 1) * 64,) and torch.isfinite(gl).all()


def test_segments_shorter_than_the_stft_losses_ffts_are_a_config_error(small_corpus, tmp_path):
    """Said when the trainer is built, not as a crash at the first step (1024-sample segments here)."""
    with pytest.raises(
        ConfigError, match=r"batch_max_steps=1024 is shorter than stft_loss_params' largest fft_size=2048"
    ):
        Trainer(tiny_config("melgan", stft_loss_params={}), small_corpus / "train", tmp_path, device="cpu")
    subband = {"fft_sizes": [384, 683, 171], "hop_sizes": [30, 60, 10], "win_lengths": [150, 300, 60]}
    with pytest.raises(ConfigError, match=r"1024 / 4 sub-bands = 256 samples is shorter than subband_stft_loss_params"):
        Trainer(tiny_config("multiband_melgan", subband_stft_loss_params=subband), small_corpus / "train", tmp_path,
                device="cpu")  # fmt: skip


def test_validation_leaves_out_utterances_shorter_than_its_stft(small_corpus, tmp_path, caplog):
    """A held-out utterance under the STFT distance's 2048-sample FFT is left out with a warning; validation
    (and the run) goes on with the others."""
    sf = pytest.importorskip("soundfile", reason="soundfile (to write the short wav) is not installed")

    valid = tmp_path / "valid"
    shutil.copytree(small_corpus / "valid", valid)
    sf.write(valid / "blip.wav", np.zeros(1500, dtype=np.float32) + 0.01, 22050)
    trainer = Trainer(tiny_config("melgan"), small_corpus / "train", tmp_path / "run", valid=valid, device="cpu",
                      progress=False)  # fmt: skip
    assert len(trainer.valid) == 2
    with caplog.at_level("WARNING", logger="fastgan.train"):
        first, second = trainer.validate(), trainer.validate()
    assert first == second and np.isfinite(first)
    assert [r.getMessage() for r in caplog.records if "blip.wav" in r.getMessage()] != []
    assert sum("blip.wav" in r.getMessage() for r in caplog.records) == 1  # said once


def test_time_budget_stops_with_a_checkpoint(small_corpus, tmp_path):
    trainer = Trainer(tiny_config("melgan"), small_corpus / "train", tmp_path, device="cpu", progress=False)
    summary = trainer.train(max_seconds=0.0)  # the budget is checked before each step
    assert summary["steps"] == 0 and summary["checkpoint"].endswith("checkpoint-0steps.pkl")


def test_parallel_wavegan_checkpoint_loads(tmp_path):
    """A generator saved in parallel_wavegan's layout (its own model class, config.yml and stats.h5 beside it)."""
    import yaml

    from fastgan.audio import MelStats, save_stats
    from tests.oracle import parallel_wavegan

    models = parallel_wavegan("models")
    config = tiny_config("hifigan_v1")
    theirs = models.HiFiGANGenerator(**config["generator_params"])
    torch.save({"model": {"generator": theirs.state_dict()}, "steps": 7}, tmp_path / "checkpoint-7steps.pkl")
    (tmp_path / "config.yml").write_text(yaml.safe_dump({k: v for k, v in config.items() if not k.startswith("_")}))
    save_stats(tmp_path / "stats.h5", MelStats(torch.zeros(20).numpy(), torch.ones(20).numpy()))
    with pytest.raises(ConfigError, match="needs its config.yml"):
        load_generator(tmp_path / "checkpoint-7steps.pkl")
    ours, _, stats = load_generator(
        tmp_path / "checkpoint-7steps.pkl", config=tmp_path / "config.yml", stats=tmp_path / "stats.h5"
    )
    assert stats.num_mels == 20
    mel = torch.randn(1, 20, 12)
    with torch.no_grad():
        torch.testing.assert_close(ours(mel), theirs.eval()(mel), rtol=1e-5, atol=1e-6)


def test_lazy_loading_reports_bad_files_and_trains(small_corpus, tmp_path, caplog):
    """allow_cache: false decodes in the loader; a file whose body is corrupt is reported once and skipped."""
    import logging

    data = tmp_path / "data"
    shutil.copytree(small_corpus / "train", data)
    (data / "broken.flac").write_bytes((CORPUS / "arctic" / "arctic_a0007.wav").read_bytes()[:40])
    caplog.set_level(logging.WARNING, logger="fastgan.data")
    config = tiny_config("melgan", allow_cache=False, discriminator_train_start_steps=1)
    trainer = Trainer(config, data, tmp_path / "out", device="cpu", progress=False)
    trainer.train(max_steps=3)
    assert len([r for r in caplog.records if "broken.flac" in r.getMessage()]) == 1


# ---------------------------------------------------------------------------------------------------------------------
# Regressions: a trained checkpoint is usable, runs never lose work, resume and config errors are one clear line.


def _train(config, data, out, steps, **kwargs) -> tuple[Trainer, dict]:
    trainer = Trainer(config, data, out, device="cpu", progress=False, **kwargs)
    return trainer, trainer.train(max_steps=steps)


def _cli(capsys, *argv) -> tuple[int, str]:
    from fastgan.cli import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_a_trained_checkpoint_vocodes_and_loads_on_its_own(small_corpus, tmp_path, capsys):
    """`fastgan train`'s checkpoint is a weights-only file with its config and stats inside: `fastgan vocode` and
    fastgan.load_generator take it as is, also copied away from its run folder."""
    sf = pytest.importorskip("soundfile", reason="soundfile (to write the short wav) is not installed")

    import fastgan

    trainer, summary = _train(tiny_config("melgan", discriminator_train_start_steps=1), small_corpus / "train",
                              tmp_path / "run", 2)  # fmt: skip
    checkpoint = Path(summary["checkpoint"])
    torch.load(checkpoint, weights_only=True)  # no numpy objects (RNG state, stats) that need an allowlist
    alone = tmp_path / "alone" / checkpoint.name  # no config.yml, no stats.npy beside it
    alone.parent.mkdir()
    shutil.copy(checkpoint, alone)
    wav = CORPUS / "arctic" / "arctic_a0009.wav"
    for path in (checkpoint, alone):
        code = _cli(capsys, "vocode", "--no-progress", "--checkpoint", path, wav, "--out", tmp_path / path.parent.name)
        assert code[0] == 0, code[1]
        audio, rate = sf.read(tmp_path / path.parent.name / wav.name, dtype="float32")
        assert rate == 22050 and audio.size > 0 and np.abs(audio).max() > 0
    ours = trainer._module("generator").eval()
    mel = torch.randn(1, 20, 24)
    for path in (checkpoint, alone):
        generator = fastgan.load_generator(path)
        assert torch.equal(generator.mean, torch.from_numpy(trainer.stats.mean))  # the run's statistics
        with torch.no_grad():
            torch.testing.assert_close(generator(mel), ours(mel), rtol=0, atol=0)


def test_resume_restores_the_numpy_and_python_rng_exactly(small_corpus, tmp_path):
    """The RNG states are stored weights-only (tensors, ints), and restore to the very states saved; checkpoints of
    the earlier layout (numpy's state tuple) still resume."""
    import random

    trainer, summary = _train(tiny_config("melgan"), small_corpus / "train", tmp_path / "run", 1)
    state = torch.load(summary["checkpoint"], weights_only=True)
    saved_numpy, saved_python = np.random.get_state(), random.getstate()
    np.random.rand(7), random.random()
    Trainer(tiny_config("melgan"), small_corpus / "train", tmp_path / "run", device="cpu", resume=True)
    assert np.random.rand() == (np.random.set_state(saved_numpy) or np.random.rand())
    assert random.getstate() == saved_python
    # the earlier layout: numpy's (name, uint32 keys, pos, has_gauss, cached) tuple
    state["rng"]["numpy"] = saved_numpy
    torch.save(state, summary["checkpoint"])
    np.random.rand(3)
    Trainer(tiny_config("melgan"), small_corpus / "train", tmp_path / "run", device="cpu", resume=True)
    expected = (np.random.set_state(saved_numpy) or np.random.rand(4)).tolist()
    np.random.set_state(saved_numpy)
    Trainer(tiny_config("melgan"), small_corpus / "train", tmp_path / "run", device="cpu", resume=True)
    assert np.random.rand(4).tolist() == expected


def test_a_fresh_run_refuses_an_out_with_checkpoints(small_corpus, tmp_path, capsys):
    import yaml

    config = tiny_config("melgan", discriminator_train_start_steps=10)
    out = tmp_path / "run"
    _train(config, small_corpus / "train", out, 3)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match=r"checkpoint-3steps\.pkl.*--resume.*another --out"):
        Trainer(config, small_corpus / "train", out, device="cpu")
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump({k: v for k, v in config.items() if not k.startswith("_")}))
    code, err = _cli(capsys, "train", "--config", config_path, "--data", small_corpus / "train", "--out", out,
                     "--steps", 2, "--no-progress")  # fmt: skip
    assert code == 2 and "--resume" in err and len(err.strip().splitlines()) == 1, err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # nothing of it touched


def test_pruning_never_deletes_the_checkpoint_just_written(small_corpus, tmp_path):
    """A stale checkpoint with more steps (from a timeline abandoned by a resume) does not push out the new one."""
    config = tiny_config("melgan", discriminator_train_start_steps=10, keep_checkpoints=1)
    trainer = Trainer(config, small_corpus / "train", tmp_path, device="cpu", progress=False)
    (tmp_path / "checkpoint-100steps.pkl").write_bytes(b"stale")
    summary = trainer.train(max_steps=2)
    assert Path(summary["checkpoint"]).name == "checkpoint-2steps.pkl" and Path(summary["checkpoint"]).is_file()
    torch.load(summary["checkpoint"], weights_only=True)


def test_resuming_an_incompatible_checkpoint_is_a_config_error(small_corpus, tmp_path, capsys):
    import yaml

    data, out = small_corpus / "train", tmp_path / "run"
    _train(tiny_config("melgan", discriminator_train_start_steps=10), data, out, 2)
    wider = tiny_config("melgan", generator_params=dict(VOCODERS["melgan"]["generator_params"], channels=128))
    with pytest.raises(ConfigError, match=r"checkpoint-2steps\.pkl: .*generator.*size mismatch") as info:
        Trainer(wider, data, out, device="cpu", resume=True)
    assert len(str(info.value)) < 800  # a few keys named, not hundreds
    with pytest.raises(ConfigError, match=r"checkpoint-2steps\.pkl: .*generator.*(missing|unexpected) keys"):
        Trainer(tiny_config("hifigan_v1"), data, out, device="cpu", resume=True)
    config_path = tmp_path / "wide.yaml"
    config_path.write_text(yaml.safe_dump({k: v for k, v in wider.items() if not k.startswith("_")}))
    code, err = _cli(capsys, "train", "--config", config_path, "--data", data, "--out", out, "--resume",
                     "--no-progress")  # fmt: skip
    assert code == 2 and "checkpoint-2steps.pkl" in err and len(err.strip().splitlines()) == 1, err
    state = torch.load(out / "checkpoint-2steps.pkl", weights_only=True)
    del state["model"]["discriminator"]
    torch.save(state, out / "checkpoint-2steps.pkl")
    with pytest.raises(ConfigError, match=r"checkpoint-2steps\.pkl: .*no discriminator"):
        Trainer(tiny_config("melgan"), data, out, device="cpu", resume=True)


def test_an_unreadable_newest_checkpoint_falls_back_to_the_previous(small_corpus, tmp_path, caplog):
    import logging

    config = tiny_config("melgan", discriminator_train_start_steps=1, save_interval_steps=1)
    data, out = small_corpus / "train", tmp_path / "run"
    _train(config, data, out, 2)
    good = (out / "checkpoint-2steps.pkl").read_bytes()
    (out / "checkpoint-3steps.pkl").write_bytes(good[: len(good) // 2])  # cut short: a crash mid-copy
    (out / "checkpoint-4steps.pkl").mkdir()
    with caplog.at_level(logging.WARNING, logger="fastgan.train"):
        resumed = Trainer(config, data, out, device="cpu", progress=False, resume=True)
    assert resumed.steps == 2 and resumed.resumed_from == out / "checkpoint-2steps.pkl"
    warnings = " ".join(r.getMessage() for r in caplog.records)
    assert "checkpoint-3steps.pkl" in warnings and "checkpoint-4steps.pkl" in warnings
    for name in ("checkpoint-1steps.pkl", "checkpoint-2steps.pkl"):
        (out / name).write_bytes(b"junk")
    with pytest.raises(ConfigError, match=r"no readable checkpoint in .*checkpoint-4steps\.pkl"):
        Trainer(config, data, out, device="cpu", resume=True)


def test_resume_takes_the_configs_new_optimizer_settings(small_corpus, tmp_path):
    """A changed lr (or betas, weight decay ...) takes effect on resume, the scheduler's decay so far applied to it;
    the checkpoint's own settings apply when the config keeps them."""
    schedule = {"step_size": 1, "gamma": 0.5}
    config = tiny_config("melgan", discriminator_train_start_steps=10, generator_scheduler_params=schedule,
                         generator_optimizer_params={"lr": 1e-3})  # fmt: skip
    data, out = small_corpus / "train", tmp_path / "run"
    _train(config, data, out, 2)
    same = Trainer(config, data, out, device="cpu", resume=True)
    assert same.optimizers["generator"].param_groups[0]["lr"] == 1e-3 * 0.25
    changed = tiny_config("melgan", discriminator_train_start_steps=10, generator_scheduler_params=schedule,
                          generator_optimizer_params={"lr": 4e-3, "betas": [0.8, 0.99]})  # fmt: skip
    resumed = Trainer(changed, data, out, device="cpu", progress=False, resume=True)
    group = resumed.optimizers["generator"].param_groups[0]
    assert group["lr"] == pytest.approx(4e-3 * 0.25) and tuple(group["betas"]) == (0.8, 0.99)
    resumed.train(max_steps=3)
    assert resumed.optimizers["generator"].param_groups[0]["lr"] == pytest.approx(4e-3 * 0.125)
    with pytest.raises(ConfigError, match="generator_optimizer_type"):
        Trainer(tiny_config("melgan", generator_optimizer_type="RAdam"), data, out, device="cpu", resume=True)


@pytest.mark.parametrize(
    "setting, message",
    [
        ("save_interval_steps=0", "save_interval_steps must be an integer >= 1, got 0"),
        ("log_interval_steps=0", "log_interval_steps must be an integer >= 1"),
        ("eval_interval_steps=-5", "eval_interval_steps must be an integer >= 1"),
        ("batch_size=0", "batch_size must be an integer >= 1"),
        ("batch_size=", "batch_size must be an integer >= 1, got None"),
        ("hop_size=abc", "hop_size must be an integer >= 1, got 'abc'"),
        ("train_max_steps=1.5", "train_max_steps must be an integer >= 1"),
        ("keep_checkpoints=-1", "keep_checkpoints must be an integer >= 0"),
        ("generator_params=3", "generator_params must be a mapping"),
        ("lambda_adv=x", "lambda_adv must be a number"),
        ("use_stft_loss=maybe", "use_stft_loss must be true or false"),
    ],
)
def test_config_values_of_the_wrong_type_or_range_are_named(setting, message, tmp_path, capsys):
    code, err = _cli(capsys, "train", "--config", "melgan", "--data", CORPUS, "--out", tmp_path / "o", "--set",
                     setting)  # fmt: skip
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_config_file_and_constructor_errors_are_named(small_corpus, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sampling_rate: 22050\ngenerator_params: {channels: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_config(bad)
    code, err = _cli(capsys, "train", "--config", bad, "--data", CORPUS, "--out", tmp_path / "o")
    assert code == 2 and "bad.yaml: not valid YAML" in err and len(err.strip().splitlines()) == 1, err
    typo = tiny_config("melgan")
    typo["generator_params"]["chanels"] = 8
    with pytest.raises(ConfigError, match=r"generator_params.*MelGANGenerator.*chanels"):
        Trainer(typo, small_corpus / "train", tmp_path / "o", device="cpu")
    with pytest.raises(ConfigError, match=r"discriminator_params.*MelGANMultiScaleDiscriminator"):
        Trainer(tiny_config("melgan", discriminator_params={"scales": "two"}), small_corpus / "train",
                tmp_path / "o", device="cpu")  # fmt: skip
    with pytest.raises(ConfigError, match=r"generator_optimizer_params"):
        Trainer(tiny_config("melgan", generator_optimizer_params={"lr": 1e-4, "betaz": 1}), small_corpus / "train",
                tmp_path / "o", device="cpu")  # fmt: skip


def test_unknown_top_level_keys_warn_and_dotted_overrides_set_nested_keys(caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="fastgan.train"):
        for name in ("melgan", "parallel_wavegan", "hifigan_v1", "multiband_melgan", "default_vocoder", "wavegan",
                     "wavegan_conditional", "wavegan_controllable", "specgan", "hifigan_v2", "hifigan_v3"):  # fmt: skip
            load_config(name)
        pwg_keys = {"trim_silence": False, "format": "hdf5", "outdir": "exp", "version": "0.6.1", "allow_cache": True}
        load_config("melgan", pwg_keys)
    assert caplog.records == []  # the bundled configs and parallel_wavegan's own keys are known
    with caplog.at_level(logging.WARNING, logger="fastgan.train"):
        config = load_config("melgan", {"lambda_advv": 2.0})
    assert config["lambda_adv"] == 4.0
    assert any("lambda_advv" in r.getMessage() and "lambda_adv" in r.getMessage().split("lambda_advv", 1)[1]
               for r in caplog.records)  # fmt: skip
    config = load_config("melgan", {"generator_params.channels": 8, "stft_loss_params.fft_sizes": [64, 128, 32]})
    assert config["generator_params"]["channels"] == 8 and "generator_params.channels" not in config
    assert config["generator_params"]["upsample_scales"] == [8, 8, 2, 2]  # the rest of the mapping is kept
    assert config["stft_loss_params"]["fft_sizes"] == [64, 128, 32]
    with pytest.raises(ConfigError, match=r"--set hop_size\.x: hop_size is not a mapping"):
        load_config("melgan", {"hop_size.x": 1})


def test_features_that_do_not_fit_the_generator_are_named_at_start_up(small_corpus, tmp_path):
    data = small_corpus / "train"
    with pytest.raises(
        ConfigError, match=r"hop_size=128 but .* 64 samples per frame \(generator_params\.upsample_scales"
    ):
        Trainer(tiny_config("melgan", hop_size=128, batch_max_steps=2048), data, tmp_path, device="cpu")
    with pytest.raises(
        ConfigError, match=r"hop_size=128 but .* 64 samples per frame \(generator_params\.upsample_params"
    ):
        Trainer(tiny_config("parallel_wavegan", hop_size=128, batch_max_steps=2048), data, tmp_path, device="cpu")
    with pytest.raises(ConfigError, match=r"hop_size=128.*x out_channels 4"):
        Trainer(tiny_config("multiband_melgan", hop_size=128, batch_max_steps=2048), data, tmp_path, device="cpu")
    with pytest.raises(ConfigError, match=r"num_mels=40.*generator_params\.in_channels=20"):
        Trainer(tiny_config("melgan", num_mels=40), data, tmp_path, device="cpu")
    with pytest.raises(ConfigError, match=r"num_mels=40.*generator_params\.aux_channels=20"):
        Trainer(tiny_config("parallel_wavegan", num_mels=40), data, tmp_path, device="cpu")
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize(
    "option, message",
    [
        (("--device", "gpu0"), "--device 'gpu0': not a device torch knows"),
        (("--device", "cuda:7"), "--device 'cuda:7': "),
        (("--out", "FILE"), "is a file, not a folder"),
    ],
)
def test_bad_device_or_out_is_one_line(option, message, tmp_path, capsys):
    (tmp_path / "afile").write_text("keep me")
    args = ["train", "--config", "melgan", "--data", CORPUS, "--no-progress"]
    out = ["--out", tmp_path / "o"] if option[0] != "--out" else ["--out", tmp_path / "afile"]
    extra = list(option) if option[0] == "--device" else []
    code, err = _cli(capsys, *args, *out, *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert (tmp_path / "afile").read_text() == "keep me"


def _csv_rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_resume_with_new_loss_columns_keeps_the_history(small_corpus, tmp_path):
    config = tiny_config("melgan", discriminator_train_start_steps=10, save_interval_steps=2)
    data, out = small_corpus / "train", tmp_path / "run"
    _train(config, data, out, 2)
    old = _csv_rows(out / "losses.csv")
    _train(config, data, out, 3, resume=True, valid=small_corpus / "valid")
    rows = _csv_rows(out / "losses.csv")
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    for before, after in zip(old, rows, strict=False):
        assert after["valid_stft_distance"] == ""
        assert {k: after[k] for k in before} == before  # every old cell kept, under its own column
    assert rows[-1]["generator_loss"] != ""
    _train(config, data, out, 4, resume=True)  # the column goes again: its values stay
    rows = _csv_rows(out / "losses.csv")
    assert [r["step"] for r in rows] == ["1", "2", "3", "4"] and "valid_stft_distance" in rows[0]


def test_resuming_a_finished_run_names_its_checkpoint(small_corpus, tmp_path, capsys):
    import yaml

    config = tiny_config("melgan", discriminator_train_start_steps=10, train_max_steps=2)
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump({k: v for k, v in config.items() if not k.startswith("_")}))
    out = tmp_path / "run"
    args = ["train", "--config", config_path, "--data", small_corpus / "train", "--out", out, "--no-progress"]
    assert _cli(capsys, *args)[0] == 0
    from fastgan.cli import main

    assert main([str(a) for a in args] + ["--resume"]) == 0
    printed = capsys.readouterr().out
    assert "None" not in printed and "already at step 2" in printed and "checkpoint-2steps.pkl" in printed


def test_a_failed_save_leaves_no_temporary_file(small_corpus, tmp_path, monkeypatch):
    import errno

    trainer = Trainer(tiny_config("melgan"), small_corpus / "train", tmp_path, device="cpu", progress=False)

    def no_space(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(OSError, match="No space left"):
        trainer.save_checkpoint()
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []
