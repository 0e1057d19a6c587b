#!/usr/bin/env bash
# Every GPU figure of issue 16 in one run (benchmarks/README.md, "GPU"):
#   1. GPT-2 124M training, bf16 autocast, fused AdamW, 16 x 1024, torch.compile on every side:
#      tokens/s and MFU of torch_impl, nanoGPT (from $NANOGPT) and transformers, and the ratios;
#   2. batch-1 bf16 greedy decode of GPT-2 124M: torch_impl's CUDA-graph decoder against
#      transformers generate, as fractions of the HBM weight-read limit;
#   -> $OUT (default reports/bench_gpu.json), with the command, date, commit, device, versions;
#   3. the CUDA-marked tests (bf16 whole-model agreement with the float64 reference, also on
#      the flash and memory-efficient SDPA kernels; the CUDA-graph decoder) -> reports/gpu_tests.*
#
# usage: [NANOGPT=third_party/nanoGPT] [FT_COMMIT=sha] [OUT=...] [PYTHON=python3] \
#        bash benchmarks/gpu.sh [--smoke]
#   NANOGPT   a checkout of github.com/karpathy/nanoGPT (its model.py); empty: leave nanoGPT out
#   FT_COMMIT the commit measured, where the tree is a copy without .git
#   --smoke   the same command on the CPU at tiny shapes (--gpu-device cpu --quick), no tests
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -x .venv/bin/python ]]; then PY="${PYTHON:-.venv/bin/python}"; else PY="${PYTHON:-python3}"; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the tree itself, installed or not
NANOGPT="${NANOGPT-third_party/nanoGPT}"
OUT="${OUT:-reports/bench_gpu.json}"
SMOKE=()
case "${1:-}" in
    "") ;;
    --smoke) SMOKE=(--gpu-device cpu --quick) ;;
    *) echo "usage: bash benchmarks/gpu.sh [--smoke]" >&2; exit 2 ;;
esac
BASELINE=()
if [[ -n "$NANOGPT" ]]; then BASELINE=(--nanogpt "$NANOGPT"); fi
mkdir -p "$(dirname "$OUT")"
status=0  # a failed benchmark still lets the tests run; the script then fails
"$PY" -m formal_transformers bench --no-cpu --gpu-train --gpu-decode --compile \
    "${BASELINE[@]}" --json "$OUT" "${SMOKE[@]}" || status=$?
if [[ ${#SMOKE[@]} -eq 0 ]]; then
    mkdir -p reports
    mapfile -t CUDA_TESTS < <(grep -rlE "pytest\.mark\.cuda" tests | sort)  # only their modules
    "$PY" -m pytest -m cuda "${CUDA_TESTS[@]}" -q -rs -p no:cacheprovider \
        --junitxml=reports/gpu_tests.xml 2>&1 | tee reports/gpu_tests.txt || status=$?
fi
exit "$status"
