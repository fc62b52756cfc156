"""Real-time streaming: ``python bench/realtime.py [--model melgan] [--chunk-frames 10] [--seconds 20] [--device cpu]``.

Streams a long input (the bundled speech, repeated to ``--seconds``, through the model's mel front
end) through :class:`fastgan.StreamingVocoder` one chunk at a time, as a live system would, and
reports:

* time to first audio of a fresh utterance (the vocoder has run one warm-up utterance before, as a
  server would have). A push emits nothing until the model's look-ahead is in, so with a look-ahead
  of at least one chunk the first push returns no samples; what a listener waits for is the first
  push k that returns audio. Reported: k, the compute of pushes 1..k summed, and the latency a live
  stream would see, measured from the moment the first chunk's input is complete: push j's input is
  complete (j - 1) chunk durations later and waits for push j - 1, so first audio comes out at
  ``finish_k``, where ``finish_j = max((j - 1) * D, finish_{j-1}) + compute_j`` -- i.e.
  ``(k - 1) * D + compute_k`` when each push keeps up, the sum of the k computes when they do not
  (one chunk duration D more counted from the first mel frame, the first chunk's buffering);
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


def stream_once(
    vocoder, mel: torch.Tensor, noise=None, cpu_times: list | None = None, push_samples: list | None = None
) -> tuple[list[float], int]:
    """Push ``mel`` in ``chunk_frames`` pieces and flush; per-push wall-clock times and samples out
    (and, into ``cpu_times``, the CPU time this process spent on each push; into ``push_samples``,
    the samples each push returned, flush excluded)."""
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
        if push_samples is not None:
            push_samples.append(out.numel())
        samples += out.numel()
    samples += vocoder.flush().numel()
    return times, samples


def first_audio(compute: list[float], push_samples: list[int], chunk_seconds: float) -> tuple[int, float, float] | None:
    """(k, summed compute of pushes 1..k, live-stream latency) for the first push k that returns audio, or
    None when no push did (the input was shorter than the look-ahead: audio came only at flush). The latency
    counts from the first chunk's input being complete (see the module docstring)."""
    k = next((i + 1 for i, n in enumerate(push_samples) if n), None)
    if k is None:
        return None
    finish = 0.0
    for j, c in enumerate(compute[:k]):
        finish = max(j * chunk_seconds, finish) + c  # push j + 1's input is complete j chunk durations in
    return k, sum(compute[:k]), finish


def check_args(args) -> str | None:
    """What is wrong with the arguments, on one line, or None. The device must hold tensors here
    (torch's own errors come from deep inside it at first use)."""
    from fastgan._checks import one_line, usable_device

    if args.chunk_frames < 1:
        return f"--chunk-frames must be >= 1 mel frame, got {args.chunk_frames}"
    if not (args.seconds > 0 and math.isfinite(args.seconds)):
        return f"--seconds must be a positive number of seconds, got {args.seconds}"
    if args.sample_rate < 1:
        return f"--sample-rate must be a positive rate in Hz, got {args.sample_rate}"
    if args.threads < 0:
        return f"--threads must be >= 0 (0: torch's default), got {args.threads}"
    try:
        device = usable_device(args.device)
    except ValueError as error:
        return one_line(error)
    if device.type not in ("cpu", "cuda"):
        return f"--device {args.device!r}: the stream runs on cpu or cuda"
    if args.checkpoint is not None and not Path(args.checkpoint).exists():
        return f"--checkpoint {args.checkpoint}: no such file"
    if args.json is not None and (args.json.is_dir() or not args.json.parent.is_dir()):
        return f"--json {args.json}: not a file in an existing folder"
    return None


class BadArgument(Exception):
    """An argument found wrong only once the model or the input is built (reported as one line)."""


def run(args) -> dict:
    import fastgan

    device = torch.device(args.device)
    if device.type == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    from fastgan._checks import one_line
    from fastgan.vocode import VocodeError, load_vocoder

    try:  # a checkpoint that does not load, or holds a generator the streaming vocoder cannot take: bad input
        if args.checkpoint:  # parallel_wavegan's layout or fastgan's exported default (see fastgan.vocode)
            loaded = load_vocoder(args.checkpoint)
            generator, name = loaded.generator, Path(args.checkpoint).name
            args.sample_rate = loaded.sampling_rate
        else:
            generator, name = build_generator(args.model), args.model
        vocoder = fastgan.StreamingVocoder(
            generator, args.chunk_frames, sample_rate=args.sample_rate, device=device, dtype=dtype
        )
    except (VocodeError, ValueError) as error:
        where = f"--checkpoint {args.checkpoint}" if args.checkpoint else f"--model {args.model}"
        raise BadArgument(f"{where}: {one_line(error)}") from None
    try:
        mel = speech_mel(args.seconds, args.sample_rate, vocoder.in_channels).to(device, dtype)
    except ValueError as error:  # the mel front end refuses a clip shorter than its FFT's padding
        raise BadArgument(f"--seconds {args.seconds}: too short to stream ({one_line(error)})") from None
    if mel.shape[0] < 1:
        raise BadArgument(f"--seconds {args.seconds}: shorter than one mel frame ({vocoder.hop_size} samples)")
    noise = None
    if vocoder._is_pwg:
        noise = torch.randn(mel.shape[0] * vocoder.hop_size, device=device, dtype=dtype)
    graph = False
    if device.type == "cuda" and not args.no_cuda_graph:
        graph = vocoder.capture()
    warm = mel[: max(args.chunk_frames * 8, 64)]
    stream_once(vocoder, warm, None if noise is None else noise[: warm.shape[0] * vocoder.hop_size])  # warm-up
    cpu_times: list[float] = []
    push_samples: list[int] = []
    load_before = os.getloadavg()[0]
    times, samples = stream_once(vocoder, mel, noise, cpu_times, push_samples)
    load_after = os.getloadavg()[0]
    chunk_seconds = args.chunk_frames * vocoder.hop_size / args.sample_rate
    audio_seconds = samples / args.sample_rate
    steady = times[1:] or times
    # "inclusive": percentiles within the measured range (the default extrapolates past the max for few chunks).
    q = statistics.quantiles(steady, n=100, method="inclusive") if len(steady) >= 2 else [steady[0]] * 99
    first = first_audio(times, push_samples, chunk_seconds)
    k = first[0] if first else None
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
        # Time to first audio (module docstring); None where no push returned audio (only flush did).
        "first_audio_pushes": k,
        "first_audio_samples": push_samples[k - 1] if k else None,
        "first_audio_compute_ms": 1000 * first[1] if first else None,
        "first_audio_latency_ms": 1000 * first[2] if first else None,
        "first_chunk_ms": 1000 * times[0],  # the first push alone, which may return no audio (kept for old readers)
        "chunk_p50_ms": 1000 * q[49],
        "chunk_p90_ms": 1000 * q[89],
        "chunk_p99_ms": 1000 * q[98],
        "chunk_max_ms": 1000 * max(times),
        "rtf": sum(times) / audio_seconds,
        "deadline_met": deadline_fraction(times, chunk_seconds),
        "cpu_chunk_p50_ms": 1000 * statistics.median(cpu_times),
        "cpu_first_chunk_ms": 1000 * cpu_times[0],
        "cpu_first_audio_ms": 1000 * sum(cpu_times[:k]) if k else None,
        "cpu_rtf": sum(cpu_times) / audio_seconds,
        "load_average": round(max(load_before, load_after), 2),
        "cpu_cores": os.cpu_count(),
    }
    return report


def _first_audio_line(r: dict) -> str:
    if r["first_audio_pushes"] is None:
        return (
            f"time to first audio: no push returned audio (look-ahead {r['lookahead_frames']} frames, "
            f"{r['chunks']} chunk(s) pushed): it came only at flush"
        )
    k = r["first_audio_pushes"]
    before = "push 1" if k == 2 else f"pushes 1..{k - 1}"
    empty = (
        f" ({before} returned none: look-ahead {r['lookahead_frames']} >= {r['chunk_frames']}-frame chunk)"
        if k > 1
        else ""
    )
    waited = f"{k - 1} x {r['chunk_ms']:.1f} ms + queued compute" if k > 1 else "its compute"
    return (
        f"time to first audio: push {k}, {r['first_audio_samples']} samples{empty}\n"
        f"    compute {r['first_audio_compute_ms']:.1f} ms ({'push 1' if k == 1 else f'pushes 1..{k}'}); "
        f"live stream {r['first_audio_latency_ms']:.1f} ms after the first chunk's input is in ({waited}), "
        f"{r['first_audio_latency_ms'] + r['chunk_ms']:.1f} ms after the first mel frame"
    )


def format_report(r: dict) -> str:
    return (
        f"{r['model']} streaming on {r['device']}"
        + (f" ({r['threads']} thread{'s' if r['threads'] != 1 else ''})" if r["threads"] else "")
        + f", {r['dtype']}, {r['chunk_frames']}-frame chunks ({r['chunk_ms']:.1f} ms), {r['audio_seconds']:.1f} s of audio"
        + (", CUDA graph" if r["cuda_graph"] else "")
        + f"\n  look-ahead {r['lookahead_frames']} frames ({r['lookahead_ms']:.1f} ms); algorithmic latency "
        f"{r['algorithmic_latency_ms']:.1f} ms (chunk + look-ahead)"
        + "\n  "
        + _first_audio_line(r)
        + f"\n  per chunk p50 {r['chunk_p50_ms']:.1f} / p90 {r['chunk_p90_ms']:.1f}"
        f" / p99 {r['chunk_p99_ms']:.1f} / max {r['chunk_max_ms']:.1f} ms"
        f"\n  real-time factor {r['rtf']:.3f}; deadlines met {100 * r['deadline_met']:.1f} % of {r['chunks']} chunks"
        + (
            "\n  CPU time: "
            + (f"to first audio {r['cpu_first_audio_ms']:.1f} ms, " if r["cpu_first_audio_ms"] is not None else "")
            + f"per chunk p50 {r['cpu_chunk_p50_ms']:.1f} ms, "
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
    from bench.harness import OneLineArgumentParser

    parser = OneLineArgumentParser(prog="python -m bench.realtime", description=__doc__.split("\n\n")[0])
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
    problem = check_args(args)
    if problem is None:
        try:
            report = run(args)
        except BadArgument as error:
            problem = str(error)
    if problem is not None:
        print(f"{parser.prog}: error: {problem}", file=sys.stderr)
        return 2
    print(format_report(report))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
