"""Real-time streaming: ``python bench/realtime.py [--model melgan] [--chunk-frames 10] [--seconds 20] [--device cpu]``.

Streams a long input (the bundled speech, repeated to ``--seconds``, through the model's mel front
end) through :class:`fastgan.StreamingVocoder` one chunk at a time, as a live system would, and
reports:

* first-chunk latency: compute time of the first push of a fresh utterance (the vocoder has run
  one warm-up utterance before, as a server would have);
* per-chunk compute time percentiles (p50/p90/p99/max) and the real-time factor
  (total compute / audio duration);
* the fraction of chunks that met their deadline: chunk i arrives at ``(i + 1) * D`` (D = chunk
  duration: mel frames come in real time), waits for the previous chunk, and must be finished by
  ``(i + 2) * D``, when the player needs it (one chunk of output buffer);
* the algorithmic latency: one chunk of buffering plus the model's look-ahead.

On CUDA the steady-state chunk step is captured as a CUDA graph (``--no-cuda-graph`` to compare).
On CPU it runs single-threaded by default (``--threads``): a chunk's small convolutions gain little
from a second thread, and on a shared machine a spinning second thread costs more than it gives.

``cases(quick, device)`` gives ``python -m bench`` one streaming case per generator: a steady-state
``chunk_frames`` push (fastgan) against recomputing the whole model over the chunk and its
receptive field each time ("window recompute", the exact alternative without cached state).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CORPUS = ROOT / "data" / "corpus"
SAMPLE_RATE = 22050
MODELS = ("melgan", "mb-melgan", "hifigan-v1", "hifigan-v3", "pwg")


def build_generator(name: str) -> torch.nn.Module:
    """A generator at its published configuration (random weights: the timing does not depend on them)."""
    from fastgan.models import HiFiGANGenerator, MelGANGenerator, ParallelWaveGANGenerator

    from fastgan.nn import PQMF

    torch.manual_seed(0)
    if name == "melgan":
        g = MelGANGenerator()
    elif name == "mb-melgan":  # parallel_wavegan's multi-band MelGAN recipe
        g = MelGANGenerator(out_channels=4, channels=384, upsample_scales=[8, 4, 2], stacks=4)
        g.pqmf = PQMF(subbands=4)
    elif name.startswith("hifigan-"):
        g = HiFiGANGenerator.from_config(name.split("-")[1])
    elif name == "pwg":
        g = ParallelWaveGANGenerator()
    else:
        raise ValueError(f"unknown model {name!r}; expected one of {MODELS}")
    g.remove_weight_norm()
    return g.eval()


def speech_mel(seconds: float, sample_rate: int = SAMPLE_RATE, num_mels: int = 80) -> torch.Tensor:
    """(frames, num_mels) log-mel of the bundled speech, repeated to ``seconds`` (noise frames without soundfile/librosa)."""
    try:
        import soundfile as sf

        from fastgan.audio import logmelfilterbank
    except ImportError as error:  # the GPU image lacks them unless .whl is carried; timing does not need speech
        print(f"# realtime: {error}; streaming random mel frames instead of the bundled speech")
        return torch.randn(int(seconds * sample_rate / 256), num_mels)

    pieces, total = [], 0
    files = sorted(CORPUS.glob("*/*.wav"))
    while total < seconds * sample_rate and files:
        for path in files:
            audio, rate = sf.read(str(path), dtype="float32")
            if rate == sample_rate:
                pieces.append(audio)
                total += audio.size
            if total >= seconds * sample_rate:
                break
    if not pieces:
        return torch.randn(int(seconds * sample_rate / 256), num_mels)
    audio = np.concatenate(pieces)[: int(seconds * sample_rate)]
    mel = logmelfilterbank(audio, sample_rate, 1024, 256, None, "hann", num_mels, 80, 7600)
    return torch.from_numpy((mel - mel.mean(0)) / (mel.std(0) + 1e-5))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def deadline_fraction(compute: list[float], chunk_seconds: float) -> float:
    """Chunks finished before they are due, in a live stream (see the module docstring)."""
    finish, met = 0.0, 0
    for i, c in enumerate(compute):
        arrival = (i + 1) * chunk_seconds
        finish = max(arrival, finish) + c
        met += finish <= arrival + chunk_seconds
    return met / len(compute) if compute else math.nan


def stream_once(vocoder, mel: torch.Tensor, noise=None, cpu_times: list | None = None) -> tuple[list[float], int]:
    """Push ``mel`` in ``chunk_frames`` pieces and flush; per-push wall-clock times and samples out
    (and, into ``cpu_times``, the CPU time this process spent on each push)."""
    device, hop, chunk = vocoder.device, vocoder.hop_size, vocoder.chunk_frames
    times, samples = [], 0
    for start in range(0, mel.shape[0], chunk):
        piece = mel[start : start + chunk]
        z = None if noise is None else noise[start * hop : (start + piece.shape[0]) * hop]
        _sync(device)
        t, cpu = time.perf_counter(), time.process_time()
        out = vocoder.push(piece, z)
        _sync(device)
        times.append(time.perf_counter() - t)
        if cpu_times is not None:
            cpu_times.append(time.process_time() - cpu)
        samples += out.numel()
    samples += vocoder.flush().numel()
    return times, samples


def run(args) -> dict:
    import fastgan

    device = torch.device(args.device)
    if device.type == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    if args.checkpoint:  # parallel_wavegan's layout or fastgan's exported default (see fastgan.vocode)
        from fastgan.vocode import load_vocoder

        loaded = load_vocoder(args.checkpoint)
        generator, name = loaded.generator, Path(args.checkpoint).name
        args.sample_rate = loaded.sampling_rate
    else:
        generator, name = build_generator(args.model), args.model
    vocoder = fastgan.StreamingVocoder(
        generator, args.chunk_frames, sample_rate=args.sample_rate, device=device, dtype=dtype
    )
    mel = speech_mel(args.seconds, args.sample_rate, vocoder.in_channels).to(device, dtype)
    noise = None
    if vocoder._is_pwg:
        noise = torch.randn(mel.shape[0] * vocoder.hop_size, device=device, dtype=dtype)
    graph = False
    if device.type == "cuda" and not args.no_cuda_graph:
        graph = vocoder.capture()
    warm = mel[: max(args.chunk_frames * 8, 64)]
    stream_once(vocoder, warm, None if noise is None else noise[: warm.shape[0] * vocoder.hop_size])  # warm-up
    cpu_times: list[float] = []
    load_before = os.getloadavg()[0]
    times, samples = stream_once(vocoder, mel, noise, cpu_times)
    load_after = os.getloadavg()[0]
    chunk_seconds = args.chunk_frames * vocoder.hop_size / args.sample_rate
    audio_seconds = samples / args.sample_rate
    steady = times[1:] or times
    # "inclusive": percentiles within the measured range (the default extrapolates past the max for few chunks).
    q = statistics.quantiles(steady, n=100, method="inclusive") if len(steady) >= 2 else [steady[0]] * 99
    report = {
        "model": name,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "dtype": args.dtype,
        "chunk_frames": args.chunk_frames,
        "chunk_ms": 1000 * chunk_seconds,
        "hop_size": vocoder.hop_size,
        "sample_rate": args.sample_rate,
        "audio_seconds": audio_seconds,
        "chunks": len(times),
        "cuda_graph": graph,
        "lookahead_frames": vocoder.lookahead_frames,
        "lookahead_ms": vocoder.lookahead_ms,
        "algorithmic_latency_ms": vocoder.latency_ms,
        "first_chunk_ms": 1000 * times[0],
        "chunk_p50_ms": 1000 * q[49],
        "chunk_p90_ms": 1000 * q[89],
        "chunk_p99_ms": 1000 * q[98],
        "chunk_max_ms": 1000 * max(times),
        "rtf": sum(times) / audio_seconds,
        "deadline_met": deadline_fraction(times, chunk_seconds),
        "cpu_chunk_p50_ms": 1000 * statistics.median(cpu_times),
        "cpu_first_chunk_ms": 1000 * cpu_times[0],
        "cpu_rtf": sum(cpu_times) / audio_seconds,
        "load_average": round(max(load_before, load_after), 2),
        "cpu_cores": os.cpu_count(),
    }
    return report


def format_report(r: dict) -> str:
    return (
        f"{r['model']} streaming on {r['device']}"
        + (f" ({r['threads']} thread{'s' if r['threads'] != 1 else ''})" if r["threads"] else "")
        + f", {r['dtype']}, {r['chunk_frames']}-frame chunks ({r['chunk_ms']:.1f} ms), {r['audio_seconds']:.1f} s of audio"
        + (", CUDA graph" if r["cuda_graph"] else "")
        + f"\n  look-ahead {r['lookahead_frames']} frames ({r['lookahead_ms']:.1f} ms); algorithmic latency "
        f"{r['algorithmic_latency_ms']:.1f} ms (chunk + look-ahead)"
        f"\n  first chunk {r['first_chunk_ms']:.1f} ms; per chunk p50 {r['chunk_p50_ms']:.1f} / p90 {r['chunk_p90_ms']:.1f}"
        f" / p99 {r['chunk_p99_ms']:.1f} / max {r['chunk_max_ms']:.1f} ms"
        f"\n  real-time factor {r['rtf']:.3f}; deadlines met {100 * r['deadline_met']:.1f} % of {r['chunks']} chunks"
        + (
            f"\n  CPU time: first chunk {r['cpu_first_chunk_ms']:.1f} ms, per chunk p50 {r['cpu_chunk_p50_ms']:.1f} ms, "
            f"CPU-time RTF {r['cpu_rtf']:.3f} (load average {r['load_average']} on {r['cpu_cores']} cores: "
            "wall-clock above includes waiting for the CPU)"
            if r["device"] == "cpu"
            else ""
        )
    )


def cases(quick: bool, device: torch.device):
    """Steady-state streaming chunk vs recomputing the receptive-field window (see the module docstring)."""
    import fastgan
    from bench.harness import Case

    names = ["melgan"] if quick else list(MODELS)
    chunk = 10
    out = []
    for name in names:
        generator = build_generator(name).to(device)
        vocoder = fastgan.StreamingVocoder(generator, chunk, device=device)
        if device.type == "cuda":
            vocoder.capture()
        mel = speech_mel(4.0).to(device)
        frames = mel.shape[0]
        hop = vocoder.hop_size
        noise = torch.randn(frames * hop, device=device) if vocoder._is_pwg else None
        position = {"i": 0}

        def push(vocoder=vocoder, mel=mel, noise=noise, position=position, frames=frames, hop=hop):
            i = position["i"]
            if i + chunk > frames:  # start the next utterance
                vocoder.flush()
                i = 0
            z = None if noise is None else noise[i * hop : (i + chunk) * hop]
            position["i"] = i + chunk
            return vocoder.push(mel[i : i + chunk], z)

        context = 2 * vocoder.lookahead_frames + chunk  # left context ~ right context for these models
        window = mel[:context]
        z = None if noise is None else noise[: context * hop].reshape(-1, 1)

        def recompute(generator=generator, window=window, z=z):
            with torch.no_grad():
                return generator.inference(window, x=z) if z is not None else generator.inference(window)

        for _ in range(3):
            push()
        out.append(
            Case(
                op="streaming",
                name=f"{name} {chunk}-frame chunk b1" + (" cuda-graph" if vocoder._graph is not None else ""),
                mode="fwd",
                dtype=torch.float32,
                impls={"fastgan": push, "window recompute": recompute},
                bytes_moved=chunk * 80 * 4 + chunk * hop * 4,
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="melgan", choices=MODELS)
    parser.add_argument("--checkpoint", default=None, help="a generator checkpoint instead of --model")
    parser.add_argument("--chunk-frames", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the streamed input")
    parser.add_argument("--sample-rate", type=int, default=SAMPLE_RATE)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (0: torch's default)")
    parser.add_argument("--no-cuda-graph", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="append the report as a JSON line")
    args = parser.parse_args(argv)
    report = run(args)
    print(format_report(report))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
