#!/usr/bin/env bash
# `make gpu-wheels`: fetch, here (network needed), the Python 3.12 x86-64 wheels that the GPU machine's image lacks
# for the comparisons the benchmarks and reference tests make there: parallel-wavegan 0.6.1 (built here from its
# sdist: it has no wheel), librosa and auraloss with the dependencies that image does not hold. They land in .whl/
# (git-ignored); pass `carry: [".whl"]` to the device tool, and bench/gpu_check.sh installs them into /tmp/site.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
rm -rf .whl && mkdir -p .whl
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
  -d .whl librosa==0.11.0 audioread==3.1.0 soxr==1.1.0 pooch==1.9.0 platformdirs soundfile==0.14.0 cffi pycparser \
  decorator==5.3.1 standard-aifc standard-sunau auraloss==0.4.0
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w .whl parallel-wavegan==0.6.1
ls -l .whl
