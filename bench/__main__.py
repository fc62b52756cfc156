"""Run every benchmark module: ``python -m bench [--quick] [--only OP] [--out DIR] [--device cuda|cpu]``."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import pkgutil
import sys
import time
from pathlib import Path

import torch

import bench
from bench import harness
from fastgan._checks import one_line, usable_device

NOT_BENCHMARKS = {"harness", "__main__", "conftest"}


def benchmark_modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.iter_modules(bench.__path__)
        if info.name not in NOT_BENCHMARKS and not info.name.startswith(("test_", "_"))
    )


def _select_impls(case: harness.Case, skip_compiled: bool, compiled_only: bool) -> harness.Case | None:
    """The case with its torch.compile references dropped or kept alone (beside fastgan); None if nothing is left."""
    if not (skip_compiled or compiled_only):
        return case
    impls = {
        impl: fn
        for impl, fn in case.impls.items()
        if impl == "fastgan" or impl.startswith("torch.compile") != skip_compiled
    }
    if compiled_only and len(impls) < 2:
        return None
    return dataclasses.replace(case, impls=impls)


def main(argv: list[str] | None = None) -> int:
    parser = harness.OneLineArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CPU-demo sizes, no torch.compile references")
    parser.add_argument("--only", action="append", default=[], help="benchmark module(s) to run (repeatable)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default $OUT or bench/out)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--skip-compiled",
        action="store_true",
        help="leave out the torch.compile references (their compilation dominates a short GPU lease)",
    )
    which.add_argument("--compiled-only", action="store_true", help="fastgan and the torch.compile references only")
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="seconds: start no new case after this (what was measured is kept)",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.only if name not in benchmark_modules()]
    if unknown:
        parser.error(f"--only {unknown[0]}: no such benchmark module; choose from {', '.join(benchmark_modules())}")
    if args.time_budget is not None and not args.time_budget > 0:
        parser.error(f"--time-budget must be a positive number of seconds, got {args.time_budget}")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a folder")
    try:
        device = usable_device(args.device)
    except ValueError as error:
        parser.error(one_line(error))
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
    run_start = time.perf_counter()
    for name in args.only or benchmark_modules():
        if args.time_budget is not None and time.perf_counter() - run_start > args.time_budget:
            print(f"\n## {name}: not run, the {args.time_budget:.0f} s budget is spent")
            continue
        module = importlib.import_module(f"bench.{name}")
        start = time.perf_counter()
        print(f"\n## {name}")
        not_run, header_done = [], False
        module_cases = module.cases(args.quick, device)
        widths = harness.case_column_widths(module_cases)  # one width per module: its table prints case by case
        for case in module_cases:
            if args.time_budget is not None and time.perf_counter() - run_start > args.time_budget:
                not_run.append(f"{case.name} {case.mode}")
                continue
            case = _select_impls(case, args.skip_compiled, args.compiled_only)
            if case is None:
                continue
            rows = harness.run_case(case, device, copy_gbps, info["device"])
            table = harness.format_table(rows, widths).splitlines()
            print("\n".join(table[1:] if header_done else table), flush=True)
            header_done = True
            # Printed and appended case by case, so a run killed by a time limit keeps what it measured.
            path = harness.write_results(rows, info, out_dir, stem)
            all_rows += rows
        if not_run:
            print(f"# {name}: {len(not_run)} case(s) not run, the {args.time_budget:.0f} s budget is spent: "
                  + "; ".join(not_run))  # fmt: skip
        print(f"# {name}: {time.perf_counter() - start:.0f} s")
    plot = harness.plot_speedups(all_rows, out_dir / f"{stem}.png", f"fastgan on {info['device']}")
    print(f"\nresults appended to {path}" + (f"; plot {plot}" if plot else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
