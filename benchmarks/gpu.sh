#!/usr/bin/env bash
# Every GPU figure of issue 16 (benchmarks/README.md, "GPU"), in one run or in parts:
#   train   GPT-2 124M training, bf16 autocast, fused AdamW, 16 x 1024, torch.compile on every
#           side: tokens/s and MFU of torch_impl, nanoGPT (from $NANOGPT) and transformers;
#   decode  batch-1 bf16 greedy decode of GPT-2 124M: torch_impl's CUDA-graph decoder against
#           transformers generate, as fractions of the HBM weight-read limit;
#   -> $OUT (default $REPORTS/bench_gpu.json; bench_gpu_train.json or bench_gpu_decode.json
#      when only one of them runs) with the command, date, commit, device, versions;
#   tests   the CUDA-marked tests (bf16 whole-model agreement with the float64 reference, also
#           on the flash and memory-efficient SDPA kernels; the CUDA-graph decoder; ...)
#           -> $REPORTS/gpu_tests.txt and .xml
#
# usage: [NANOGPT=third_party/nanoGPT] [FT_COMMIT=sha] [REPORTS=reports] [OUT=...] \
#        [PYTHON=python3] bash benchmarks/gpu.sh [--smoke] [train] [decode] [tests]
#   no part named: all three. NANOGPT: a checkout of github.com/karpathy/nanoGPT (its model.py);
#   empty: leave nanoGPT out. FT_COMMIT: the commit measured, where the tree has no .git.
#   --smoke: train and decode on the CPU at tiny shapes (--gpu-device cpu --quick), no tests.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -x .venv/bin/python ]]; then PY="${PYTHON:-.venv/bin/python}"; else PY="${PYTHON:-python3}"; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the tree itself, installed or not
export PYTHONUNBUFFERED=1 FT_INVOCATION="bash benchmarks/gpu.sh $*"  # into the JSON
NANOGPT="${NANOGPT-third_party/nanoGPT}"
REPORTS="${REPORTS:-reports}"
SMOKE=() PARTS=()
for arg in "$@"; do
    case "$arg" in
        --smoke) SMOKE=(--gpu-device cpu --quick) ;;
        train|decode|tests) PARTS+=("$arg") ;;
        *) echo "usage: bash benchmarks/gpu.sh [--smoke] [train] [decode] [tests]" >&2; exit 2 ;;
    esac
done
if ! "$PY" -c "import jsonschema" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
    SITE="$(mktemp -d)"  # wheels from benchmarks/gpu_wheels.sh, for an image without them
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
        .whl/*.whl
    export PYTHONPATH="$PYTHONPATH:$SITE"
fi
missing=$("$PY" -c "import importlib.util as u; print(' '.join(m for m in ('torch', \
'transformers', 'jsonschema', 'yaml', 'rich', 'einops', 'safetensors', 'ml_dtypes', \
'hypothesis', 'pytest', 'matplotlib') if u.find_spec(m) is None))")
if [[ -n "$missing" ]]; then
    echo "gpu.sh: $PY cannot import: $missing (offline? run benchmarks/gpu_wheels.sh where" \
         "pip works and bring .whl/ with the tree)" >&2
    exit 2
fi
NAME=bench_gpu  # a run of some parts only writes bench_gpu_<parts>.json: no overwriting
if [[ ${#PARTS[@]} -eq 0 || ${#SMOKE[@]} -gt 0 ]]; then PARTS=(train decode tests); fi
if [[ ${#SMOKE[@]} -gt 0 ]]; then PARTS=(train decode); fi
BENCH=()
for part in "${PARTS[@]}"; do
    case "$part" in
        train) BENCH+=(--gpu-train --compile) NAME+=_train
               if [[ -n "$NANOGPT" ]]; then BENCH+=(--nanogpt "$NANOGPT"); fi ;;
        decode) BENCH+=(--gpu-decode) NAME+=_decode ;;
    esac
done
if [[ "$NAME" == bench_gpu_train_decode ]]; then NAME=bench_gpu; fi
OUT="${OUT:-$REPORTS/$NAME.json}"
status=0  # a failed benchmark still lets the tests run; the script then fails
if [[ ${#BENCH[@]} -gt 0 ]]; then
    mkdir -p "$(dirname "$OUT")"
    "$PY" -m formal_transformers bench --no-cpu "${BENCH[@]}" --json "$OUT" "${SMOKE[@]}" \
        || status=$?
fi
if [[ " ${PARTS[*]} " == *" tests "* ]]; then
    mkdir -p "$REPORTS"
    "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu.sh tests:' \
              ' no CUDA device, so the CUDA tests would only skip')" || exit 2
    mapfile -t CUDA_TESTS < <(grep -rlE "pytest\.mark\.cuda" tests | sort)  # only their modules
    "$PY" -m pytest -m cuda "${CUDA_TESTS[@]}" -q -rs -p no:cacheprovider \
        --junitxml="$REPORTS/gpu_tests.xml" 2>&1 | tee "$REPORTS/gpu_tests.txt" || status=$?
fi
exit "$status"
