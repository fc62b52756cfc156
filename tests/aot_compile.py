"""Compile every kernel configuration fastgan can launch for the H100 (sm_90), no GPU needed.

The interpreter accepts kernels that the GPU compiler rejects (tl.dot tiles under 16, for one)
and says nothing of registers or shared memory, so ``make test`` also builds each configuration
listed by a kernel module's ``aot_specs()`` through Triton's real compiler and its bundled ptxas.
Fails on a compile error, shared memory over the H100's per-block limit, or spills in a
configuration that is not listed in ``ALLOWED_SPILLS`` with a reason. Prints one table row per
configuration.

    python tests/aot_compile.py [--jobs N] [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

os.environ["TRITON_INTERPRET"] = "0"  # the real compiler, not the interpreter

H100_MAX_SHARED_BYTES = 232448  # 227 KiB opt-in shared memory per block on sm_90
TARGET_ARCH = 90

# (kernel name, label substring) -> why spilling there is acceptable. Empty: no spills allowed.
ALLOWED_SPILLS: dict[tuple[str, str], str] = {}


def _kernel_modules() -> list[str]:
    import fastgan.kernels as package

    return sorted(
        f"{package.__name__}.{info.name}"
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    )


def _ptxas_report(ptx: str) -> tuple[int, int]:
    import triton

    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as handle:
        handle.write(ptx)
        path = handle.name
    try:
        result = subprocess.run(
            [ptxas, "-v", f"--gpu-name=sm_{TARGET_ARCH}a", path, "-o", os.devnull],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(path)
    text = result.stdout + result.stderr
    registers = int(re.search(r"Used (\d+) registers", text).group(1))
    spills = sum(int(n) for n in re.findall(r"(\d+) bytes spill (?:stores|loads)", text))
    return registers, spills


def _compile_one(job: tuple[str, int]) -> dict:
    module_name, index = job
    import triton
    from triton.backends.compiler import GPUTarget

    spec = importlib.import_module(module_name).aot_specs()[index]
    row = {"module": module_name.rsplit(".", 1)[1], "kernel": spec.name, "label": spec.label,
           "warps": spec.num_warps, "stages": spec.num_stages}  # fmt: skip
    start = time.perf_counter()
    try:
        source = triton.compiler.ASTSource(fn=spec.kernel, signature=spec.signature, constexprs=spec.constexprs)
        compiled = triton.compile(
            source,
            target=GPUTarget("cuda", TARGET_ARCH, 32),
            options={"num_warps": spec.num_warps, "num_stages": spec.num_stages},
        )
        row["shared"] = compiled.metadata.shared
        row["registers"], row["spills"] = _ptxas_report(compiled.asm["ptx"])
    except Exception as error:  # report every failure, not only the first
        row["error"] = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
    row["seconds"] = time.perf_counter() - start
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", default="", help="compile only kernels whose module or name contains this")
    args = parser.parse_args(argv)

    jobs = []
    for module_name in _kernel_modules():
        specs = importlib.import_module(module_name).aot_specs()
        jobs += [(module_name, i) for i, spec in enumerate(specs) if args.only in module_name + spec.name]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(_compile_one, jobs, chunksize=4))

    failures = []
    header = (
        f"{'module':<16} {'kernel':<40} {'configuration':<52} {'w':>2} {'st':>2} {'regs':>4} {'spill':>5} {'smem':>7}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        config = row["label"]
        if "error" in row:
            print(f"{row['module']:<16} {row['kernel']:<40} {config:<52} FAILED {row['error']}")
            failures.append(f"{row['kernel']} [{config}]: {row['error']}")
            continue
        print(
            f"{row['module']:<16} {row['kernel']:<40} {config:<52} {row['warps']:>2} {row['stages']:>2} "
            f"{row['registers']:>4} {row['spills']:>5} {row['shared']:>7}"
        )
        if row["shared"] > H100_MAX_SHARED_BYTES:
            failures.append(f"{row['kernel']} [{config}]: {row['shared']} B shared > {H100_MAX_SHARED_BYTES}")
        allowed = any(k == row["kernel"] and s in config for (k, s) in ALLOWED_SPILLS)
        if row["spills"] and not allowed:
            failures.append(f"{row['kernel']} [{config}]: {row['spills']} spill bytes, not in ALLOWED_SPILLS")
    print(f"\naot compile (sm_{TARGET_ARCH}): {len(rows)} configurations in {time.perf_counter() - start:.0f} s, "
          f"{len(failures)} failed")  # fmt: skip
    for failure in failures:
        print(f"  FAILED {failure}")
    return 1 if failures or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
