#!/usr/bin/env bash
# The main job: set up .venv with what `verify` needs (the runtime dependencies, no dev tools),
# then run the conformance suite on the bundled implementation. Arguments go to verify, e.g.
# `bash scripts/verify.sh --profile quick`.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "verify.sh: setting up .venv (the first time: a few minutes, mostly torch)" >&2
EXTRAS="" bash scripts/setup.sh
echo "verify.sh: running formal-transformers verify $*" >&2
exec .venv/bin/formal-transformers verify "$@"
