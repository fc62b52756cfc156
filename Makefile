# fastgan's two commands, `make demo` and `make test`, each do their own set-up in .venv.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.fastgan-setup
TORCH_CPU := torch==2.13.0
LOGS := $(VENV)/logs

.PHONY: setup test test-fallback test-interpreter test-aot lint demo bench gpu-check gpu-wheels clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# A CUDA build of torch already in the venv stays; otherwise the CPU build (a local file here).
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q $(TORCH_CPU)
	$(PIP) install -q -e ".[test]"
	@# The parity oracle: parallel-wavegan 0.6.1 installs only without its (stale) dependency pins.
	$(PIP) install -q h5py scipy auraloss
	$(PIP) install -q --no-deps --no-build-isolation parallel-wavegan==0.6.1
	mkdir -p $(LOGS) && touch $(STAMP)

# Pass 1: every op on its PyTorch fallback. Pass 2: the Triton kernels through the interpreter
# on CPU (reference-only tests are left out). Then every kernel configuration compiled for sm_90.
test: setup
	@$(MAKE) --no-print-directory test-fallback test-interpreter test-aot
	@echo "== fastgan test summary =="
	@echo "fallback pass:    $$(tail -n 1 $(LOGS)/fallback.log)"
	@echo "interpreter pass: $$(tail -n 1 $(LOGS)/interpreter.log)"
	@echo "sm_90 compile:    $$(grep '^aot compile' $(LOGS)/aot.log)"

# The fallback pass also checks the benchmark tools' own logic (bench/test_benchmarks.py), not their timings.
test-fallback: setup
	TRITON_INTERPRET=0 FASTGAN_BACKEND=auto $(PY) -m pytest -q -p no:cacheprovider -m "not benchmark" \
		tests bench/test_benchmarks.py 2>&1 | tee $(LOGS)/fallback.log

test-interpreter: setup
	TRITON_INTERPRET=1 FASTGAN_BACKEND=auto $(PY) -m pytest -q -p no:cacheprovider -m "not reference" tests 2>&1 | tee $(LOGS)/interpreter.log

test-aot: setup
	$(PY) tests/aot_compile.py 2>&1 | tee $(LOGS)/aot.log

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

demo: setup
	$(PY) -m fastgan.demo

bench: setup
	$(PY) -m bench

# On a CUDA machine: install over its own torch/triton, test natively, benchmark; results into $OUT.
# Run `make gpu-wheels` here first and carry .whl, so the parallel_wavegan/auraloss comparisons run there too.
gpu-check:
	bash bench/gpu_check.sh

gpu-wheels: setup
	bash bench/gpu_wheels.sh

# Rebuild the bundled speech corpus in data/corpus (needs network for pip download, and espeak-ng).
corpus: setup
	$(PY) -m fastgan.corpus

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis .benchmarks bench/out
