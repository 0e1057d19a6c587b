#!/usr/bin/env bash
# GPU figures (CUDA only): GPT-2 small training tokens/s and MFU at 1024 tokens in bf16 with
# fused AdamW, with and without torch.compile, and batch-1 decode tokens/s. Not measurable on
# a machine without a GPU: the command then stops with a ConfigError.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
mkdir -p reports
"$PY" -m formal_transformers bench --no-cpu --gpu-train --gpu-decode --json reports/bench_gpu.json
"$PY" -m formal_transformers bench --no-cpu --gpu-train --compile --json reports/bench_gpu_compile.json
