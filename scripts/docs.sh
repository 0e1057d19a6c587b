#!/usr/bin/env bash
# Build or serve the docs site (mkdocs.yml): `bash scripts/docs.sh build` writes site/ with
# `mkdocs build --strict`; `bash scripts/docs.sh serve` serves it on http://127.0.0.1:8000/
# and rebuilds on change. Sets up .venv with the dev and docs extras and installs KaTeX with
# `npm ci` (Node.js and npm are needed: the math is rendered at build time). Extra arguments
# go to mkdocs, e.g. `bash scripts/docs.sh build --site-dir /tmp/site`.
# `bash scripts/docs.sh reports` first writes the reports/ the site renders (verify, memory, bench).
set -euo pipefail
cd "$(dirname "$0")/.."
command="${1:-build}"
shift || true
EXTRAS="${EXTRAS:-dev,docs}" bash scripts/setup.sh
if [ ! -f node_modules/katex/dist/katex.min.css ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund
  touch node_modules
fi
export DISABLE_MKDOCS_2_WARNING=true NO_MKDOCS_2_WARNING=1
case "$command" in
  reports)
    # The data the verification, memory and benchmark pages are generated from.
    mkdir -p reports
    .venv/bin/formal-transformers verify --profile quick --json reports/verify.json
    .venv/bin/python benchmarks/memory_plot.py
    # the vision page's figure: a ViT trained on the images source, its class token's attention
    .venv/bin/formal-transformers train --source images --steps 1000 --out reports/vit-run
    .venv/bin/formal-transformers classify --checkpoint reports/vit-run --seed 3 \
      --plot reports/vit_attention.png
    exec .venv/bin/formal-transformers bench --json reports/bench.json ;;
  build) exec .venv/bin/mkdocs build --strict "$@" ;;
  serve) exec .venv/bin/mkdocs serve --dev-addr 127.0.0.1:8000 "$@" ;;
  *) echo "usage: bash scripts/docs.sh [reports|build|serve] [mkdocs options]" >&2; exit 2 ;;
esac
