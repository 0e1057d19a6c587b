#!/usr/bin/env bash
# CPU figures: torch_impl vs reference_numpy and vs transformers GPT-2 (forward at 4 x 256
# tokens, greedy decoding of 64 tokens at batch 1 as a fraction of the float32 weight-reading
# floor measured in the same run), at 1 thread (reports/bench.json, read by the docs site) and
# at 2 threads (reports/bench_2threads.json), then the spread of the ratios over 3 fresh runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
mkdir -p reports
"$PY" -m formal_transformers bench --threads 1 --json reports/bench.json "$@"
"$PY" -m formal_transformers bench --threads 2 --only gpt2_decode --json reports/bench_2threads.json "$@"
"$PY" benchmarks/repeat_cpu.py --runs 3 --threads 1 --out reports/bench_runs.json "$@"
