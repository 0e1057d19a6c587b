"""Where and when a report was produced: date, commit and machine (for the reports' JSON).

The site shows these beside every figure it renders (verification, memory, benchmarks), so a
reader can tell which code, which day and which kind of machine a number comes from.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def git_commit(root: Path = ROOT) -> str | None:
    """The checkout's commit (``<sha>`` or ``<sha>+dirty``); None outside a git checkout."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def machine() -> dict[str, Any]:
    """The kind of machine: OS, architecture, processor and CPU count (no host name)."""
    return {"system": f"{platform.system()} {platform.release()}",
            "architecture": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version()}


def run_facts() -> dict[str, Any]:
    """``{"date": ISO 8601 UTC, "commit": sha or None, "machine": {...}}``."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return {"date": now.isoformat(), "commit": git_commit(), "machine": machine()}
