"""Spec text to HTML: escaping, ``$...$`` math, ``code`` spans, tables and pseudocode lines.

The spec's short texts (symbol meanings, pseudocode lines) are written with ``$...$`` math and
``/* ... */`` comments (spec/algorithms, formal_transformers/spec.py). They are turned into
raw HTML here rather than Markdown so that a ``|`` inside TeX cannot break a table and every
pseudocode line can carry its own stable id.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence

_MATH = re.compile(r"\$([^$]+)\$")
_CODE = re.compile(r"`([^`]+)`")
_COMMENT = re.compile(r"/\*(.*?)\*/")
_KEYWORDS = re.compile(r"\b(for|if|else|while|return|repeat|until|break|in|to)\b")


def math(tex: str, display: bool = False) -> str:
    """TeX in arithmatex's generic form: the build-time KaTeX pass renders it."""
    if display:
        return f'<div class="arithmatex">\\[{html.escape(tex.strip(), quote=False)}\\]</div>'
    return f'<span class="arithmatex">\\({html.escape(tex.strip(), quote=False)}\\)</span>'


def _text(text: str, keywords: bool) -> str:
    out = []
    pos = 0
    for m in _CODE.finditer(text):
        out.append(_plain(text[pos:m.start()], keywords))
        out.append(f"<code>{html.escape(m.group(1))}</code>")
        pos = m.end()
    out.append(_plain(text[pos:], keywords))
    return "".join(out)


def _plain(text: str, keywords: bool) -> str:
    escaped = html.escape(text, quote=False)
    if keywords:
        escaped = _KEYWORDS.sub(r'<strong class="ft-kw">\1</strong>', escaped)
    return escaped


def inline(text: str, keywords: bool = False) -> str:
    """Escape ``text``, turning ``$tex$`` into math and ```code``` into <code>.

    With ``keywords``, the pseudocode keywords (for, if, return, ...) outside math are bold.
    Text with an odd number of ``$`` is escaped as it is, dollars included.
    """
    if text.count("$") % 2:
        return _text(text, keywords)
    out = []
    pos = 0
    for m in _MATH.finditer(text):
        out.append(_text(text[pos:m.start()], keywords))
        out.append(math(m.group(1)))
        pos = m.end()
    out.append(_text(text[pos:], keywords))
    return "".join(out)


def pseudocode_line(text: str) -> str:
    """One pseudocode line: keywords bold, ``/* comment */`` set apart as a comment."""
    out = []
    pos = 0
    for m in _COMMENT.finditer(text):
        out.append(inline(text[pos:m.start()], keywords=True))
        out.append(f'<span class="ft-comment">▷ {inline(m.group(1).strip())}</span>')
        pos = m.end()
    out.append(inline(text[pos:], keywords=True))
    return "".join(out).strip()


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """A raw-HTML table; ``headers`` are escaped, cells are HTML already.

    The table itself carries no class (Material styles ``table:not([class])``); ``cls`` goes
    on a wrapping div. Each cell names its column (``data-label``), which the narrow-screen
    layout of site.css shows when it stacks the rows of a ``ft-stack`` table.
    """
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    labels = [html.escape(h) for h in headers]
    body = "\n".join("<tr>" + "".join(
        f'<td data-label="{labels[i]}">{c}</td>' if i < len(labels) else f"<td>{c}</td>"
        for i, c in enumerate(row)) + "</tr>" for row in rows)
    table = f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"
    return f'<div class="{cls}">\n{table}\n</div>' if cls else table
