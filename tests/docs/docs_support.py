"""Helpers of the docs-site tests (imported by conftest.py and the test modules).

What the docs tests need beyond the dev install: the ``docs`` extra (mkdocs & co, playwright),
``npm ci`` (KaTeX in node_modules), ``node``, and Debian's ``chromium``. Locally a missing
piece skips the tests that need it, with the reason; with ``FT_REQUIRE_DOCS=1`` (set by
.ci/run) it fails them instead, so CI cannot pass without really building and browsing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs"))

CHROMIUM = os.environ.get("FT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-default-apps", "--disable-extensions"]


def require(ok: bool, reason: str) -> None:
    """Skip with ``reason`` when ``ok`` is false, or fail under FT_REQUIRE_DOCS=1 (CI)."""
    if ok:
        return
    if os.environ.get("FT_REQUIRE_DOCS") == "1":
        pytest.fail(f"FT_REQUIRE_DOCS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def require_build_tools() -> None:
    require(importlib.util.find_spec("mkdocs") is not None
            and importlib.util.find_spec("mkdocs_gen_files") is not None,
            "the docs extra is not installed (pip install -e '.[docs]')")
    require(shutil.which("node") is not None, "`node` is not on PATH (it renders the math)")
    require((ROOT / "node_modules" / "katex" / "dist" / "katex.min.css").is_file(),
            "KaTeX is not installed: run `npm ci` in the repository root")


def require_browser() -> None:
    require(importlib.util.find_spec("playwright") is not None,
            "playwright is not installed (docs extra)")
    require(Path(CHROMIUM).is_file(), f"{CHROMIUM} is missing (apt-get install chromium)")


