"""``fastgan vocode``: the bundled speech in, wavs of frames x hop samples out; every bad input named."""

from __future__ import annotations

import json
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


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty file, not a checkpoint"),
        (b"not a checkpoint", "not a readable torch checkpoint"),
        ((CORPUS / "arctic" / "arctic_a0009.wav").read_bytes(), "not a readable torch checkpoint"),  # a wav by mistake
    ],
    ids=["empty", "junk", "wav"],
)
def test_an_unloadable_checkpoint_is_one_clear_line(tmp_path, capsys, content, reason):
    """The same words as fastgan.load_generator for the same file: both go through checkpoints.load_checkpoint."""
    (tmp_path / "checkpoint.pkl").write_bytes(content)
    code, _, err = _run(capsys, "--checkpoint", tmp_path / "checkpoint.pkl", CORPUS / "arctic" / "arctic_a0009.wav",
                        "--out", tmp_path / "out")  # fmt: skip
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and f"{tmp_path / 'checkpoint.pkl'}: {reason}" in err, err
    assert not (tmp_path / "out").exists()


def _cut(source: Path, seconds: float, target: Path) -> Path:
    """The first ``seconds`` of a bundled utterance as ``target``: lengths tell the outputs apart."""
    audio, rate = sf.read(source, dtype="float32")
    target.parent.mkdir(parents=True, exist_ok=True)
    sf.write(target, audio[: int(seconds * rate)], rate)
    return target


def _frames_of(path: Path) -> int:
    return 1 + sf.info(str(path)).frames // HOP  # centred STFT frames


@PLUMBING
def test_same_stem_inputs_each_get_their_own_output(checkpoint, tmp_path, capsys, monkeypatch):
    """Stems alike in different folders (the bundled corpus's four s05.wav), and an input whose own name is what a
    numbered duplicate would be called: every input gets its own file, named after its folder."""
    monkeypatch.chdir(tmp_path)
    inputs = [
        _cut(CORPUS / "espeak_en-gb" / "s05.wav", 0.3, Path("d1/a.wav")),
        _cut(CORPUS / "espeak_en-us" / "s05.wav", 0.4, Path("d2/a.wav")),
        _cut(CORPUS / "arctic" / "arctic_a0009.wav", 0.5, Path("a-1.wav")),
    ]
    expected = ["d1_a.wav", "d2_a.wav", "a-1.wav"]
    code, out, err = _run(capsys, "--checkpoint", checkpoint, *inputs, "--out", "out")
    assert code == 0, err
    assert "vocoded 3 file(s)" in out
    assert sorted(p.name for p in Path("out").iterdir()) == sorted(expected)
    for path, name in zip(inputs, expected, strict=True):  # each made from its own input: its length says so
        assert sf.info(str(Path("out") / name)).frames == _frames_of(path) * HOP, name
    # The API says which output is whose: the pairs callers (the demo) use instead of rebuilding names.
    from fastgan.vocode import load_vocoder, output_names, vocode_files

    assert output_names(inputs) == expected
    assert output_names(inputs[::-1]) == expected[::-1]  # the set of inputs decides, not their order
    result = vocode_files(load_vocoder(checkpoint), inputs, "api", progress=False, log=lambda line: None)
    assert result["pairs"] == [
        (str(path), str(Path("api") / name)) for path, name in zip(inputs, expected, strict=True)
    ]


@PLUMBING
def test_an_output_that_would_overwrite_an_input_is_refused(checkpoint, tmp_path, capsys):
    """Refused up front with one line naming the file: the input is untouched and no model is loaded (a checkpoint
    that does not exist is never looked at)."""
    folder = tmp_path / "d"
    recording = _cut(CORPUS / "arctic" / "arctic_a0009.wav", 0.3, folder / "a.wav")
    original = recording.read_bytes()
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "a.wav").symlink_to(recording)
    (tmp_path / "links" / "b.wav").symlink_to(recording)
    other = _cut(CORPUS / "espeak_en-us" / "s02.wav", 0.3, tmp_path / "e" / "b.wav")
    for inputs, out, problem in (
        ([recording], folder, f"{recording}: its output {folder / 'a.wav'} would overwrite this input"),
        (  # the same file, spelt differently
            [folder / ".." / "d" / "a.wav"],
            folder,
            f"its output {folder / 'a.wav'} would overwrite this input",
        ),
        (  # the output is a link to the input
            [recording],
            tmp_path / "links",
            f"its output {tmp_path / 'links' / 'a.wav'} would overwrite this input",
        ),
        (  # another input's output is a link to this one
            [other, recording],
            tmp_path / "links",
            f"{other}: its output {tmp_path / 'links' / 'b.wav'} would overwrite the input {recording};",
        ),
    ):
        code, _, err = _run(capsys, "--checkpoint", tmp_path / "no-such.pkl", *inputs, "--out", out)
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1, err
        assert problem in err, err
        assert recording.read_bytes() == original
    # A .npy beside its recording, vocoded into their folder: the recording's name is not the .npy's output.
    from fastgan.vocode import load_vocoder

    np.save(folder / "a.npy", load_vocoder(checkpoint).features(sf.read(recording, dtype="float32")[0]))
    code, _, err = _run(capsys, "--checkpoint", checkpoint, folder / "a.npy", recording, "--out", folder)
    assert code == 0, err
    assert recording.read_bytes() == original
    assert sorted(p.name for p in folder.iterdir()) == ["a.npy", "a.wav", "d_a-1.wav", "d_a.wav"]


TINY_HOP, TINY_MELS = 64, 20
TINY_MELGAN = dict(in_channels=TINY_MELS, out_channels=1, channels=64, upsample_scales=[4, 4, 4], stacks=2)


@pytest.fixture(scope="module")
def melgan_checkpoint(tmp_path_factory) -> Path:
    """A tiny MelGAN (reflection-padded: it needs more than 3 input frames) in parallel_wavegan's layout."""
    from fastgan.models import MelGANGenerator

    folder = tmp_path_factory.mktemp("melgan")
    torch.manual_seed(0)
    generator = MelGANGenerator(**TINY_MELGAN)
    torch.save({"model": {"generator": generator.state_dict()}}, folder / "checkpoint-10steps.pkl")
    config = dict(sampling_rate=22050, fft_size=256, hop_size=TINY_HOP, num_mels=TINY_MELS, fmin=0, fmax=8000,
                  generator_type="MelGANGenerator", generator_params=TINY_MELGAN)  # fmt: skip
    (folder / "config.yml").write_text(yaml.safe_dump(config))
    return folder / "checkpoint-10steps.pkl"


def test_a_config_whose_num_mels_the_model_does_not_take_is_named(melgan_checkpoint, tmp_path):
    from fastgan.vocode import VocodeError, load_vocoder

    (tmp_path / "c.pkl").write_bytes(melgan_checkpoint.read_bytes())
    config = yaml.safe_load((melgan_checkpoint.parent / "config.yml").read_text())
    (tmp_path / "config.yml").write_text(yaml.safe_dump(dict(config, num_mels=TINY_MELS + 1)))
    with pytest.raises(
        VocodeError, match=rf"num_mels is {TINY_MELS + 1}, but the model takes {TINY_MELS} mel channels"
    ):
        load_vocoder(tmp_path / "c.pkl")


def _mel(frames: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(-2.0, 1.0, (frames, TINY_MELS)).astype(np.float32)


@PLUMBING
def test_inputs_too_short_for_the_model_are_named_and_the_rest_written(melgan_checkpoint, speech, tmp_path, capsys):
    from fastgan.vocode import load_vocoder

    assert load_vocoder(melgan_checkpoint).min_frames == 4  # ReflectionPad1d(3) on the input frames
    folder = tmp_path / "in"
    folder.mkdir()
    np.save(folder / "one.npy", _mel(1, 0))
    np.save(folder / "three.npy", _mel(3, 1))
    np.save(folder / "four.npy", _mel(4, 2))  # the shortest the model takes
    sf.write(folder / "short.wav", np.zeros(150, np.float32), 22050)  # 1 + 150 // 64 = 3 frames
    inputs = [folder / "one.npy", folder / "three.npy", folder / "short.wav", folder / "four.npy", speech[0]]
    code, _, err = _run(capsys, "--checkpoint", melgan_checkpoint, *inputs, "--out", tmp_path / "out",
                        "--batch-size", 1)  # fmt: skip
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 3, err
    for name, frames in (("one.npy", 1), ("three.npy", 3), ("short.wav", 3)):
        assert any(
            str(folder / name) in line and f"too short: {frames} frame" in line and "at least 4 frames" in line
            for line in lines
        ), (name, err)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(["four.wav", speech[0].name])
    assert sf.info(str(tmp_path / "out" / "four.wav")).frames == 4 * TINY_HOP


class _FailsOn(torch.nn.Module):
    """Wraps a generator and fails (as an out-of-memory or kernel error would) on inputs of one length."""

    def __init__(self, inner: torch.nn.Module, frames: int):
        super().__init__()
        self.inner, self.frames = inner, frames

    def forward(self, c):
        if c.shape[-1] == self.frames:
            raise RuntimeError("simulated failure\nspanning lines")
        return self.inner(c)


@PLUMBING
def test_a_failing_batch_fails_only_its_files(melgan_checkpoint, tmp_path, capsys, monkeypatch):
    import fastgan.vocode
    from fastgan.vocode import load_vocoder

    vocoder = load_vocoder(melgan_checkpoint)
    vocoder.generator = _FailsOn(vocoder.generator, 12)
    monkeypatch.setattr(fastgan.vocode, "load_vocoder", lambda *args, **kwargs: vocoder)
    inputs = []
    for name, frames in (("a", 10), ("b", 12), ("b2", 12), ("c", 14)):
        np.save(tmp_path / f"{name}.npy", _mel(frames, frames))
        inputs.append(tmp_path / f"{name}.npy")
    code, _, err = _run(capsys, "--checkpoint", melgan_checkpoint, *inputs, "--out", tmp_path / "out")
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 2, err
    for name in ("b.npy", "b2.npy"):
        assert any(str(tmp_path / name) in line and "simulated failure spanning lines" in line for line in lines), err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.wav", "c.wav"]


@PLUMBING
def test_a_file_does_not_depend_on_its_batch_mates(melgan_checkpoint, tmp_path, capsys):
    from fastgan.vocode import load_vocoder

    vocoder = load_vocoder(melgan_checkpoint)
    a, b, a2 = (torch.from_numpy(_mel(n, seed)) for seed, n in enumerate((40, 90, 40)))
    alone = vocoder.synthesize([a])[0]
    together = vocoder.synthesize([a, b, a2])
    assert [x.shape[0] for x in together] == [40 * TINY_HOP, 90 * TINY_HOP, 40 * TINY_HOP]
    torch.testing.assert_close(together[0], alone)  # a longer mate changes nothing
    torch.testing.assert_close(together[1], vocoder.synthesize([b])[0])
    torch.testing.assert_close(together[2], vocoder.synthesize([a2])[0])  # an equal-length mate: fp32 rounding
    # The same through the CLI: a file vocoded alone and beside a longer one.
    np.save(tmp_path / "a.npy", a.numpy())
    np.save(tmp_path / "b.npy", b.numpy())
    code, _, err = _run(capsys, "--checkpoint", melgan_checkpoint, tmp_path / "a.npy", "--out", tmp_path / "alone")
    assert code == 0, err
    code, _, err = _run(capsys, "--checkpoint", melgan_checkpoint, tmp_path / "a.npy", tmp_path / "b.npy",
                        "--out", tmp_path / "together", "--batch-size", 2)  # fmt: skip
    assert code == 0, err
    alone_pcm, _ = sf.read(tmp_path / "alone" / "a.wav", dtype="int16")
    together_pcm, _ = sf.read(tmp_path / "together" / "a.wav", dtype="int16")
    np.testing.assert_array_equal(together_pcm, alone_pcm)


@PLUMBING
def test_parallel_wavegan_audio_depends_only_on_its_own_mel(tmp_path):
    """PWG draws noise: each file gets the same seeded draw, so its audio does not depend on its batch mates
    (nor on the run): vocoded alone, beside an equal-length mate and beside a longer one, it is the same."""
    from fastgan.models import ParallelWaveGANGenerator

    from fastgan.vocode import load_vocoder

    params = dict(aux_channels=TINY_MELS, layers=4, stacks=2, residual_channels=8, gate_channels=16, skip_channels=8,
                  upsample_params={"upsample_scales": [TINY_HOP // 4, 4]})  # fmt: skip
    torch.manual_seed(0)
    torch.save({"model": {"generator": ParallelWaveGANGenerator(**params).state_dict()}}, tmp_path / "pwg.pkl")
    config = dict(sampling_rate=22050, fft_size=256, hop_size=TINY_HOP, num_mels=TINY_MELS, fmin=0, fmax=8000,
                  generator_type="ParallelWaveGANGenerator", generator_params=params)  # fmt: skip
    (tmp_path / "config.yml").write_text(yaml.safe_dump(config))
    vocoder = load_vocoder(tmp_path / "pwg.pkl")
    a, b, a2 = (torch.from_numpy(_mel(n, seed)) for seed, n in enumerate((12, 20, 12)))
    alone = vocoder.synthesize([a])[0]
    torch.testing.assert_close(vocoder.synthesize([a])[0], alone, rtol=0, atol=0)  # run to run
    together = vocoder.synthesize([a2, b, a])
    torch.testing.assert_close(together[2], alone)  # fp32 rounding of a batched GEMM at most
    torch.testing.assert_close(together[1], vocoder.synthesize([b])[0])


def test_an_unknown_device_is_one_clear_line(checkpoint, tmp_path, capsys):
    code, _, err = _run(capsys, "--checkpoint", checkpoint, "--device", "foo", CORPUS / "arctic" / "arctic_a0009.wav",
                        "--out", tmp_path / "out")  # fmt: skip
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "--device 'foo'" in err, err
    assert not (tmp_path / "out").exists()


@PLUMBING
def test_a_fastgan_training_checkpoint_vocodes(melgan_checkpoint, speech, tmp_path, capsys):
    """fastgan's trainer layout: config and stats inside, no config.yml beside; RNG states inside, in the earlier
    layout as numpy's uint32 state array. The audio is the parallel_wavegan-layout model's with the same stats."""
    state = torch.load(melgan_checkpoint, weights_only=True)
    config = yaml.safe_load((melgan_checkpoint.parent / "config.yml").read_text())
    mean, scale = np.full(TINY_MELS, -2.0, np.float32), np.full(TINY_MELS, 1.5, np.float32)
    trained = tmp_path / "run" / "checkpoint-10steps.pkl"
    trained.parent.mkdir()
    rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": (3, (1, 2), None)}
    torch.save({**state, "config": config, "stats": {"mean": mean, "scale": scale}, "rng": rng, "steps": 10}, trained)
    code, _, err = _run(capsys, "--checkpoint", trained, speech[0], "--out", tmp_path / "out")
    assert code == 0, err
    reference = tmp_path / "ref"
    reference.mkdir()
    torch.save(state, reference / "checkpoint-10steps.pkl")
    (reference / "config.yml").write_text(yaml.safe_dump(config))
    np.save(reference / "stats.npy", np.stack([mean, scale]))
    code, _, err = _run(
        capsys, "--checkpoint", reference / "checkpoint-10steps.pkl", speech[0], "--out", tmp_path / "ref-out"
    )
    assert code == 0, err
    ours, _ = sf.read(tmp_path / "out" / speech[0].name, dtype="float32")
    expected, _ = sf.read(tmp_path / "ref-out" / speech[0].name, dtype="float32")
    np.testing.assert_array_equal(ours, expected)


# The original HiFi-GAN repository's config.json: its generator and its mel front end (natural log of the
# magnitude mel clamped at 1e-5).
OFFICIAL_CONFIG = {"resblock": "2", "num_mels": 80, "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
                   "upsample_initial_channel": 32, "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3]],
                   "sampling_rate": 22050, "hop_size": 256, "n_fft": 1024, "win_size": 1024, "fmin": 0,
                   "fmax": 8000, "segment_size": 8192}  # fmt: skip


@pytest.fixture(scope="module")
def official_hifigan(tmp_path_factory) -> Path:
    from tests.test_models_checkpoints import OfficialGenerator

    folder = tmp_path_factory.mktemp("hifigan")
    torch.manual_seed(0)
    torch.save({"generator": OfficialGenerator(OFFICIAL_CONFIG).state_dict()}, folder / "g_02500000")
    (folder / "config.json").write_text(json.dumps(OFFICIAL_CONFIG))
    return folder / "g_02500000"


@PLUMBING
@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")  # the stand-in original model's
def hifigan_features_by_librosa(audio: np.ndarray) -> np.ndarray:
    """HiFi-GAN's front end as its meldataset.mel_spectrogram defines it (config.json: n_fft 1024, hop 256, win 1024,
    80 mels, 0-8000 Hz), computed with librosa: reflect-pad (n_fft - hop) / 2, uncentred STFT, magnitude, Slaney mel,
    natural log clamped at 1e-5. (frames, 80), frames = samples // hop."""
    librosa = pytest.importorskip("librosa", reason="librosa (the independent reference here) is not installed")

    padded = np.pad(audio, (384, 384), mode="reflect")
    spec = librosa.stft(padded, n_fft=1024, hop_length=256, win_length=1024, window="hann", center=False)
    magnitude = np.sqrt(np.abs(spec) ** 2 + 1e-9)
    mel = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000) @ magnitude
    return np.log(np.maximum(mel, 1e-5)).T.astype(np.float32)


def test_hifigan_front_end_matches_its_definition(speech):
    from fastgan.audio import MelConfig, hifigan_log_mel

    pytest.importorskip("librosa", reason="librosa (the independent reference here) is not installed")
    from tests.test_audio import _assert_log_mel_close

    audio, _ = sf.read(speech[0], dtype="float32")
    config = MelConfig(22050, 1024, 256, 1024, "hann", 80, 0, 8000, eps=1e-5, log_base=None)
    ours = hifigan_log_mel(audio, config)
    assert ours.shape == (audio.size // 256, 80)
    # LOG_MEL's bound (stated for log10 features): fp32 FFT rounding relative to each frame's peak band.
    _assert_log_mel_close(ours / np.log(10), hifigan_features_by_librosa(audio) / np.log(10))


def test_an_original_hifigan_checkpoint_vocodes(official_hifigan, speech, tmp_path, capsys):
    import fastgan

    code, out, err = _run(capsys, "--checkpoint", official_hifigan, speech[0], "--out", tmp_path / "out")
    assert code == 0, err
    assert "real-time factor" in out
    audio, rate = sf.read(speech[0], dtype="float32")
    produced, rate_out = sf.read(tmp_path / "out" / speech[0].name, dtype="float32")
    assert rate_out == rate == 22050
    assert produced.shape == ((audio.size // 256) * 256,)
    mel = hifigan_features_by_librosa(audio)
    generator = fastgan.load_generator(official_hifigan)
    generator.remove_weight_norm()
    with torch.no_grad():
        expected = generator(torch.from_numpy(mel).T[None])[0, 0].numpy()
    np.testing.assert_allclose(produced, expected.clip(-1, 1), atol=2 / 32768)  # PCM-16 rounding


@PLUMBING
def test_an_original_hifigan_config_without_the_front_end_is_named(official_hifigan, tmp_path, capsys):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "g_1").write_bytes(official_hifigan.read_bytes())
    (folder / "config.json").write_text(json.dumps({k: v for k, v in OFFICIAL_CONFIG.items() if k != "sampling_rate"}))
    code, _, err = _run(capsys, "--checkpoint", folder / "g_1", CORPUS / "arctic" / "arctic_a0009.wav",
                        "--out", tmp_path / "out")  # fmt: skip
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert str(folder / "config.json") in err and "sampling_rate" in err, err


@PLUMBING
def test_a_config_without_the_front_end_is_named(checkpoint, tmp_path, capsys):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "c.pkl").write_bytes(checkpoint.read_bytes())
    config = yaml.safe_load((checkpoint.parent / "config.yml").read_text())
    del config["num_mels"]
    (folder / "config.yml").write_text(yaml.safe_dump(config))
    code, _, err = _run(capsys, "--checkpoint", folder / "c.pkl", CORPUS / "arctic" / "arctic_a0009.wav",
                        "--out", tmp_path / "out")  # fmt: skip
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert str(folder / "config.yml") in err and "num_mels" in err, err


@PLUMBING
def test_the_demo_compares_each_input_with_its_own_output(checkpoint, tmp_path, capsys, monkeypatch):
    """``make demo``'s held-out files share a stem (four s05.wav, one per speaker): each printed distance must be the
    input's against its own output, found here independently by vocoding that input alone."""
    import re

    from fastgan import demo
    from fastgan.vocode import load_vocoder, vocode_files

    inputs = [
        _cut(CORPUS / "espeak_en-gb" / "s05.wav", 0.3, tmp_path / "in" / "espeak_en-gb" / "s05.wav"),
        _cut(CORPUS / "espeak_en-us" / "s05.wav", 0.45, tmp_path / "in" / "espeak_en-us" / "s05.wav"),
    ]
    monkeypatch.setattr(demo, "_held_out", lambda: inputs)
    monkeypatch.setenv("FASTGAN_DEFAULT_MODEL", str(checkpoint))
    assert demo.vocode_corpus(tmp_path / "demo", "cpu")
    printed = {
        match[1]: float(match[2])
        for match in re.finditer(
            r"^  (\S+)(?: -> \S+)?: [\d.]+ s, .* distance input vs output ([\d.]+)$", capsys.readouterr().out, re.M
        )
    }
    assert sorted(printed) == ["espeak_en-gb/s05.wav", "espeak_en-us/s05.wav"], printed
    assert len(list((tmp_path / "demo" / "wavs").iterdir())) == 2
    vocoder = load_vocoder(checkpoint)
    for i, path in enumerate(inputs):
        alone = vocode_files(vocoder, [path], tmp_path / f"alone{i}", progress=False, log=lambda line: None)
        audio, _ = sf.read(path, dtype="float32")
        own, _ = sf.read(alone["written"][0], dtype="float32")
        mel_in, mel_out = vocoder.features(audio), vocoder.features(own)
        n = min(len(mel_in), len(mel_out))
        expected = float(np.abs(mel_in[:n] - mel_out[:n]).mean())
        assert printed[f"{path.parent.name}/{path.name}"] == round(expected, 3), (path, printed, expected)
