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
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
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
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
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
    import soundfile as sf

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
