"""Cross-references in the API reference's docstrings (docs/hooks/site_hooks.py applies them).

Docstrings name code as ````name```` and the spec as "Algorithm 10" or
``spec/algorithms/10-d-transformer.md``. On an API page, a ``<code>`` naming a documented
object (fully qualified, or relative to the page's module or package) becomes an autorefs
reference that mkdocs-autorefs resolves to the object's entry; "Algorithm N" and a spec file
name become links to the algorithm's page. Text in ``<pre>`` (code, signatures) and in
headings is left alone.
"""

from __future__ import annotations

import ast
import html
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

_SKIP = re.compile(r"<pre\b.*?</pre>|<h[1-6]\b.*?</h[1-6]>|<a\b.*?</a>|<autoref\b.*?</autoref>",
                   re.S)
_CODE = re.compile(r"(?<=[\s(,;:])<code>([A-Za-z_][A-Za-z0-9_.]*?)(\(\))?</code>")
_SPEC_FILE = re.compile(r"<code>(?:spec/algorithms/)?(\d\d)-[a-z0-9-]+\.md</code>")
_ALGORITHM = re.compile(r"(?<![\w/])Algorithms? (\d+)(?:[-–]\d+)?\b")


def known_objects(root: Path, packages: Iterable[str]) -> set[str]:
    """Dotted paths of the public modules, classes, functions and methods of ``packages``."""
    out: set[str] = set()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if any(p.startswith("_") for p in parts):
                continue
            module = ".".join(parts)
            out.add(module)
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except SyntaxError:
                continue
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                        and not node.name.startswith("_"):
                    out.add(f"{module}.{node.name}")
                    if isinstance(node, ast.ClassDef):
                        out.update(f"{module}.{node.name}.{m.name}" for m in node.body
                                   if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
                                   and not m.name.startswith("_"))
    return out


def resolve(name: str, module: str, known: set[str]) -> str | None:
    """The documented object ``name`` means on the page of ``module``, if any."""
    package = module.split(".")[0]
    for candidate in (name, f"{module}.{name}", f"{module.rpartition('.')[0]}.{name}",
                      f"{package}.{name}"):
        if candidate in known:
            return candidate
    return None


def link_docstrings(page_html: str, module: str, known: set[str],
                    algorithms: Mapping[int, str], to_root: str) -> str:
    """``page_html`` of the API page of ``module`` with its cross-references linked.

    ``algorithms`` maps algorithm numbers to their page (``algorithms/10-d-transformer/``),
    ``to_root`` is the relative path from the page to the site root (``../../``).
    """
    def code(m: re.Match) -> str:
        target = resolve(m.group(1), module, known)
        if target is None or target == module:
            return m.group(0)
        title = html.escape(m.group(1) + (m.group(2) or ""))
        return (f'<autoref identifier="{target}" optional><code>{title}</code></autoref>')

    def spec_file(m: re.Match) -> str:
        page = algorithms.get(int(m.group(1)))
        return f'<a href="{to_root}{page}">{m.group(0)}</a>' if page else m.group(0)

    def algorithm(m: re.Match) -> str:
        page = algorithms.get(int(m.group(1)))
        return f'<a href="{to_root}{page}">{m.group(0)}</a>' if page else m.group(0)

    def outside_tags(segment: str) -> str:
        pieces = re.split(r"(<[^>]+>)", segment)
        return "".join(p if p.startswith("<") else _ALGORITHM.sub(algorithm, p)
                       for p in pieces)

    out, pos = [], 0
    for m in _SKIP.finditer(page_html):
        out.append(_transform(page_html[pos:m.start()], code, spec_file, outside_tags))
        out.append(m.group(0))
        pos = m.end()
    out.append(_transform(page_html[pos:], code, spec_file, outside_tags))
    return "".join(out)


def _transform(segment: str, code, spec_file, outside_tags) -> str:
    segment = _SPEC_FILE.sub(spec_file, segment)
    # links made just now must not be processed again
    parts = re.split(r"(<a\b.*?</a>)", segment, flags=re.S)
    return "".join(p if p.startswith("<a") else outside_tags(_CODE.sub(code, p))
                   for p in parts)
