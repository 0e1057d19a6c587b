#!/usr/bin/env bash
# Wheels of this project's runtime dependencies that a GPU machine's image may lack (its
# python3 has torch and transformers; jsonschema, which the spec loader and so every command
# imports, and the packages jsonschema needs may be missing), for an offline machine:
# downloaded here into .whl/ (git-ignored), for Python 3.12 on x86-64 Linux by default.
# benchmarks/gpu.sh installs them from .whl/ into a temporary folder when the machine's
# Python cannot import jsonschema. Carry .whl/ to the machine with the working tree.
# usage: [PYTHON=...] [PY_VERSION=3.12] bash benchmarks/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
"$PY" -m pip download -q --no-deps --only-binary=:all: \
    --python-version "${PY_VERSION:-3.12}" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl \
    jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 \
    rpds-py==2026.9.1
ls .whl
