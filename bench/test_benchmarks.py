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


@pytest.mark.parametrize(("case", "fn"), list(_parameters()))
def test_benchmark(benchmark, case, fn):
    benchmark.group = f"{case.op} {case.name} {case.mode}"
    benchmark(fn)
