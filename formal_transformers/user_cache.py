"""Where formal-transformers keeps caches: the platform's user cache directory, never the cwd.

``cache_dir()`` is ``$FORMAL_TRANSFORMERS_CACHE`` if set, else ``$XDG_CACHE_HOME/formal-
transformers`` (default ``~/.cache/formal-transformers``) on Linux and other POSIX systems,
``~/Library/Caches/formal-transformers`` on macOS and ``%LOCALAPPDATA%\\formal-transformers``
on Windows.

``use_hypothesis_cache()`` points Hypothesis's storage (its example database and constants
cache, by default ``.hypothesis/`` in the current directory) there, under ``hypothesis/``,
unless the user asked for a place with Hypothesis's own ``HYPOTHESIS_STORAGE_DIRECTORY``.
``formal-transformers verify`` calls it, so running the suite from ``/`` or a read-only
checkout writes nothing into the current directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP = "formal-transformers"


def cache_dir() -> Path:
    """The user cache directory of formal-transformers (not created here)."""
    if override := os.environ.get("FORMAL_TRANSFORMERS_CACHE"):
        return Path(override)
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / APP
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / APP
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / APP


def use_hypothesis_cache() -> Path | None:
    """Keep Hypothesis's storage in ``cache_dir()/hypothesis`` (returned), unless
    HYPOTHESIS_STORAGE_DIRECTORY says where (then None: Hypothesis uses it)."""
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        return None
    from hypothesis.configuration import set_hypothesis_home_dir

    where = cache_dir() / "hypothesis"
    set_hypothesis_home_dir(where)
    return where
