"""``fastgan vocode``: the bundled speech in, wavs of frames x hop samples out; every bad input named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fastgan import cli
from tests.conftest import INTERPRETER

sf = pytest.importorskip("soundfile", reason="the vocode CLI reads and writes wav files with soundfile")

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"
HOP = 256
PARAMS = dict(
    in_channels=80, out_channels=1, channels=32, upsample_scales=[8, 8, 2, 2], upsample_kernel_sizes=[16, 16, 4, 4],
    resblock_kernel_sizes=[3], resblock_dilations=[[1]],
)  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A small HiFi-GAN in parallel_wavegan's checkpoint layout, config.yml and stats.npy beside it."""
    from fastgan.models import HiFiGANGenerator

    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    generator = HiFiGANGenerator(**PARAMS)
    torch.save({"model": {"generator": generator.state_dict()}, "steps": 10}, folder / "checkpoint-10steps.pkl")
    config = dict(sampling_rate=22050, fft_size=1024, hop_size=HOP, win_length=None, window="hann", num_mels=80,
                  fmin=80, fmax=7600, format="npy", generator_type="HiFiGANGenerator", generator_params=PARAMS)  # fmt: skip
    (folder / "config.yml").write_text(yaml.safe_dump(config))
    np.save(folder / "stats.npy", np.stack([np.full(80, -2.5), np.full(80, 1.5)]).astype(np.float32))
    return folder / "checkpoint-10steps.pkl"


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> list[Path]:
    """Two bundled utterances (cut to 0.3 s in the interpreter pass, where every kernel program is slow)."""
    files = [CORPUS / "arctic" / "arctic_a0009.wav", CORPUS / "espeak_en-us" / "s02.wav"]
    if not INTERPRETER:
        return files
    folder = tmp_path_factory.mktemp("speech")
    cut = []
    for path in files:
        audio, rate = sf.read(path, dtype="float32")
        target = folder / path.name.replace(".wav", f"-{path.parent.name}.wav")
        sf.write(target, audio[int(0.5 * rate) : int(0.8 * rate)], rate)
        cut.append(target)
    return cut


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(["vocode", "--no-progress", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_vocodes_bundled_speech(checkpoint, speech, tmp_path, capsys):
    code, out, err = _run(capsys, "--checkpoint", checkpoint, *speech, "--out", tmp_path / "out", "--batch-size", 2)
    assert code == 0, err
    assert "real-time factor" in out
    for path in speech:
        samples = sf.info(str(path)).frames
        audio, rate = sf.read(tmp_path / "out" / path.name, dtype="float32")
        assert rate == 22050
        assert audio.shape == ((1 + samples // HOP) * HOP,)  # centred STFT frames x hop
        assert np.isfinite(audio).all() and np.abs(audio).max() > 0


PLUMBING = pytest.mark.skipif(
    INTERPRETER,
    reason="CLI plumbing, the same on either path: the interpreter pass runs only test_vocodes_bundled_speech "
    "(the kernels themselves are covered by their own suites)",
)


@PLUMBING
def test_npy_features_give_the_same_audio_as_the_wav(checkpoint, speech, tmp_path, capsys):
    from fastgan.vocode import load_vocoder

    vocoder = load_vocoder(checkpoint)
    audio, _ = sf.read(speech[0], dtype="float32")
    mel = vocoder.features(audio)
    np.save(tmp_path / "feats.npy", mel)
    code, _, err = _run(
        capsys, "--checkpoint", checkpoint, speech[0], tmp_path / "feats.npy", "--out", tmp_path / "out"
    )
    assert code == 0, err
    from_wav, _ = sf.read(tmp_path / "out" / speech[0].name, dtype="float32")
    from_npy, _ = sf.read(tmp_path / "out" / "feats.wav", dtype="float32")
    assert from_npy.shape == (mel.shape[0] * HOP,)
    np.testing.assert_allclose(from_npy, from_wav, atol=2 / 32768)  # the same model output, PCM-16 rounding


@PLUMBING
def test_each_bad_input_is_named_and_the_rest_written(checkpoint, speech, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.wav").write_bytes(b"")
    (bad / "junk.wav").write_bytes(b"this is not a wav file at all" * 10)
    sf.write(bad / "rate16k.wav", np.zeros(8000, np.float32), 16000)
    np.save(bad / "dims.npy", np.zeros((20, 40), np.float32))
    missing = bad / "missing.wav"
    inputs = [bad / "empty.wav", bad / "junk.wav", bad / "rate16k.wav", bad / "dims.npy", missing, speech[0]]
    code, _, err = _run(capsys, "--checkpoint", checkpoint, *inputs, "--out", tmp_path / "out")
    assert code != 0
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    expected = {
        "empty.wav": "empty file",
        "junk.wav": "unreadable audio",
        "rate16k.wav": "sample rate 16000 Hz",
        "dims.npy": "mel must be (frames, 80)",
        "missing.wav": "no such file",
    }
    assert len(lines) == len(expected), err
    for name, reason in expected.items():
        assert any(str(bad / name) in line and reason in line for line in lines), (name, err)
    assert (tmp_path / "out" / speech[0].name).exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [speech[0].name]


@PLUMBING
def test_the_exported_default_format_is_the_default_model(checkpoint, speech, tmp_path, capsys, monkeypatch):
    """``python -m fastgan.default_model export``'s file: fp16 weights, config and numpy stats inside."""
    state = torch.load(checkpoint, weights_only=True)["model"]["generator"]
    config = yaml.safe_load((checkpoint.parent / "config.yml").read_text())
    payload = {
        "model": {"generator": {k: v.half() for k, v in state.items()}},
        "config": config,
        "stats": {"mean": np.full(80, -2.5, np.float32), "scale": np.full(80, 1.5, np.float32)},
        "steps": 10,
    }
    folder = tmp_path / "pretrained"
    folder.mkdir()
    torch.save(payload, folder / "default_vocoder.pt")
    monkeypatch.setenv("FASTGAN_DEFAULT_MODEL", str(folder))
    code, out, err = _run(capsys, speech[0], "--out", tmp_path / "out")
    assert code == 0, err
    assert "default_vocoder.pt" not in err
    from_default, _ = sf.read(tmp_path / "out" / speech[0].name, dtype="float32")
    # The same model with the same fp16-rounded weights, in parallel_wavegan's layout beside the config.
    rounded = checkpoint.parent / "rounded.pkl"
    torch.save({"model": {"generator": {k: v.half().float() for k, v in state.items()}}}, rounded)
    code, _, err = _run(capsys, "--checkpoint", rounded, speech[0], "--out", tmp_path / "ref")
    assert code == 0, err
    reference, _ = sf.read(tmp_path / "ref" / speech[0].name, dtype="float32")
    np.testing.assert_allclose(from_default, reference, atol=2 / 32768)  # same model: PCM-16 rounding only


def test_without_a_default_model_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FASTGAN_DEFAULT_MODEL", str(tmp_path / "nothing-here"))
    code, _, err = _run(capsys, CORPUS / "arctic" / "arctic_a0009.wav", "--out", tmp_path / "out")
    assert code == 2
    assert "no default model is shipped" in err and "--checkpoint" in err
    assert not (tmp_path / "out").exists()


def test_an_unloadable_checkpoint_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "checkpoint.pkl").write_bytes(b"not a checkpoint")
    code, _, err = _run(capsys, "--checkpoint", tmp_path / "checkpoint.pkl", CORPUS / "arctic" / "arctic_a0009.wav",
                        "--out", tmp_path / "out")  # fmt: skip
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "checkpoint.pkl" in err
