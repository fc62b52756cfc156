"""Every benchmark module's quick cases under pytest-benchmark: ``pytest bench/``."""

from __future__ import annotations

import importlib

import pytest
import torch

from bench.__main__ import benchmark_modules

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _parameters():
    for module_name in benchmark_modules():
        module = importlib.import_module(f"bench.{module_name}")
        for case in module.cases(True, DEVICE):
            for impl, fn in case.impls.items():
                case_id = f"{case.op}-{case.name}-{case.mode}-{str(case.dtype).removeprefix('torch.')}-{impl}"
                yield pytest.param(case, fn, id=case_id.replace(" ", "_"))


@pytest.mark.benchmark  # pytest-benchmark's marker, bare: `-m "not benchmark"` leaves the timings out
@pytest.mark.parametrize(("case", "fn"), list(_parameters()))
def test_benchmark(benchmark, case, fn):
    benchmark.group = f"{case.op} {case.name} {case.mode}"
    benchmark(fn)


# The bench commands' own behaviour (no timing). Alone: `pytest bench/test_benchmarks.py -m "not benchmark"`.


def test_first_audio_counts_the_pushes_until_audio_comes_out():
    from bench.realtime import first_audio

    # Pushes keep up: push 3's input is complete 2 chunk durations in, and its compute follows.
    k, compute, latency = first_audio([0.01, 0.02, 0.03, 0.04], [0, 0, 5, 7], chunk_seconds=0.1)
    assert (k, compute, latency) == (3, pytest.approx(0.06), pytest.approx(0.23))
    # Pushes slower than real time: each waits for the one before, so first audio is the summed compute.
    assert first_audio([0.3, 0.3], [0, 5], chunk_seconds=0.1)[2] == pytest.approx(0.6)
    assert first_audio([0.01], [9], chunk_seconds=0.1) == (1, pytest.approx(0.01), pytest.approx(0.01))
    assert first_audio([0.01, 0.01], [0, 0], chunk_seconds=0.1) is None  # audio only at flush


def test_realtime_reports_time_to_first_audio_past_an_empty_first_push(capsys):
    from bench import realtime

    # MB-MelGAN's look-ahead (11 frames) exceeds a 10-frame chunk: its first push returns no samples.
    threads = torch.get_num_threads()
    try:  # the command streams single-threaded; the rest of the session keeps its threads
        assert realtime.main(["--model", "mb-melgan", "--chunk-frames", "10", "--seconds", "0.6"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "time to first audio: push 2," in out and "push 1 returned none" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--chunk-frames", "0"], "--chunk-frames must be >= 1"),
        (["--seconds", "0"], "--seconds must be a positive"),
        (["--threads", "-1"], "--threads must be >= 0"),
        (["--device", "meta"], "--device 'meta'"),
        (["--checkpoint", "/no/such/file.pt"], "--checkpoint /no/such/file.pt: no such file"),
        (["--seconds", "0.001"], "--seconds 0.001: too short"),
    ]
    + ([] if torch.cuda.is_available() else [(["--device", "cuda"], "CUDA is not available")]),
)
def test_realtime_bad_arguments_are_one_line_errors(capsys, argv, message):
    from bench import realtime

    assert realtime.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m bench.realtime: error: ") and message in err


@pytest.mark.parametrize(
    ("module", "argv"),
    [("realtime", ["--chunk-frames", "x"]), ("__main__", ["--only", "nope"]), ("__main__", ["--time-budget", "-1"])]
    + ([] if torch.cuda.is_available() else [("__main__", ["--device", "cuda"])]),
)
def test_argparse_errors_are_one_line_with_status_2(capsys, module, argv):
    main = importlib.import_module(f"bench.{module}").main
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and ": error: " in err


def test_tables_never_cut_case_names():
    from bench import harness

    names = [f"melgan/hifigan-v1 up3 128->64 x2 k4 t{t} b{b}" for t in (24, 1536) for b in (1, 16)]
    rows = [harness.Row("conv_transpose", name, "fwd", "float32", "fastgan", 1.0, 0.9, 1.1, 0.0) for name in names]
    widths = harness.column_widths({"case": names + ["short"]})
    lines = harness.format_table(rows, widths).splitlines()
    assert all(name in line for name, line in zip(names, lines[1:], strict=True))
    assert len({line.index(" fwd ") for line in lines[1:]}) == 1  # columns stay aligned
    assert lines[0].index("mode") == lines[1].index(" fwd ") + 1


def test_stft_loss_rows_count_the_arithmetic_each_path_does(monkeypatch):
    import math

    from bench import stft_loss

    batch, length = 2, 8192
    gemm = fft = 0
    for n_fft, hop, win in stft_loss.RESOLUTIONS:
        frames = batch * stft_loss.num_frames(length, n_fft, hop)
        gemm += 5 * frames * win * n_fft * 2  # fwd: 2 signals; bwd: 2 recomputed + 1 transposed GEMM
        fft += 5 * int(frames * 2.5 * n_fft * math.log2(n_fft))  # the same 5 transforms as real FFTs
    # Here fastgan runs its PyTorch fallback (an FFT, as every reference): one FFT count for all rows.
    monkeypatch.setenv("FASTGAN_BACKEND", "torch")
    (case,) = stft_loss.cases(True, torch.device("cpu"))
    assert case.flops == fft > 0 and case.impl_flops == {} and case.bytes_moved == 3 * batch * length * 4
    # Where its kernels run, fastgan's row counts the DFT GEMM it computes instead.
    monkeypatch.setattr(stft_loss, "kernels_run", lambda device: True)
    (case,) = stft_loss.cases(True, torch.device("cpu"))
    assert case.flops == fft and case.impl_flops == {"fastgan": gemm} and gemm > fft


def test_models_time_wavegan_and_specgan():
    from bench import models

    device = torch.device("cpu")
    inference = models._wgan_inference_cases(True, device)
    training = models._wgan_training_cases(True, device)
    names = [c.name for c in inference + training]
    assert names == [
        "wavegan infer b1 1.02s 16kHz",
        "specgan+griffin-lim16 infer b1 1.02s 16kHz",
        "wavegan train b1 16384 d16",
        "specgan train b1 16384 d16",
    ]
    assert all(c.flops > 0 for c in inference + training)
    assert models.AUDIO["wavegan infer b1 1.02s 16kHz"] == (1, 16384, 16000)
    assert inference[1].impls["fastgan"]().shape == (1, 16384)  # Griffin-Lim's audio
