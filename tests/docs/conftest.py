"""Fixtures of the docs-site tests: the strict build, a loopback server, headless Chromium.

See docs_support.py for what the tests need and how a missing piece skips or fails them.
"""

from __future__ import annotations

import fcntl
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from docs_support import CHROMIUM, CHROMIUM_ARGS, ROOT, require_browser, require_build_tools

BUILD_TIMEOUT_S = 300


@dataclass(frozen=True)
class BuiltSite:
    """A finished ``mkdocs build --strict``: where the site is, and what the build printed."""

    path: Path
    returncode: int
    log: str
    offline: bool


def _shared_dir(tmp_path_factory) -> Path:
    # With pytest-xdist every worker has its own basetemp under one run directory: build once
    # per run, there, under a lock.
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def can_drop_network() -> bool:
    """Whether ``unshare -n`` works here (root or user namespaces): a build with no network."""
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


def run_build(dest: Path) -> BuiltSite:
    """``mkdocs build --strict``, in a network namespace without network where possible."""
    env = dict(os.environ, DISABLE_MKDOCS_2_WARNING="true", NO_MKDOCS_2_WARNING="1")
    offline = can_drop_network()
    prefix = ["unshare", "-n"] if offline else []
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(dest)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    return BuiltSite(dest, proc.returncode, proc.stdout + proc.stderr, offline)


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> BuiltSite:
    """The site built once per test run with ``mkdocs build --strict``."""
    require_build_tools()
    shared = _shared_dir(tmp_path_factory)
    dest, log_file, code_file = shared / "docs-site", shared / "docs-build.log", \
        shared / "docs-build.rc"
    with open(shared / "docs-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not code_file.exists():
            site = run_build(dest)
            log_file.write_text(site.log)
            code_file.write_text(f"{site.returncode} {int(site.offline)}")
    code, offline = code_file.read_text().split()
    return BuiltSite(dest, int(code), log_file.read_text(), offline == "1")


@pytest.fixture(scope="session")
def site(built_site) -> Path:
    """The built site's directory; fails (with the build log) if the strict build failed."""
    assert built_site.returncode == 0, (
        f"mkdocs build --strict failed:\n{built_site.log[-6000:]}")
    return built_site.path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass


@pytest.fixture(scope="session")
def site_url(site) -> str:
    """Base URL of the built site, served on 127.0.0.1 (a free port) for the session."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium driven by Playwright (no downloaded browser)."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="session")
def artefact_dir() -> Path:
    """Where browser artefacts (screenshots) are kept: $FT_DOCS_ARTEFACTS or reports/docs."""
    path = Path(os.environ.get("FT_DOCS_ARTEFACTS", ROOT / "reports" / "docs"))
    path.mkdir(parents=True, exist_ok=True)
    return path
