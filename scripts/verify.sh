#!/usr/bin/env bash
# The main job: set up .venv, then run the conformance suite on the bundled implementation.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/formal-transformers verify "$@"
