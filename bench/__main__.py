"""Run every benchmark module: ``python -m bench [--quick] [--only OP] [--out DIR] [--device cuda|cpu]``."""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import pkgutil
import sys
import time
from pathlib import Path

import torch

import bench
from bench import harness

NOT_BENCHMARKS = {"harness", "__main__", "conftest"}


def benchmark_modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.iter_modules(bench.__path__)
        if info.name not in NOT_BENCHMARKS and not info.name.startswith(("test_", "_"))
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CPU-demo sizes, no torch.compile references")
    parser.add_argument("--only", action="append", default=[], help="benchmark module(s) to run (repeatable)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default $OUT or bench/out)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    out_dir = args.out or harness.default_out_dir()
    info = harness.device_info(device)
    copy_gbps = harness.measure_copy_bandwidth(device)
    info["copy_gbps"] = round(copy_gbps, 1)
    print(f"# device: {info['device']}  torch {info['torch']}  triton {info['triton']}  "
          f"copy bandwidth {copy_gbps:.1f} GB/s (the memory ceiling; %peak is against it)")  # fmt: skip
    if harness.tensor_peak_tflops(info["device"], torch.float32) is None:
        matmul = harness.measure_matmul_tflops(device, torch.float32)
        info["matmul_tflops_fp32"] = round(matmul, 4)
        print(f"# no datasheet peak for this device: the compute ceiling is a measured fp32 matmul, "
              f"{matmul * 1e3:.1f} GFLOP/s at {torch.get_num_threads()} thread(s)")  # fmt: skip
    stem = f"{info['device'].replace(' ', '_')}-{_dt.date.today().isoformat()}"
    all_rows = []
    path = out_dir / f"{stem}.jsonl"
    for name in args.only or benchmark_modules():
        module = importlib.import_module(f"bench.{name}")
        start = time.perf_counter()
        rows = []
        for case in module.cases(args.quick, device):
            rows += harness.run_case(case, device, copy_gbps, info["device"])
        print(f"\n## {name} ({time.perf_counter() - start:.0f} s)")
        print(harness.format_table(rows))
        # Appended module by module, so a run stopped by a time limit keeps what it measured.
        path = harness.write_results(rows, info, out_dir, stem)
        all_rows += rows
    plot = harness.plot_speedups(all_rows, out_dir / f"{stem}.png", f"fastgan on {info['device']}")
    print(f"\nresults appended to {path}" + (f"; plot {plot}" if plot else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
