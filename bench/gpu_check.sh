#!/usr/bin/env bash
# `make gpu-check`: on a CUDA machine, install fastgan over the machine's own torch and triton (no
# downloads: its image has no network), run the test suite natively on the GPU, then the benchmarks.
# At most 8 files land in $OUT (or bench/out): install.log, info.txt, tests.log, bench.txt, the eager-reference
# results (<device>-<date>.jsonl/.png) and the torch.compile-reference results (compiled/<device>-<date>.jsonl/.png).
# Budget: at most ~9.5 minutes (GPU_TEST_TIMEOUT 210 + 20 s to stop, GPU_BENCH_BUDGET 150 + 40 s for its last
# case, GPU_COMPILE_BUDGET 60 + 50 s, set-up), under the device's 10-minute command limit; pass timeout_s ~570.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/out}"
mkdir -p "$OUT"
PYTHON="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0 FASTGAN_BACKEND=auto

start=$(date +%s)
"$PYTHON" -m pip install -q --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1 \
  || { echo "install failed: see $OUT/install.log"; tail -20 "$OUT/install.log"; exit 1; }
# The comparison packages the image lacks (parallel_wavegan, librosa, auraloss), carried as wheels by `make gpu-wheels`.
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >>"$OUT/install.log" 2>&1 && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}" \
    || echo "carried wheels failed to install (see $OUT/install.log): the references they provide are skipped"
else
  echo "no .whl/ carried: parallel_wavegan/auraloss comparisons are skipped (run make gpu-wheels here, carry .whl)"
fi
{ "$PYTHON" -m fastgan info
  # The comparisons' imports, checked once here (librosa needs the image's numba with its numpy).
  "$PYTHON" -c "import librosa, numba, parallel_wavegan, auraloss; print('carried: librosa', librosa.__version__, \
'numba', numba.__version__)" 2>&1 | tail -1
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv; } \
  2>&1 | tee "$OUT/info.txt"

# The suite on CUDA tensors: every op runs its compiled kernel, bf16 included. A fresh machine has no Triton cache:
# the interpreter pass launches ~840 distinct specialisations (~310 launcher stubs built with gcc, ~0.6 s each), so
# the tests run in parallel workers (pytest-xdist is in the image) with few hypothesis examples (each random shape is
# a new compile). The time limit sends SIGINT first: pytest then still prints the failures it has seen.
workers=()
"$PYTHON" -c "import xdist" 2>/dev/null && workers=(-n "${GPU_TEST_WORKERS:-12}")
FASTGAN_TEST_DEVICE=cuda FASTGAN_HYPOTHESIS_EXAMPLES="${FASTGAN_HYPOTHESIS_EXAMPLES:-5}" \
  timeout -s INT -k 20 "${GPU_TEST_TIMEOUT:-210}" "$PYTHON" -m pytest -q -p no:cacheprovider "${workers[@]}" \
  --durations=10 -m "not reference" tests 2>&1 | tee "$OUT/tests.log"
test_status=${PIPESTATUS[0]}

# Benchmarks, the hot paths with targets first. Phase 1: fastgan against the eager and oracle references (no
# compilation); phase 2, in what time is left: against torch.compile of the references, whose compilation
# (max-autotune for the residual blocks) would otherwise eat the lease.
order=(--only residual_block --only wavenet_block --only conv_transpose --only upsample --only stft_loss
       --only realtime --only models --only train --only phase_shuffle --only logmel)
# Each case's rows are printed and appended to the JSONL as it finishes, so a phase cut by its timeout keeps them.
timeout $(( ${GPU_BENCH_BUDGET:-150} + 40 )) "$PYTHON" -m bench --out "$OUT" --skip-compiled \
  --time-budget "${GPU_BENCH_BUDGET:-150}" "${order[@]}" 2>&1 | grep -v '^USDT' | tee "$OUT/bench.txt"
bench_status=${PIPESTATUS[0]}
timeout $(( ${GPU_COMPILE_BUDGET:-60} + 50 )) "$PYTHON" -m bench --out "$OUT/compiled" --compiled-only \
  --time-budget "${GPU_COMPILE_BUDGET:-60}" "${order[@]}" 2>&1 | grep -v '^USDT' | tee -a "$OUT/bench.txt"
compile_status=${PIPESTATUS[0]}

echo "gpu-check: tests exit ${test_status}, benchmarks exit ${bench_status}/${compile_status}, $(( $(date +%s) - start )) s"
exit $(( test_status || bench_status ))
