#!/usr/bin/env bash
# The project's test suite: set up .venv, lint, then run pytest on 2 workers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest -n 2 "$@"
