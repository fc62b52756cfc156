"""fastgan.data: folder / list sources, resampling, segments paired with exact log-mels, and bad files."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fastgan.audio import LogMelSpectrogram, MelConfig, logmelfilterbank
from fastgan.data import AudioMelDataset, BadAudioError, find_audio, load_audio

# Pure PyTorch / numpy: nothing here dispatches to a Triton kernel, so it runs once (fallback pass).
pytestmark = pytest.mark.reference

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"
CFG = MelConfig(fmin=80, fmax=7600)


def _write(path: Path, audio: np.ndarray, sr: int, **kw):
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sr, **kw)
    return path


def _tone(seconds: float, sr: int, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture
def folder(tmp_path):
    """Three good files (one at 16 kHz, one stereo) in two speaker folders."""
    _write(tmp_path / "a" / "one.wav", _tone(1.0, 22050), 22050, subtype="PCM_16")
    _write(tmp_path / "a" / "two.flac", _tone(0.8, 16000, 330.0), 16000)
    stereo = np.stack([_tone(0.9, 22050, 440.0), _tone(0.9, 22050, 110.0)], axis=1)
    _write(tmp_path / "b" / "three.wav", stereo, 22050, subtype="PCM_16")
    (tmp_path / "notes.txt").write_text("not audio, and not picked up: wrong extension")
    return tmp_path


def test_find_audio_folder_and_list(folder, tmp_path):
    files = find_audio(folder)
    assert [f.name for f in files] == ["one.wav", "two.flac", "three.wav"]
    listing = tmp_path / "list.txt"
    listing.write_text("# a comment\nb/three.wav\n\n" + str(folder / "a" / "one.wav") + "  # absolute\n")
    assert find_audio(listing) == [folder / "b" / "three.wav", folder / "a" / "one.wav"]
    assert len(find_audio(CORPUS / "train.txt")) == 17


def test_find_audio_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no audio files .* found under .*empty"):
        find_audio(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_audio(tmp_path / "missing")
    (tmp_path / "list.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="names no audio files"):
        find_audio(tmp_path / "list.txt")


def test_load_audio_resamples_and_mixes_down(folder):
    audio = load_audio(folder / "a" / "two.flac", 22050)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - round(0.8 * 22050)) <= 1
    # a 330 Hz tone stays a 330 Hz tone after resampling
    spectrum = np.abs(np.fft.rfft(audio[2000:-2000]))
    peak_hz = np.argmax(spectrum) * 22050 / len(audio[2000:-2000])
    assert abs(peak_hz - 330.0) < 3.0
    stereo = load_audio(folder / "b" / "three.wav", 22050)
    expected = (_tone(0.9, 22050, 440.0) + _tone(0.9, 22050, 110.0)) / 2
    np.testing.assert_allclose(stereo, expected, atol=2 / 32768)


@pytest.mark.parametrize("name", ["arctic/arctic_a0007.wav", "espeak_en-gb/s01.wav"])
def test_segments_carry_the_utterances_exact_features(name, tmp_path):
    shutil.copy(CORPUS / name, tmp_path / "x.wav")
    ds = AudioMelDataset(tmp_path, CFG, segment_frames=24, seed=3)
    utterance_mel = torch.from_numpy(logmelfilterbank(load_audio(tmp_path / "x.wav"), **CFG.to_dict()))
    melspec = LogMelSpectrogram(CFG)
    for epoch in range(3):
        ds.set_epoch(epoch)
        item = ds[0]
        assert item["audio"].shape == (1, 24 * 256)
        mel = melspec(item["context"], center=False)[0].T  # (frames, mels)
        start = item["start"]
        torch.testing.assert_close(mel, utterance_mel[start : start + 24], rtol=0, atol=2e-5)
        # the waveform is parallel_wavegan's aligned utterance (edge-padded by fft_size, frames * hop long)
        audio = load_audio(tmp_path / "x.wav")
        aligned = np.pad(audio, (0, 1024), mode="edge")[: len(utterance_mel) * 256]
        np.testing.assert_array_equal(item["audio"][0].numpy(), aligned[start * 256 : (start + 24) * 256])


def test_segments_are_reproducible_per_epoch(folder):
    ds = AudioMelDataset(folder, CFG, segment_frames=16, seed=1)
    first = [ds[i]["start"] for i in range(3)]
    assert first == [AudioMelDataset(folder, CFG, segment_frames=16, seed=1)[i]["start"] for i in range(3)]
    ds.set_epoch(1)
    assert [ds[i]["start"] for i in range(3)] != first
    assert ds.labels == ["a", "b"] and [ds[i]["label"] for i in range(3)] == [0, 0, 1]


def test_short_utterance_is_zero_padded(tmp_path):
    _write(tmp_path / "short.wav", _tone(0.05, 22050), 22050, subtype="PCM_16")
    item = AudioMelDataset(tmp_path, CFG, segment_frames=32)[0]
    assert item["audio"].shape == (1, 32 * 256) and item["start"] in (0, 1)  # padded to 32 hops: 33 frames
    assert item["context"].shape == (31 * 256 + 1024,)


def _bad_files(root: Path) -> dict[str, Path]:
    good = _tone(1.0, 22050)
    _write(root / "good.wav", good, 22050, subtype="PCM_16")
    bad = {}
    bad["non-audio"] = root / "text.wav"
    bad["non-audio"].write_text("RIFF? no, this is a text file that pretends to be a wav\n" * 20)
    bad["zero-bytes"] = root / "zero.wav"
    bad["zero-bytes"].write_bytes(b"")
    bad["empty"] = _write(root / "empty.wav", np.zeros(0, np.float32), 22050, subtype="PCM_16")
    header_only = (root / "good.wav").read_bytes()[:30]
    bad["truncated header"] = root / "cut_header.wav"
    bad["truncated header"].write_bytes(header_only)
    flac = _write(root / "whole.flac", good, 22050)
    data = flac.read_bytes()
    flac.unlink()
    bad["truncated flac"] = root / "cut.flac"  # a sound header, a body cut in half: fails only when read
    bad["truncated flac"].write_bytes(data[: len(data) // 2])
    return bad


@pytest.mark.parametrize("case", ["non-audio", "zero-bytes", "empty", "truncated header", "truncated flac"])
def test_each_bad_file_is_reported_once_and_skipped(tmp_path, caplog, case):
    bad = _bad_files(tmp_path)
    for name, path in bad.items():
        if name != case:
            path.unlink()
    caplog.set_level(logging.WARNING, logger="fastgan.data")
    ds = AudioMelDataset(tmp_path, CFG, segment_frames=16)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, shuffle=True, drop_last=False)
    for epoch in range(3):  # epochs never crash, and the bad file is named once
        ds.set_epoch(epoch)
        for batch in loader:
            assert batch["audio"].shape[1:] == (1, 16 * 256)
            assert torch.isfinite(batch["audio"]).all()
    messages = [r.getMessage() for r in caplog.records if bad[case].name in r.getMessage()]
    assert len(messages) == 1, messages
    assert str(bad[case]) in messages[0]
    assert ds.reported == [str(bad[case])]


def test_all_bad_files_together_with_preload(tmp_path, caplog):
    bad = _bad_files(tmp_path)
    caplog.set_level(logging.WARNING, logger="fastgan.data")
    ds = AudioMelDataset(tmp_path, CFG, segment_frames=16, preload=True)
    assert [f.name for f in ds.files] == ["good.wav"]
    assert sorted(ds.reported) == sorted(str(p) for p in bad.values())
    assert len(caplog.records) == len(bad)
    for _ in range(2):
        assert ds[0]["audio"].shape == (1, 16 * 256)
    assert len(caplog.records) == len(bad)


def test_only_bad_files_is_a_clear_error(tmp_path):
    bad = _bad_files(tmp_path)
    (tmp_path / "good.wav").unlink()
    with pytest.raises(ValueError, match="no usable audio"):
        AudioMelDataset(tmp_path, CFG, preload=True)
    ds = AudioMelDataset(tmp_path, CFG)  # header check passes the truncated flac; reading it fails
    with pytest.raises(RuntimeError, match="reported bad"):
        ds[0]
    with pytest.raises(BadAudioError, match="cut.flac"):
        load_audio(bad["truncated flac"])


@pytest.mark.parametrize("fmt", ["hdf5", "npy"])
def test_preprocess_writes_parallel_wavegan_dumps(tmp_path, fmt, caplog):
    from fastgan.audio import compute_stats, load_stats
    from fastgan.data import preprocess
    from tests.oracle import parallel_wavegan

    src = tmp_path / "src"
    for name in ("arctic/arctic_a0009.wav", "espeak_en-us/s03.wav"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CORPUS / name, src / name)
    (src / "broken.wav").write_text("not audio")
    caplog.set_level(logging.WARNING, logger="fastgan.data")
    summary = preprocess(src, tmp_path / "dump", CFG, fmt=fmt, device="cpu")
    assert summary["utterances"] == 2 and summary["skipped"] == [str(src / "broken.wav")]
    assert any("broken.wav" in r.getMessage() for r in caplog.records)
    feats_all = []
    for utt, name in (("arctic_a0009", "arctic/arctic_a0009.wav"), ("s03", "espeak_en-us/s03.wav")):
        if fmt == "hdf5":
            read = parallel_wavegan("utils").read_hdf5
            wave, feats = (
                read(str(tmp_path / "dump" / f"{utt}.h5"), "wave"),
                read(str(tmp_path / "dump" / f"{utt}.h5"), "feats"),
            )
        else:
            wave = np.load(tmp_path / "dump" / f"{utt}-wave.npy")
            feats = np.load(tmp_path / "dump" / f"{utt}-feats.npy")
        audio = load_audio(src / name)
        np.testing.assert_allclose(feats, logmelfilterbank(audio, **CFG.to_dict()), rtol=0, atol=1e-5)
        assert wave.dtype == np.float32 and len(wave) == len(feats) * CFG.hop_size  # parallel_wavegan's alignment
        np.testing.assert_array_equal(wave[: len(audio)], audio[: len(wave)])
        feats_all.append(feats)
    stats = load_stats(summary["stats"])
    np.testing.assert_allclose(stats.mean, compute_stats(feats_all).mean, rtol=1e-6)
    with pytest.raises(ValueError, match="no usable audio"):
        (src / "arctic" / "arctic_a0009.wav").unlink()
        (src / "espeak_en-us" / "s03.wav").unlink()
        preprocess(src, tmp_path / "dump2", CFG, fmt=fmt, device="cpu")


def test_mel_context_frames_and_from_arrays():
    """Parallel WaveGAN's aux_context_window: w extra feature frames each side of the audio's frames."""
    audio = load_audio(CORPUS / "arctic" / "arctic_a0007.wav")
    ds = AudioMelDataset.from_arrays([audio], CFG, segment_frames=16, mel_context=2, labels=["slt"])
    assert ds.labels == ["slt"] and len(ds) == 1
    utterance_mel = torch.from_numpy(logmelfilterbank(audio, **CFG.to_dict()))
    melspec = LogMelSpectrogram(CFG)
    for draw in range(4):
        item = ds[(0, draw)]
        start = item["start"]
        assert start >= 2 and item["audio"].shape == (1, 16 * 256)
        mel = melspec(item["context"], center=False)[0].T
        assert mel.shape[0] == 16 + 4
        torch.testing.assert_close(mel, utterance_mel[start - 2 : start + 18], rtol=0, atol=2e-5)
    with pytest.raises(ValueError, match="no waveforms"):
        AudioMelDataset.from_arrays([], CFG)


def test_stdlib_wave_reader_matches_soundfile(tmp_path):
    """The fallback for machines without soundfile (the GPU image) reads PCM wav identically."""
    import soundfile as sf

    from fastgan.data import _StdlibWave

    stereo = np.stack([_tone(0.2, 16000, 440.0), -_tone(0.2, 16000, 110.0)], axis=1)
    for subtype in ("PCM_16", "PCM_24", "PCM_32", "PCM_U8"):
        path = _write(tmp_path / f"{subtype}.wav", stereo, 16000, subtype=subtype)
        expected, sr = sf.read(str(path), dtype="float32", always_2d=True)
        actual, sr2 = _StdlibWave.read(str(path))
        assert sr2 == sr and _StdlibWave.info(str(path)).frames == len(expected)
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-7, err_msg=subtype)


def _npy_feats(dump: Path) -> dict[str, np.ndarray]:
    return {p.name[: -len("-feats.npy")]: np.load(p) for p in sorted(dump.glob("*-feats.npy"))}


@pytest.mark.parametrize("fmt", ["npy", "hdf5"])
def test_preprocess_clashing_names_are_each_written(tmp_path, fmt):
    """x/a.wav, x/a.flac and y/x/a.wav once all became x_a: two utterances were silently overwritten."""
    from fastgan.data import preprocess

    src = tmp_path / "src"
    inputs = {
        "x_a.wav": _write(src / "x" / "a.wav", _tone(0.4, 22050, 220.0), 22050, subtype="PCM_16"),
        "x_a.flac": _write(src / "x" / "a.flac", _tone(0.5, 22050, 330.0), 22050),
        "y_x_a": _write(src / "y" / "x" / "a.wav", _tone(0.6, 22050, 440.0), 22050, subtype="PCM_16"),
    }
    summary = preprocess(src, tmp_path / "dump", CFG, fmt=fmt, device="cpu")
    assert summary["utterances"] == 3
    if fmt == "npy":
        feats = _npy_feats(tmp_path / "dump")
        assert sorted(p.name for p in (tmp_path / "dump").glob("*-wave.npy")) == sorted(
            f"{utt}-wave.npy" for utt in inputs
        )
    else:
        import h5py

        feats = {}
        for path in sorted((tmp_path / "dump").glob("*.h5")):
            if path.name != "stats.h5":
                with h5py.File(path, "r") as f:
                    feats[path.name[: -len(".h5")]] = f["feats"][()]
    assert sorted(feats) == sorted(inputs)
    for utt, path in inputs.items():
        expected = logmelfilterbank(load_audio(path), **CFG.to_dict())
        np.testing.assert_allclose(feats[utt], expected, rtol=0, atol=1e-5, err_msg=utt)
    assert summary["utterance_ids"] == {utt: str(path) for utt, path in inputs.items()}


def test_preprocess_names_stay_unique_when_paths_collide(tmp_path):
    """Relative paths that flatten to one name (y_x/a, y/x/a), and an utterance called 'stats' in hdf5 (the
    statistics file's name), are given a suffix, never overwritten."""
    import h5py

    from fastgan.data import preprocess

    src = tmp_path / "src"
    paths = [
        _write(src / "y_x" / "a.wav", _tone(0.3, 22050, 220.0), 22050, subtype="PCM_16"),
        _write(src / "y" / "x" / "a.wav", _tone(0.4, 22050, 330.0), 22050, subtype="PCM_16"),
    ]
    summary = preprocess(src, tmp_path / "npy", CFG, fmt="npy", device="cpu")
    ids = summary["utterance_ids"]
    assert len(ids) == 2 and len(_npy_feats(tmp_path / "npy")) == 2
    for utt, path in ids.items():
        expected = logmelfilterbank(load_audio(path), **CFG.to_dict())
        np.testing.assert_allclose(_npy_feats(tmp_path / "npy")[utt], expected, rtol=0, atol=1e-5)
    assert sorted(ids.values()) == sorted(str(p) for p in paths)

    solo = tmp_path / "solo"
    stats_wav = _write(solo / "stats.wav", _tone(0.3, 22050, 220.0), 22050, subtype="PCM_16")
    _write(solo / "other.wav", _tone(0.4, 22050, 330.0), 22050, subtype="PCM_16")
    summary = preprocess(solo, tmp_path / "h5", CFG, fmt="hdf5", device="cpu")
    (utt,) = [u for u, p in summary["utterance_ids"].items() if p == str(stats_wav)]
    assert utt != "stats"
    with h5py.File(tmp_path / "h5" / f"{utt}.h5", "r") as f:
        expected = logmelfilterbank(load_audio(stats_wav), **CFG.to_dict())
        np.testing.assert_allclose(f["feats"][()], expected, rtol=0, atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "h5").glob("*.h5")) == sorted(["other.h5", f"{utt}.h5", "stats.h5"])


def _bad_devices() -> list[str]:
    devices = ["gpu0", f"cuda:{torch.cuda.device_count()}"]
    if not torch.cuda.is_available():
        devices.append("cuda")
    return devices


@pytest.mark.parametrize("device", _bad_devices())
def test_preprocess_cli_bad_device_is_one_line(tmp_path, capsys, device):
    from fastgan.cli import main

    src = tmp_path / "src"
    _write(src / "a.wav", _tone(0.3, 22050), 22050, subtype="PCM_16")
    argv = ["preprocess", "--data", str(src), "--out", str(tmp_path / "dump"), "--device", device, "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and device in err and "error" in err, err
    assert not (tmp_path / "dump").exists()  # nothing made for a run that could not start


def test_preprocess_cli_out_is_a_file_is_one_line(tmp_path, capsys):
    from fastgan.cli import main

    src = tmp_path / "src"
    _write(src / "a.wav", _tone(0.3, 22050), 22050, subtype="PCM_16")
    (tmp_path / "taken").write_text("keep me")
    argv = ["preprocess", "--data", str(src), "--out", str(tmp_path / "taken"), "--device", "cpu", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "taken" in err and "not a folder" in err, err
    assert (tmp_path / "taken").read_text() == "keep me"
