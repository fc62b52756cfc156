"""Timing, peak memory and roofline bookkeeping shared by every benchmark module.

A benchmark module ``bench/<hot_path>.py`` defines ``cases(quick, device) -> list[Case]``. For each
case the harness times every implementation (``triton.testing.do_bench`` on CUDA; on CPU the
implementations interleaved in rounds, so a change of load on a shared machine hits them alike; median and
20/80 % quantiles), measures its peak memory, and
reports achieved GB/s or TFLOP/s with the fraction of the device's peak beside fastgan's speed-up
over each reference.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

# Datasheet dense tensor-core peaks (TFLOP/s) by device-name fragment; leads, not readings.
TENSOR_PEAK_TFLOPS = {"H100": {"bf16": 989.0, "fp16": 989.0, "fp32": 494.0}, "H200": {"bf16": 989.0, "fp16": 989.0, "fp32": 494.0}}  # fmt: skip


@dataclass
class Case:
    op: str  # hot path, e.g. "phase_shuffle"
    name: str  # shape/config description
    mode: str  # "fwd" or "fwd+bwd"
    dtype: torch.dtype
    impls: dict[str, Callable[[], object]]  # "fastgan" first, then the references
    bytes_moved: int = 0  # fewest bytes: each input read once, each output written once
    flops: int = 0  # useful FLOPs; 0 for memory-bound ops
    # An impl that computes the same result by other arithmetic (an FFT where ``flops`` counts a DFT GEMM): its own
    # count, so that each row's rate and %peak are of the work it really does.
    impl_flops: dict[str, int] = field(default_factory=dict)


@dataclass
class Row:
    op: str
    case: str
    mode: str
    dtype: str
    impl: str
    median_ms: float
    q20_ms: float
    q80_ms: float
    peak_mem_mb: float
    gbps: float = 0.0
    tflops: float = 0.0
    bound: str = ""
    fraction_of_peak: float = 0.0
    speedup: dict[str, float] = field(default_factory=dict)  # fastgan's speed-up over each reference


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse with its errors on one line (``prog: error: ...``, exit status 2): the bench commands' rule for
    bad input, which argparse breaks by printing the whole usage first (several lines for these commands)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def kernels_run(device: torch.device) -> bool:
    """Whether fastgan's ops run their Triton kernels on ``device`` in this process (else their PyTorch fallbacks)."""
    from fastgan import _backend

    return _backend.get_backend() != "torch" and _backend.triton_unavailable_reason(device) is None


def with_environ(fn, **values: str):
    """``fn`` run with the environment variables ``values`` set, restored after (fastgan's switches, e.g.
    FASTGAN_BACKEND, are read at every call, so this picks a path per timed call)."""

    def run():
        previous = {name: os.environ.get(name) for name in values}
        os.environ.update(values)
        try:
            return fn()
        finally:
            for name, value in previous.items():
                if value is None:
                    del os.environ[name]
                else:
                    os.environ[name] = value

    return run


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], object], device: torch.device, min_run_time: float = 0.3) -> tuple[float, float, float]:
    """(median, 20 %, 80 %) milliseconds of one call."""
    if device.type == "cuda":
        import triton.testing

        median, q20, q80 = triton.testing.do_bench(fn, warmup=25, rep=100, quantiles=[0.5, 0.2, 0.8])
        return float(median), float(q20), float(q80)
    import torch.utils.benchmark as benchmark

    fn()  # warm-up: first-call costs (compilation, allocation) stay out of the numbers
    measurement = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    times = measurement.blocked_autorange(min_run_time=min_run_time)
    return _quantiles([t * 1e3 for t in times.times])


def _quantiles(raw: list[float]) -> tuple[float, float, float]:
    """(median, 20 %, 80 %) of the samples."""
    raw = sorted(raw)
    if len(raw) < 2:
        return raw[0], raw[0], raw[0]
    deciles = statistics.quantiles(raw, n=10)
    return statistics.median(raw), deciles[1], deciles[7]


def time_interleaved(
    fns: dict[str, Callable[[], object]], min_run_time: float = 0.3, rounds: int = 7
) -> dict[str, tuple[float, float, float]]:
    """CPU: (median, 20 %, 80 %) milliseconds of one call of each function, timed in ``rounds`` interleaved
    blocks (A B A B ...; each block at least ``min_run_time / rounds`` long). Timing one implementation after the
    other on a shared 2-core machine let a load change between them move a ratio by 10-20 %; interleaved, both
    see it."""
    import time

    calls = {}
    for name, fn in fns.items():
        fn()  # warm-up: first-call costs (allocation, caches) stay out of the numbers
        start = time.perf_counter()
        fn()
        once = time.perf_counter() - start
        calls[name] = max(1, int(min_run_time / rounds / max(once, 1e-6)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / calls[name] * 1e3)
    return {name: _quantiles(raw) for name, raw in samples.items()}


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence the profiler's native start/stop lines (written to fd 2 by the C++ side) around one measurement."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated during one call, above what was allocated before it."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        _sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    # CPU: the profiler's allocation events carry the running total since it started.
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with _quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    allocations = []  # (time, bytes, running total after it); the total's origin is arbitrary
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        if event.tag == _EventType.Allocation:
            fields = event.extra_fields
            allocations.append((event.start_time_ns, fields.alloc_size, fields.total_allocated))
        stack.extend(event.children)
    if not allocations:
        return 0
    allocations.sort()
    _, first_size, first_total = allocations[0]
    before = first_total - first_size
    return max(0, max(total for _, _, total in allocations) - before)


def device_info(device: torch.device) -> dict:
    """Device name, driver and memory (nvidia-ml-py where a driver answers; "cpu" otherwise)."""
    info = {"device": "cpu", "torch": torch.__version__, "triton": None, "python": platform.python_version()}
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        pass
    if device.type == "cuda":
        info["device"] = torch.cuda.get_device_name(device)
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
            info["driver"] = pynvml.nvmlSystemGetDriverVersion()
            info["memory_gib"] = round(pynvml.nvmlDeviceGetMemoryInfo(handle).total / 2**30, 1)
        except Exception as error:  # no driver library, or NVML refuses: say so, keep going
            info["nvml"] = f"unavailable: {type(error).__name__}"
    else:
        info["cpu"] = platform.processor() or platform.machine()
        info["threads"] = torch.get_num_threads()
    return info


def measure_copy_bandwidth(device: torch.device) -> float:
    """Achieved GB/s of a large device-to-device copy (bytes read + written): the memory ceiling."""
    numel = (256 if device.type == "cuda" else 32) * 2**20
    source = torch.empty(numel, dtype=torch.float32, device=device).uniform_()
    target = torch.empty_like(source)
    median_ms, _, _ = time_fn(lambda: target.copy_(source), device)
    return 2 * source.numel() * 4 / (median_ms * 1e-3) / 1e9


def tensor_peak_tflops(device_name: str, dtype: torch.dtype) -> float | None:
    key = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}.get(dtype)
    for fragment, peaks in TENSOR_PEAK_TFLOPS.items():
        if fragment in device_name:
            return peaks.get(key)
    return None


_MEASURED_MATMUL_TFLOPS: dict[tuple[str, torch.dtype, int], float] = {}


def measure_matmul_tflops(device: torch.device, dtype: torch.dtype) -> float:
    """Achieved TFLOP/s of a large dense matmul in ``dtype`` at the current thread count: the compute ceiling
    where no datasheet peak is listed (every CPU). Measured once per (device, dtype, threads); on CPU the best
    of three measurements a second apart: on this shared 2-core host one measurement once read half the
    two-thread ceiling (a neighbour held a core), and every row's fraction of peak with it."""
    key = (str(device), dtype, torch.get_num_threads())
    if key not in _MEASURED_MATMUL_TFLOPS:
        m, k, n = (4096, 4096, 4096) if device.type == "cuda" else (1024, 1024, 4096)
        a = torch.randn(m, k, device=device).to(dtype)
        b = torch.randn(k, n, device=device).to(dtype)
        fastest_ms = math.inf
        for attempt in range(1 if device.type == "cuda" else 3):
            if attempt:
                time.sleep(1.0)
            _, fast_ms, _ = time_fn(lambda: a @ b, device)  # the 20 % quantile: a ceiling, not a typical call
            fastest_ms = min(fastest_ms, fast_ms)
        _MEASURED_MATMUL_TFLOPS[key] = 2 * m * k * n / (fastest_ms * 1e-3) / 1e12
    return _MEASURED_MATMUL_TFLOPS[key]


def compute_ceiling_tflops(device: torch.device, device_name: str, dtype: torch.dtype) -> float:
    """The datasheet tensor-core peak where listed, else the measured large-matmul rate."""
    return tensor_peak_tflops(device_name, dtype) or measure_matmul_tflops(device, dtype)


def run_case(case: Case, device: torch.device, copy_gbps: float, device_name: str) -> list[Row]:
    rows = []
    timings = time_interleaved(case.impls) if device.type == "cpu" else None
    for impl, fn in case.impls.items():
        median, q20, q80 = timings[impl] if timings is not None else time_fn(fn, device)
        peak = peak_memory_bytes(fn, device)
        seconds = median * 1e-3
        row = Row(case.op, case.name, case.mode, str(case.dtype).removeprefix("torch."), impl,
                  median, q20, q80, peak / 2**20)  # fmt: skip
        row.gbps = case.bytes_moved / seconds / 1e9 if case.bytes_moved else 0.0
        flops = case.impl_flops.get(impl, case.flops)
        row.tflops = flops / seconds / 1e12 if flops else 0.0
        # Whichever ceiling the case is nearer to bounds it.
        memory_fraction = row.gbps / copy_gbps if copy_gbps else 0.0
        compute_peak = compute_ceiling_tflops(device, device_name, case.dtype) if row.tflops else 0.0
        compute_fraction = row.tflops / compute_peak if compute_peak else 0.0
        if not (case.bytes_moved or flops):
            row.bound = "-"  # whole training steps: no single roofline applies; the speed-up is the measure
        elif compute_fraction > memory_fraction:
            row.bound, row.fraction_of_peak = "compute", compute_fraction
        else:
            row.bound, row.fraction_of_peak = "memory", memory_fraction
        rows.append(row)
    fastgan = next((r for r in rows if r.impl == "fastgan"), None)
    if fastgan is not None:
        fastgan.speedup = {r.impl: r.median_ms / fastgan.median_ms for r in rows if r is not fastgan}
    return rows


def column_widths(names: dict[str, list[str]]) -> dict[str, int]:
    """Widths of the op / case / impl columns that fit every given name (``{"case": [...], ...}``), so that no
    name is cut: cut at a fixed width, names that differ only at the end (a layer's kernel size, a batch size)
    printed alike."""
    return {column: max([len(column), *map(len, values)]) for column, values in names.items()}


def case_column_widths(cases: list[Case]) -> dict[str, int]:
    """:func:`column_widths` of a module's cases, computed before they run: its table is printed case by case."""
    return column_widths(
        {"op": [c.op for c in cases], "case": [c.name for c in cases], "impl": [i for c in cases for i in c.impls]}
    )


def format_table(rows: list[Row], widths: dict[str, int] | None = None) -> str:
    """The rows as a table; ``widths`` (see :func:`column_widths`) keeps several tables' columns aligned."""
    widths = {**column_widths({"op": [r.op for r in rows], "case": [r.case for r in rows],
                               "impl": [r.impl for r in rows]}), **(widths or {})}  # fmt: skip
    op_w, case_w, impl_w = widths["op"], widths["case"], widths["impl"]
    lines = [
        f"{'op':<{op_w}} {'case':<{case_w}} {'mode':<7} {'dtype':<8} {'impl':<{impl_w}} {'median ms':>10} {'q20':>9} "
        f"{'q80':>9} {'peak MiB':>9} {'GB/s':>8} {'TFLOP/s':>8} {'bound':>7} {'%peak':>6}  speed-up of fastgan"
    ]
    for r in rows:
        speedups = ", ".join(f"{v:.2f}x vs {k}" for k, v in r.speedup.items())
        lines.append(
            f"{r.op:<{op_w}} {r.case:<{case_w}} {r.mode:<7} {r.dtype:<8} {r.impl:<{impl_w}} {r.median_ms:>10.3f} "
            f"{r.q20_ms:>9.3f} {r.q80_ms:>9.3f} {r.peak_mem_mb:>9.1f} {r.gbps:>8.1f} {r.tflops:>8.2f} "
            f"{r.bound:>7} {100 * r.fraction_of_peak:>5.1f}%  {speedups}"
        )
    return "\n".join(lines)


def write_results(rows: list[Row], info: dict, out_dir: Path, stem: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}.jsonl"
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    with path.open("a") as handle:
        for row in rows:
            handle.write(json.dumps({"time": stamp, **info, **asdict(row)}) + "\n")
    return path


def plot_speedups(rows: list[Row], path: Path, title: str) -> Path | None:
    """A bar chart of fastgan's speed-up over each reference, one group per case."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fastgan_rows = [r for r in rows if r.impl == "fastgan" and r.speedup]
    if not fastgan_rows:
        return None
    references = sorted({k for r in fastgan_rows for k in r.speedup})
    figure, axis = plt.subplots(figsize=(max(6, 0.7 * len(fastgan_rows) * len(references)), 4.5))
    width = 0.8 / len(references)
    for i, reference in enumerate(references):
        values = [r.speedup.get(reference, 0.0) for r in fastgan_rows]
        axis.bar([x + i * width for x in range(len(fastgan_rows))], values, width, label=f"vs {reference}")
    axis.axhline(1.0, color="black", linewidth=0.8)
    axis.set_xticks([x + 0.4 - width / 2 for x in range(len(fastgan_rows))])
    axis.set_xticklabels([f"{r.op}\n{r.case}\n{r.mode}" for r in fastgan_rows], fontsize=6, rotation=30, ha="right")
    axis.set_ylabel("fastgan speed-up (x)")
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def default_out_dir() -> Path:
    return Path(os.environ.get("OUT") or Path(__file__).parent / "out")
