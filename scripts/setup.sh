#!/usr/bin/env bash
# Create .venv (if needed) and install formal-transformers into it with the extras in $EXTRAS
# (default: dev; empty: the runtime dependencies only, what `formal-transformers verify` needs).
# torch==2.13.0 is installed first, so that pip does not replace it with another build.
# Re-running is cheap: the install is skipped while pyproject.toml is unchanged and the extras
# already installed include the ones asked for. Every step says what it does (on stderr).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
VENV="${VENV:-.venv}"
EXTRAS="${EXTRAS-dev}"
say() { echo "setup: $*" >&2; }
if [ ! -x "$VENV/bin/python" ]; then
  say "creating the virtual environment $VENV with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.formal-transformers-installed"
hash="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
# the extras installed so far (a stamp is "<hash> <extra>,<extra>")
have=""
if [ -f "$stamp" ] && [ "$(cut -d' ' -f1 "$stamp")" = "$hash" ]; then
  have="$(cut -s -d' ' -f2 "$stamp")"
  missing=""
  for extra in ${EXTRAS//,/ }; do
    case ",$have," in *",$extra,"*) ;; *) missing="$missing $extra" ;; esac
  done
  if [ -z "$missing" ]; then
    say "$VENV is up to date (extras: ${have:-none})"
    exit 0
  fi
fi
say "upgrading pip"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
say "installing torch==2.13.0 (the largest download: about 1 GB with CUDA wheels, a few minutes)"
"$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
all="$(echo "$have,$EXTRAS" | tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd, -)"
target="."
[ -n "$all" ] && target=".[$all]"
say "installing formal-transformers from this checkout (editable: $target)"
"$VENV/bin/python" -m pip install --quiet -e "$target"
echo "$hash $all" > "$stamp"
say "done: $VENV/bin/formal-transformers"
