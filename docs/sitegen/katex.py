"""Render the site's math to HTML at build time with the npm ``katex`` package.

pymdownx.arithmatex (generic mode) leaves ``<span class="arithmatex">\\(tex\\)</span>`` and
``<div class="arithmatex">\\[tex\\]</div>`` in the HTML; :func:`render_math` replaces their
content with KaTeX's HTML+MathML. One long-lived ``node`` process (katex_server.js) serves
every formula of a build, and results are cached per (tex, display).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

SERVER = Path(__file__).with_name("katex_server.js")
_ARITHMATEX = re.compile(
    r'<(span|div) class="arithmatex">\s*(\\\(|\\\[)(.*?)(\\\)|\\\])\s*</\1>', re.DOTALL)


class KatexError(Exception):
    """KaTeX rejected a formula, or node/katex could not be run."""


class KatexRenderer:
    """A ``node`` process rendering TeX with the katex package in ``katex_dir``."""

    def __init__(self, katex_dir: Path, node: str | None = None):
        node = node or shutil.which("node")
        if node is None:
            raise KatexError("`node` is not on PATH: it renders the site's math at build time")
        if not (katex_dir / "dist" / "katex.min.css").is_file():
            raise KatexError(f"{katex_dir} holds no KaTeX build: run `npm ci` in the repository")
        # Closed in close(): the file outlives this method, so no context manager.
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
        self._proc = subprocess.Popen(
            [node, str(SERVER), str(katex_dir.resolve())], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr, text=True, encoding="utf-8")
        self._cache: dict[tuple[str, bool], tuple[str | None, str | None]] = {}

    def render(self, tex: str, display: bool = False) -> str:
        """KaTeX HTML of ``tex``; KatexError with KaTeX's message if it is not valid."""
        key = (tex, display)
        if key not in self._cache:
            self._cache[key] = self._ask(tex, display)
        out, error = self._cache[key]
        if error is not None:
            raise KatexError(error)
        return out

    def _ask(self, tex: str, display: bool) -> tuple[str | None, str | None]:
        if self._proc.poll() is not None:
            raise KatexError(f"the KaTeX node process exited: {self._stderr_text()}")
        self._proc.stdin.write(json.dumps({"tex": tex, "display": display}) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise KatexError(f"the KaTeX node process died: {self._stderr_text()}")
        answer = json.loads(line)
        return answer.get("html"), answer.get("error")

    def _stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().strip()[-2000:]

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            self._proc.wait(timeout=10)
        self._stderr.close()

    def __enter__(self) -> KatexRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def render_math(page_html: str, render: Callable[[str, bool], str],
                on_error: Callable[[str, str], None]) -> str:
    """Replace every arithmatex element's TeX by ``render(tex, display)``'s HTML.

    A formula that fails is reported through ``on_error(tex, message)`` and left as a
    visible ``katex-error`` element, so that neither the build nor the browser test misses it.
    """
    def replace(m: re.Match) -> str:
        tag, tex = m.group(1), html.unescape(m.group(3))
        display = m.group(2) == "\\["
        try:
            rendered = render(tex, display)
        except KatexError as exc:
            on_error(tex, str(exc))
            rendered = (f'<span class="katex-error" title="{html.escape(str(exc))}">'
                        f"{html.escape(tex)}</span>")
        return f'<{tag} class="arithmatex">{rendered}</{tag}>'

    return _ARITHMATEX.sub(replace, page_html)
