#!/usr/bin/env bash
# `make gpu-check`: on a CUDA machine, install fastgan over the machine's own torch and triton (no
# downloads: its image has no network), run the test suite natively on the GPU, then the
# benchmarks. Everything lands in $OUT (at most 8 files) or bench/out. Budget: under 5 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/out}"
mkdir -p "$OUT"
PYTHON="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0 FASTGAN_BACKEND=auto

start=$(date +%s)
# The comparison packages the image lacks (parallel_wavegan, librosa, auraloss), carried as wheels by `make gpu-wheels`.
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >"$OUT/wheels.log" 2>&1 && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}" \
    || echo "carried wheels failed to install (see $OUT/wheels.log): the references they provide are skipped"
else
  echo "no .whl/ carried: parallel_wavegan/auraloss comparisons are skipped (run make gpu-wheels here, carry .whl)"
fi
"$PYTHON" -m pip install -q --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1 \
  || { echo "install failed: see $OUT/install.log"; tail -20 "$OUT/install.log"; exit 1; }
{ "$PYTHON" -m fastgan info; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv; } \
  2>&1 | tee "$OUT/info.txt"

# The suite on CUDA tensors: every op runs its compiled kernel, bf16 included.
FASTGAN_TEST_DEVICE=cuda timeout "${GPU_TEST_TIMEOUT:-150}" "$PYTHON" -m pytest -q -p no:cacheprovider \
  -m "not reference" tests 2>&1 | tee "$OUT/tests.log"
test_status=${PIPESTATUS[0]}

timeout "${GPU_BENCH_TIMEOUT:-150}" "$PYTHON" -m bench --out "$OUT" 2>&1 | grep -v '^USDT' | tee "$OUT/bench.txt"
bench_status=${PIPESTATUS[0]}

echo "gpu-check: tests exit ${test_status}, benchmarks exit ${bench_status}, $(( $(date +%s) - start )) s"
exit $(( test_status || bench_status ))
