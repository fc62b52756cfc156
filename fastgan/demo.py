"""``make demo``: vocode the bundled speech with the default model, then report speed on this device.

``python -m fastgan.demo [--out DIR] [--device cpu|cuda] [--no-bench]``:

1. vocodes the held-out utterances of the bundled corpus (``data/corpus/valid.txt``) with the
   shipped default model (analysis–synthesis through its mel front end), writes the wavs and a PNG
   comparing input and output log-mel spectrograms, and prints the log-mel distance of each;
2. prints the real-time factor of each generator (MelGAN, Multi-band MelGAN, HiFi-GAN V1/V3,
   Parallel WaveGAN at their published sizes) on this device, whole-utterance inference, in fp32
   and, where it runs natively (CUDA, a CPU with bf16 GEMMs), in bf16;
3. streams the bundled speech through MelGAN in 10-frame chunks (``bench/realtime.py``) and prints
   the time to first audio, per-chunk times, real-time factor and look-ahead;
4. runs ``python -m bench --quick`` over the hot-path modules: the table of every hot path against
   its references (the generator-level ``models`` and ``train`` modules are left to
   ``python -m bench --quick --only models --only train``).

Without a shipped default model step 1 says so (and the exit status is 1); the rest still runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fastgan._checks import one_line, usable_device

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"
GENERATOR_LEVEL = {"models", "train"}  # bench modules timing whole generators / training steps, not hot paths


def _section(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def _held_out() -> list[Path]:
    listing = CORPUS / "valid.txt"
    if listing.exists():
        files = [CORPUS / line.strip() for line in listing.read_text().splitlines() if line.strip()]
        return [f for f in files if f.exists()]
    return sorted(CORPUS.glob("*/*.wav"))[:4]


def vocode_corpus(out: Path, device: str) -> bool:
    """Step 1. False when there is no default model (said clearly, never a silent fallback)."""
    from fastgan import vocode

    _section("vocoding the bundled speech with the default model")
    try:
        vocoder = vocode.load_vocoder(None, device)
    except vocode.VocodeError as error:
        print(f"NOT DONE: {one_line(error)}")
        return False
    print(f"model: {type(vocoder.generator).__name__} from {vocoder.checkpoint}")
    inputs = _held_out()
    result = vocode.vocode_files(vocoder, inputs, out / "wavs", progress=False)
    for path, reason in result["failed"]:
        print(f"failed: {path}: {reason}")
    # The pairs vocode wrote, not names rebuilt here: the held-out files share stems (four s05.wav).
    spectrogram_figure(vocoder, result["pairs"], out)
    return not result["failed"]


def spectrogram_figure(vocoder, pairs: list[tuple[str, str]], out: Path) -> list[tuple[str, str, float]]:
    """Input vs output log-mel of each (input, output) pair ``vocode_files`` wrote: a distance line each, and the
    first four as a PNG in ``out``. Returns (input, output, distance) per pair."""
    import soundfile as sf

    rows, distances = [], []
    for source, synth in pairs:
        path = Path(source)
        audio, _ = sf.read(str(path), dtype="float32")
        if audio.ndim > 1:
            audio = audio.mean(axis=1)
        generated, _ = sf.read(str(synth), dtype="float32")
        mel_in, mel_out = vocoder.features(audio), vocoder.features(generated)
        n = min(len(mel_in), len(mel_out))
        distance = float(np.abs(mel_in[:n] - mel_out[:n]).mean())
        print(f"  {path.parent.name}/{path.name} -> {Path(synth).name}: {len(audio) / vocoder.sampling_rate:.2f} s, "
              f"log10-mel L1 distance input vs output {distance:.3f}")  # fmt: skip
        rows.append((f"{path.parent.name}/{path.name}", mel_in, mel_out))
        distances.append((str(source), str(synth), distance))
    if not rows:
        return distances
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = rows[:4]
    fig, axes = plt.subplots(len(rows), 2, figsize=(12, 2.6 * len(rows)), squeeze=False)
    for (name, mel_in, mel_out), (left, right) in zip(rows, axes, strict=True):
        lo, hi = float(np.percentile(mel_in, 1)), float(mel_in.max())
        left.imshow(mel_in.T, origin="lower", aspect="auto", vmin=lo, vmax=hi, cmap="magma")
        right.imshow(mel_out.T, origin="lower", aspect="auto", vmin=lo, vmax=hi, cmap="magma")
        left.set_title(f"{name}: input", fontsize=9)
        right.set_title(f"{name}: vocoded", fontsize=9)
        for ax in (left, right):
            ax.set_xlabel("frame")
            ax.set_ylabel("mel bin")
    fig.tight_layout()
    path = out / "spectrograms.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"wavs in {out / 'wavs'}; spectrogram comparison {path}")
    return distances


def generator_rtfs(device: torch.device, seconds: float = 0.5) -> None:
    """Step 2: whole-utterance inference speed of each generator at its published size.

    ``seconds`` of speech per generator (a quarter of it for Parallel WaveGAN, whose 30 layers at the
    full sample rate are much slower on a CPU), after a short warm-up call; the better of two runs.
    Also in bf16 (model and features cast) where it runs natively: CUDA, or a CPU with bf16 GEMMs."""
    sys.path.insert(0, str(ROOT))
    from bench.realtime import MODELS, build_generator, speech_mel
    from fastgan._backend import native_bf16

    bf16 = native_bf16(device)  # emulated bf16 (a CPU without AVX512-BF16/AMX) is slower than fp32
    dtypes = "fp32 and bf16" if bf16 else "fp32"
    _section(f"real-time factor of each generator on {device} (whole utterance, {seconds:g} s of speech, {dtypes})")
    speech = speech_mel(seconds).to(device)
    for name in MODELS:
        generator = build_generator(name).to(device)
        mel = speech[: max(8, speech.shape[0] // 4)] if name == "pwg" and device.type == "cpu" else speech

        def once(mel, generator=generator, name=name):
            noise = torch.randn(mel.shape[0] * 256, 1, device=device, dtype=mel.dtype) if name == "pwg" else None
            with torch.no_grad():
                out = generator.inference(mel, x=noise) if noise is not None else generator.inference(mel)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return out

        def best_of_two(mel, once=once):
            """(wall s, CPU s, audio) of the better of two runs after a warm-up: a shared CPU makes single timings erratic."""
            once(mel[:9])
            runs = []
            for _ in range(2):
                start, cpu = time.perf_counter(), time.process_time()
                audio = once(mel)
                runs.append((time.perf_counter() - start, time.process_time() - cpu))
            return (*min(runs), audio)

        wall, cpu, audio = best_of_two(mel)
        duration = audio.shape[0] / 22050
        line = f"  {name:<11} RTF {wall / duration:7.3f}  ({duration / wall:6.1f}x real time)"
        if device.type == "cpu":
            line += f"   CPU-time RTF {cpu / duration:.3f}  ({torch.get_num_threads()} threads, {duration:.2f} s)"
        if bf16:
            generator.to(torch.bfloat16)
            wall_bf16, _, _ = best_of_two(mel.to(torch.bfloat16))
            line += f"   bf16 RTF {wall_bf16 / duration:.3f} ({wall / wall_bf16:.1f}x fp32's speed)"
        print(line, flush=True)


def streaming_latency(device: torch.device) -> None:
    """Step 3: bench/realtime.py on MelGAN, 10-frame chunks."""
    sys.path.insert(0, str(ROOT))
    from bench import realtime

    _section("streaming latency (bench/realtime.py --model melgan --chunk-frames 10)")
    threads = torch.get_num_threads()
    try:  # the script runs the stream single-threaded on CPU; the rest of the demo keeps torch's default
        realtime.main(["--model", "melgan", "--chunk-frames", "10", "--seconds", "6", "--device", str(device)])
    finally:
        torch.set_num_threads(threads)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fastgan.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=Path(os.environ.get("OUT", ROOT / "bench" / "out")) / "demo",
        help="folder for the vocoded wavs, the spectrogram PNG and the benchmark table (default: $OUT/demo, "
        "else bench/out/demo; created if missing)",
    )  # fmt: skip
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu",
        help="torch device to vocode and time on, e.g. cpu, cuda, cuda:1 (default: cuda when available, else cpu)",
    )  # fmt: skip
    parser.add_argument("--no-bench", action="store_true", help="skip the hot-path benchmark table")
    parser.add_argument(
        "--threads", type=int, default=0,
        help="CPU threads for torch (0: auto — one thread when other work is loading the CPU, where a second "
        "OpenMP thread spins waiting and runs several times slower; torch's default on an idle machine)",
    )  # fmt: skip
    return parser


def _check_device(name: str) -> torch.device:
    """``--device`` as a torch device present here, or a ValueError saying why not (one line)."""
    device = usable_device(name)
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name!r}: the demo runs on cpu or cuda")
    return device


def main(argv: list[str] | None = None) -> int:
    from fastgan.cli import backend_problem

    parser = build_parser()
    args = parser.parse_args(argv)
    started = time.perf_counter()
    problem = backend_problem()
    try:
        if problem is not None:
            raise ValueError(problem)
        device = _check_device(args.device)
        if args.out.exists() and not args.out.is_dir():
            raise ValueError(f"--out {args.out} exists and is not a folder")
    except ValueError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    elif device.type == "cpu" and load >= 1.0:
        torch.set_num_threads(1)
    print(f"fastgan demo on {device} ({os.cpu_count()} CPU cores, load average {load:.1f}, "
          f"torch threads {torch.get_num_threads()}), results in {args.out}")  # fmt: skip

    vocoded = vocode_corpus(args.out, args.device)
    generator_rtfs(device)
    streaming_latency(device)
    if not args.no_bench:
        sys.path.insert(0, str(ROOT))
        from bench.__main__ import benchmark_modules
        from bench.__main__ import main as bench_main

        # The hot paths; whole-generator and training-step benchmarks (step 2 covers inference) stay out
        # of the demo's time budget: `python -m bench --quick --only models --only train` runs them.
        hot = [m for m in benchmark_modules() if m not in GENERATOR_LEVEL]
        _section(
            f"benchmark table: every hot path vs its references (python -m bench --quick --only {' --only '.join(hot)})"
        )
        bench_main(
            ["--quick", "--out", str(args.out / "bench"), "--device", str(device)] + [f"--only={m}" for m in hot]
        )
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s")
    if not vocoded:
        print("the vocoding step did not run: no default model is shipped (see above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
