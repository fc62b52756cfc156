"""fastgan.audio: the log-mel front end against parallel_wavegan 0.6.1's preprocessing on real speech.

The front end has no Triton kernel, so the module is marked ``reference`` (it runs once, in the fallback pass).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from fastgan.audio import (
    LogMelSpectrogram,
    MelConfig,
    MelStats,
    align_audio,
    compute_stats,
    denormalize,
    load_stats,
    logmelfilterbank,
    mel_filterbank,
    normalize,
    num_frames,
    save_stats,
)
from tests.oracle import parallel_wavegan
from tests.tolerances import LOG_MEL

pytestmark = pytest.mark.reference

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"
SPEECH = ["arctic/arctic_a0007.wav", "arctic/arctic_a0009.wav", "espeak_en-us-f2/s02.wav"]

CONFIGS = [
    {},  # parallel_wavegan's function defaults: fmin 0, fmax sr/2
    {"fmin": 80, "fmax": 7600},  # its PWG / MelGAN / HiFi-GAN recipes (22.05 kHz)
    {"fft_size": 2048, "hop_size": 300, "win_length": 1200, "fmin": 80, "fmax": 7600},
    {"window": "hamming", "num_mels": 64, "hop_size": 128},
]


def _speech(name: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    audio, sr = sf.read(CORPUS / name, dtype="float32")
    return audio, sr


@pytest.fixture(scope="module")
def pwg_logmelfilterbank():
    """parallel_wavegan's own ``logmelfilterbank``, compiled from its ``bin/preprocess.py``.

    That module imports its datasets (which need kaldiio) at the top, so only the function is taken from the file.
    """
    import librosa

    pkg = parallel_wavegan()
    path = os.path.join(os.path.dirname(pkg.__file__), "bin", "preprocess.py")
    tree = ast.parse(Path(path).read_text())
    (fn,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "logmelfilterbank"]
    namespace = {"np": np, "librosa": librosa}
    exec(compile(ast.Module([fn], []), path, "exec"), namespace)
    return namespace["logmelfilterbank"]


def _assert_log_mel_close(actual: np.ndarray, expected: np.ndarray):
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert np.isfinite(actual).all()
    lin_a, lin_e = 10.0 ** actual.astype(np.float64), 10.0 ** expected.astype(np.float64)
    peak = lin_e.max(axis=1, keepdims=True)
    rel = np.abs(lin_a - lin_e) / peak
    assert rel.max() <= LOG_MEL["frame_peak_rtol"], f"max error relative to the frame peak {rel.max():.3e}"
    loud = lin_e >= LOG_MEL["loud_below_peak"] * peak
    err = np.abs(actual - expected)[loud].max()
    assert err <= LOG_MEL["log10_atol_loud"], f"log10 error {err:.3e} in bands within 30 dB of the frame peak"


@pytest.mark.parametrize("source", ["librosa", "fastgan"])
@pytest.mark.parametrize(
    "config",
    [MelConfig(), MelConfig(fmin=0, fmax=None), MelConfig(16000, 512, 128, num_mels=40, fmin=55, fmax=8000)],
    ids=["pwg", "full-band", "16k-40"],
)
def test_filterbank_is_librosas(source, config):
    import librosa

    expected = librosa.filters.mel(
        sr=config.sampling_rate,
        n_fft=config.fft_size,
        n_mels=config.num_mels,
        fmin=config.fmin or 0,
        fmax=config.fmax or config.sampling_rate / 2,
    )
    actual = mel_filterbank(config, source=source)
    assert actual.dtype == np.float32 and actual.shape == (config.num_mels, config.fft_size // 2 + 1)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("name", SPEECH)
@pytest.mark.parametrize("kwargs", CONFIGS, ids=["defaults", "pwg", "2048-300-1200", "hamming-64"])
def test_logmelfilterbank_matches_parallel_wavegan(pwg_logmelfilterbank, name, kwargs):
    audio, sr = _speech(name)
    expected = pwg_logmelfilterbank(audio.astype(np.float64), sr, **kwargs)
    actual = logmelfilterbank(audio, sr, **kwargs)
    assert actual.dtype == np.float32
    _assert_log_mel_close(actual, expected)
    hop = kwargs.get("hop_size", 256)
    assert actual.shape[0] == num_frames(len(audio), hop)


def test_log_floor_and_silence(pwg_logmelfilterbank):
    silence = np.zeros(4000, dtype=np.float32)
    expected = pwg_logmelfilterbank(silence, 22050)
    actual = logmelfilterbank(silence, 22050)
    # log10(float32(1e-10)) = -10 everywhere, to one float32 ulp (numpy and torch round log10 differently)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=2e-6)
    np.testing.assert_allclose(actual, -10.0, rtol=0, atol=2e-6)


def test_module_batches_and_layouts():
    audio, sr = _speech(SPEECH[0])
    cfg = MelConfig(sampling_rate=sr)
    melspec = LogMelSpectrogram(cfg)
    x = torch.from_numpy(audio[: 8192 * 2]).reshape(2, 8192)
    batched = melspec(x)
    assert batched.shape == (2, 80, num_frames(8192, 256))
    torch.testing.assert_close(melspec(x[:, None]), batched, rtol=0, atol=0)
    for b in range(2):
        single = torch.from_numpy(logmelfilterbank(x[b].numpy(), **cfg.to_dict())).T
        torch.testing.assert_close(batched[b], single, rtol=0, atol=1e-5)
    # float64 / bfloat16 inputs are computed in float32
    assert melspec(x.double()).dtype == torch.float32


def test_module_rejects_bad_input():
    melspec = LogMelSpectrogram()
    with pytest.raises(ValueError, match=r"\(B, 1, T\)"):
        melspec(torch.zeros(2, 3, 4096))
    with pytest.raises(TypeError, match="floating point"):
        melspec(torch.zeros(4096, dtype=torch.int16))
    with pytest.raises(ValueError, match="too short"):
        melspec(torch.zeros(100))
    with pytest.raises(ValueError, match="fmin < fmax"):
        MelConfig(fmin=9000, fmax=7600)


def test_magnitude_eps_gives_finite_gradients():
    x = torch.zeros(1, 4096, requires_grad=True)
    LogMelSpectrogram(magnitude_eps=1e-7)(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_audio_alignment_is_parallel_wavegans():
    audio, _ = _speech(SPEECH[1])
    mel = logmelfilterbank(audio, 22050, fmin=80, fmax=7600)
    # parallel_wavegan: np.pad(audio, (0, fft_size), mode="edge")[: len(mel) * hop_size]
    expected = np.pad(audio, (0, 1024), mode="edge")[: len(mel) * 256]
    np.testing.assert_array_equal(align_audio(audio, len(mel), 256, 1024), expected)


def test_stats_match_standard_scaler_and_round_trip(tmp_path):
    sklearn = pytest.importorskip("sklearn.preprocessing", reason="sklearn is the oracle for parallel_wavegan's stats")
    feats = [logmelfilterbank(_speech(n)[0], 22050, fmin=80, fmax=7600) for n in SPEECH]
    feats.append(np.full((7, 80), -3.0, dtype=np.float32))
    feats[-1][:, 5] = 2.0
    scaler = sklearn.StandardScaler()
    for f in feats:
        scaler.partial_fit(f)
    stats = compute_stats(feats)
    np.testing.assert_allclose(stats.mean, scaler.mean_.astype(np.float32), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(stats.scale, scaler.scale_.astype(np.float32), rtol=1e-5)

    # parallel_wavegan reads stats.h5 with read_hdf5(path, "mean"/"scale") and stats.npy as rows (mean, scale)
    utils = parallel_wavegan("utils")
    save_stats(tmp_path / "stats.h5", stats)
    np.testing.assert_array_equal(utils.read_hdf5(str(tmp_path / "stats.h5"), "mean"), stats.mean)
    np.testing.assert_array_equal(utils.read_hdf5(str(tmp_path / "stats.h5"), "scale"), stats.scale)
    save_stats(tmp_path / "stats.npy", stats)
    np.testing.assert_array_equal(np.load(tmp_path / "stats.npy")[1], stats.scale)
    for name in ("stats.h5", "stats.npy"):
        loaded = load_stats(tmp_path / name)
        np.testing.assert_array_equal(loaded.mean, stats.mean)
        np.testing.assert_array_equal(loaded.scale, stats.scale)

    # parallel_wavegan's normalize.py: scaler.transform(mel)
    np.testing.assert_allclose(normalize(feats[0], stats), scaler.transform(feats[0]), rtol=1e-5, atol=1e-5)
    mel_t = torch.from_numpy(feats[0]).T[None]  # (1, mels, frames)
    back = denormalize(normalize(mel_t, stats, mel_axis=1), stats, mel_axis=1)
    torch.testing.assert_close(back, mel_t, rtol=1e-5, atol=1e-5)


def test_stats_errors(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        compute_stats([])
    with pytest.raises(FileNotFoundError, match="no statistics file"):
        load_stats(tmp_path / "missing.h5")
    np.save(tmp_path / "bad.npy", np.zeros((3, 80), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(2, num_mels\)"):
        load_stats(tmp_path / "bad.npy")
    stats = MelStats(np.zeros(80), np.ones(80))
    with pytest.raises(ValueError, match="64 bins, the statistics have 80"):
        normalize(np.zeros((10, 64), dtype=np.float32), stats)
    with pytest.raises(ValueError, match="scale finite and positive"):
        MelStats(np.zeros(80), np.zeros(80))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    audio, sr = _speech(SPEECH[0])
    cpu = logmelfilterbank(audio, sr, fmin=80, fmax=7600)
    gpu = logmelfilterbank(audio, sr, fmin=80, fmax=7600, device="cuda")
    _assert_log_mel_close(gpu, cpu)
