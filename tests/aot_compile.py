"""Compile every kernel configuration fastgan can launch for the H100 (sm_90), no GPU needed.

The interpreter accepts kernels that the GPU compiler rejects (tl.dot tiles under 16, for one)
and says nothing of registers or shared memory, so ``make test`` also builds, through Triton's
real compiler and its bundled ptxas:

* every configuration listed by a kernel module's ``aot_specs()``, without specialisation; and
* every distinct specialisation that the vocoders' real workloads launch (``tests/aot_launches.py``
  records them on CPU): what a GPU compiles, with aligned pointers, 16-divisible sizes and unit
  strides as compile-time facts. The generic build does not show its registers or spills (the
  fused ResBlock1 kernel's spill was found only this way), and its grids are checked against
  CUDA's launch limits.

Fails on a compile error, shared memory over the H100's per-block limit, a grid over CUDA's limits,
or spills over what ``ALLOWED_SPILLS`` accepts, with its reason. Prints one table row per configuration.

    python tests/aot_compile.py [--jobs N] [--only SUBSTRING] [--listed-only]
"""

from __future__ import annotations

import argparse
import importlib
import os
import pickle
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

# (kernel name, label substring) -> (most spill bytes accepted, why). Anything else must not spill.
# Each entry is a few bytes in a minority of one kernel's launched specialisations (ptxas's choice for that
# exact set of alignment facts; the same configuration elsewhere does not spill); removing them costs more
# warps or fewer pipeline stages for every launch, which wants a GPU measurement first.
_MEASURE_FIRST = "a minority of launched specialisations; tune on the first GPU run, not blind"
ALLOWED_SPILLS: dict[tuple[str, str], tuple[int, str]] = {
    ("_fused_two_conv_forward_kernel", "launched: bf16"): (8, _MEASURE_FIRST),
    ("_fused_two_conv_forward_kernel", "launched: fp16"): (8, _MEASURE_FIRST),
    ("_stretch_conv1d_forward_kernel", "launched: fp16"): (32, _MEASURE_FIRST),
    ("_conv_kernel", "launched: fp32"): (16, _MEASURE_FIRST),
}


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


def _listed_job(module_name: str, index: int) -> dict:
    spec = importlib.import_module(module_name).aot_specs()[index]
    return {"module": module_name, "kernel": spec.name, "signature": spec.signature, "constexprs": spec.constexprs,
            "attrs": {}, "num_warps": spec.num_warps, "num_stages": spec.num_stages, "label": spec.label}  # fmt: skip


def _launched_label(record: dict) -> str:
    """What the GPU would specialise: aligned pointers / 16-divisible ints ("D"), ints equal to 1."""
    pointers = [t for t in record["signature"].values() if t.startswith("*")]
    divisible = sum(1 for attr in record["attrs"].values() if ["tt.divisibility", 16] in attr)
    units = sum(1 for (index,), value in record["constexprs"].items()
                if value == 1 and list(record["signature"].values())[index] == "constexpr"
                and not list(record["signature"])[index].isupper())  # fmt: skip
    dtype = pointers[0][1:] if pointers else "-"
    return f"launched: {dtype} D{divisible}/{len(pointers)}p 1x{units} ({record['workload']})"[:52]


def _compile_one(job: tuple[str, int] | dict) -> dict:
    """Compile one configuration for sm_90: a listed one (module, index), or a launched one (a record
    from tests/aot_launches.py, with the specialisation attributes the GPU would add)."""
    import triton
    from triton.backends.compiler import GPUTarget

    spec = _listed_job(*job) if isinstance(job, tuple) else dict(job, label=_launched_label(job))
    kernel = getattr(importlib.import_module(spec["module"]), spec["kernel"])
    row = {"module": spec["module"].rsplit(".", 1)[1], "kernel": spec["kernel"], "label": spec["label"],
           "warps": spec["num_warps"], "stages": spec["num_stages"]}  # fmt: skip
    start = time.perf_counter()
    try:
        source = triton.compiler.ASTSource(
            fn=kernel, signature=spec["signature"], constexprs=spec["constexprs"], attrs=spec["attrs"]
        )
        compiled = triton.compile(
            source,
            target=GPUTarget("cuda", TARGET_ARCH, 32),
            options={"num_warps": spec["num_warps"], "num_stages": spec["num_stages"]},
        )
        row["shared"] = compiled.metadata.shared
        row["registers"], row["spills"] = _ptxas_report(compiled.asm["ptx"])
    except Exception as error:  # report every failure, not only the first
        row["error"] = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
    row["seconds"] = time.perf_counter() - start
    return row


def _launched_records() -> list[dict]:
    """The distinct launches of tests/aot_launches.py's workloads (run in a child: it needs the interpreter)."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "aot_launches.py")
    env = dict(os.environ, TRITON_INTERPRET="1", FASTGAN_BACKEND="triton")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "launches.pkl")
        result = subprocess.run([sys.executable, script, path], env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"tests/aot_launches.py failed:\n{result.stdout}{result.stderr}")
        print(result.stdout.strip())
        with open(path, "rb") as handle:
            return pickle.load(handle)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", default="", help="compile only kernels whose module or name contains this")
    parser.add_argument("--listed-only", action="store_true", help="skip the launched specialisations")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    jobs: list = []
    for module_name in _kernel_modules():
        specs = importlib.import_module(module_name).aot_specs()
        jobs += [(module_name, i) for i, spec in enumerate(specs) if args.only in module_name + spec.name]
    listed = len(jobs)
    failures = []
    if not args.listed_only:
        records = [r for r in _launched_records() if args.only in r["module"] + r["kernel"]]
        jobs += records
        failures += [error for record in records for error in record.get("grid_errors", [])]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(_compile_one, jobs, chunksize=4))

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
        allowed = max((most for (k, s), (most, _) in ALLOWED_SPILLS.items() if k == row["kernel"] and s in config),
                      default=0)  # fmt: skip
        if row["spills"] > allowed:
            failures.append(f"{row['kernel']} [{config}]: {row['spills']} spill bytes, over ALLOWED_SPILLS ({allowed})")
    print(f"\naot compile (sm_{TARGET_ARCH}): {len(rows)} configurations ({listed} listed, {len(rows) - listed} as "
          f"launched) in {time.perf_counter() - start:.0f} s, {len(failures)} failed")  # fmt: skip
    for failure in failures:
        print(f"  FAILED {failure}")
    return 1 if failures or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
