#!/usr/bin/env bash
# CPU figures: torch_impl vs reference_numpy and vs transformers GPT-2 (forward at 4 x 256
# tokens, greedy decoding of 64 tokens at batch 1), written to reports/bench.json (read by the
# docs site), then the spread of the ratios over 3 fresh runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
mkdir -p reports
"$PY" -m formal_transformers bench --json reports/bench.json "$@"
"$PY" benchmarks/repeat_cpu.py --runs 3 --out reports/bench_runs.json "$@"
