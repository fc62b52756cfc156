#!/usr/bin/env bash
# Train fastgan's default vocoder on a CUDA machine within a time budget, evaluate it against Griffin-Lim on the
# held-out utterances, and export the shipped file. Results (at most 8 files) in $OUT:
#   train.json (steps, wall time, validation STFT distance), eval.json (per utterance and mean),
#   default_vocoder.pt (generator only, fp16), losses.csv, samples.tar (vocoder / Griffin-Lim / reference wavs).
# Budget: MINUTES (default 6) of training plus ~1 minute of set-up and evaluation.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/out}"
mkdir -p "$OUT"
PYTHON="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0 FASTGAN_BACKEND=auto
RUN="${RUN:-/tmp/fastgan-default-run}"
"$PYTHON" -m pip install -q --no-deps --no-build-isolation -e . >/tmp/fastgan-install.log 2>&1 \
  || { echo "install failed"; tail -20 /tmp/fastgan-install.log; exit 1; }
"$PYTHON" -m fastgan.default_model train --minutes "${MINUTES:-6}" --device cuda --out "$RUN" ${RESUME:+--resume} \
  > "$OUT/train.json" || { echo "training failed"; exit 1; }
cat "$OUT/train.json"
cp "$RUN/losses.csv" "$OUT/losses.csv"
ckpt=$(ls -t "$RUN"/checkpoint-*steps.pkl | head -1)
"$PYTHON" -m fastgan.default_model evaluate --checkpoint "$ckpt" --device cuda --json "$OUT/eval.json" --samples "$RUN/samples"
tar -cf "$OUT/samples.tar" -C "$RUN" samples
"$PYTHON" -m fastgan.default_model export --checkpoint "$ckpt" --to "$OUT/default_vocoder.pt" --half
