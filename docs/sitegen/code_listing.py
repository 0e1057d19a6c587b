"""The code that implements each pseudocode line, linked both ways (algorithm pages).

An algorithm's page shows, per implementation, every function whose lines cite the algorithm
(``# Alg 10 L6``, the traceability comments that tests/test_traceability.py checks), the
registered function first: for the architectures that is the top function *and* the encoder,
decoder and helper functions that hold most of the lines. Each code line has an id
(``code-reference_numpy-architectures-py-163``); each citation in a comment links to the
pseudocode line it names; each pseudocode line links to the first code line citing it in
each implementation (to the function itself when the implementation cites no line of it), and
docs/javascripts/code_links.js highlights every code line citing a clicked line.
"""

from __future__ import annotations

import ast
import html
import inspect
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from conformance.coverage import parse_citations

_CITED_IN_HTML = re.compile(r"(\bAlg (\d+) )(L\d+(?:-\d+)?(?:,\s*L?\d+(?:-\d+)?)*)")
_PART = re.compile(r"L?(\d+)(?:-(\d+))?")


@dataclass(frozen=True)
class Unit:
    """One function's source: ``lines`` (dedented) start at line ``first_line`` of ``path``."""

    path: str
    first_line: int
    lines: tuple[str, ...]
    qualname: str  # module.Class.function
    citations: Mapping[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)

    def line_id(self, lineno: int) -> str:
        return code_line_id(self.path, lineno)

    @property
    def public(self) -> bool:
        """Whether the API reference documents it (no ``_private`` part in its name)."""
        return not any(p.startswith("_") for p in self.qualname.split("."))


def code_line_id(path: str, lineno: int) -> str:
    """(``reference_numpy/architectures.py``, 163) -> ``code-reference_numpy-architectures-py-163``.
    """
    return "code-" + re.sub(r"[^A-Za-z0-9_]+", "-", path) + f"-{lineno}"


@dataclass(frozen=True)
class _Function:
    start: int  # first line, decorators included
    end: int
    qualname: str


def _functions(tree: ast.AST, module: str) -> list[_Function]:
    out = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}.{child.name}"
                if not isinstance(child, ast.ClassDef):
                    start = min([d.lineno for d in child.decorator_list] + [child.lineno])
                    out.append(_Function(start, child.end_lineno or child.lineno, name))
                visit(child, name)

    visit(tree, module)
    return out


@dataclass
class PackageIndex:
    """The functions of a package's files and the citations in them."""

    root: Path
    package: str
    files: dict[str, tuple[list[str], list[_Function]]] = field(default_factory=dict)

    def __post_init__(self):
        base = self.root / self.package
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(self.root).as_posix()
            text = path.read_text(encoding="utf-8")
            module = ".".join(path.relative_to(self.root).with_suffix("").parts)
            module = module.removesuffix(".__init__")
            try:
                funcs = _functions(ast.parse(text), module)
            except SyntaxError:
                continue
            self.files[rel] = (text.splitlines(), funcs)

    def _unit(self, rel: str, fn: _Function) -> Unit:
        lines, _ = self.files[rel]
        body = textwrap.dedent("\n".join(lines[fn.start - 1:fn.end])).split("\n")
        cites = {fn.start + i: tuple(parse_citations(line))
                 for i, line in enumerate(body) if parse_citations(line)}
        return Unit(rel, fn.start, tuple(body), fn.qualname, cites)

    def _innermost(self, rel: str, lineno: int) -> _Function | None:
        holding = [f for f in self.files[rel][1] if f.start <= lineno <= f.end]
        return max(holding, key=lambda f: f.start) if holding else None

    def units_citing(self, number: int) -> list[Unit]:
        """Every function (innermost) with a line citing algorithm ``number``, in file order."""
        found: dict[tuple[str, int], Unit] = {}
        for rel, (lines, _) in self.files.items():
            for lineno, line in enumerate(lines, 1):
                if any(n == number for n, _ in parse_citations(line)):
                    fn = self._innermost(rel, lineno)
                    if fn is not None and (rel, fn.start) not in found:
                        found[(rel, fn.start)] = self._unit(rel, fn)
        return list(found.values())

    def unit_of(self, fn: Callable) -> Unit | None:
        """The unit of a (registered) function object, if it lives in this package."""
        try:
            fn = inspect.unwrap(fn)
            source = Path(inspect.getsourcefile(fn) or "").resolve()
            _, first = inspect.getsourcelines(fn)
        except (TypeError, OSError):
            return None
        try:
            rel = source.relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return None
        if rel not in self.files:
            return None
        for f in self.files[rel][1]:
            if f.start == first:
                return self._unit(rel, f)
        return None


@cache
def package_index(root: Path, package: str) -> PackageIndex:
    return PackageIndex(root, package)


def units_for(index: PackageIndex, number: int, registered: Callable | None) -> list[Unit]:
    """The registered function first, then every other function citing the algorithm."""
    units = []
    top = index.unit_of(registered) if registered is not None else None
    if top is not None:
        units.append(top)
    for unit in index.units_citing(number):
        if top is None or (unit.path, unit.first_line) != (top.path, top.first_line):
            units.append(unit)
    return units


def _anchor(number: int, k: int, here: int, pages: Mapping[int, tuple[str, str]]) -> str | None:
    """href of line k of algorithm ``number`` from the page of algorithm ``here``."""
    if number not in pages:
        return None
    alg_id, stem = pages[number]
    return f"#{alg_id}-L{k}" if number == here else f"../{stem}/#{alg_id}-L{k}"


def _link_citations(line_html: str, here: int, pages: Mapping[int, tuple[str, str]]) -> str:
    """Turn ``Alg N L5-6, L8`` inside a highlighted comment into links to those lines."""
    def parts(m: re.Match) -> str:
        number = int(m.group(2))

        def one(p: re.Match) -> str:
            lo, hi = int(p.group(1)), p.group(2)
            pieces = []
            for k, text in [(lo, p.group(0).split("-")[0])] + ([(int(hi), hi)] if hi else []):
                href = _anchor(number, k, here, pages)
                pieces.append(text if href is None else
                              f'<a class="ft-cite" href="{href}" '
                              f'title="Algorithm {number}, line {k}">{text}</a>')
            return "-".join(pieces)

        return m.group(1) + _PART.sub(one, m.group(3))

    return _CITED_IN_HTML.sub(parts, line_html)


def _highlighted_lines(lines: Iterable[str]) -> list[str]:
    text = "\n".join(lines)
    out = highlight(text, PythonLexer(), HtmlFormatter(nowrap=True)).rstrip("\n").split("\n")
    n = len(text.split("\n"))
    return (out + [""] * n)[:n]


def code_block_html(unit: Unit, here: int, pages: Mapping[int, tuple[str, str]]) -> str:
    """One function as a highlighted block: every line with its id, citations linked."""
    rows = []
    for i, line_html in enumerate(_highlighted_lines(unit.lines)):
        lineno = unit.first_line + i
        cites = unit.citations.get(lineno, ())
        data = " ".join(f"{pages[n][0]}-L{k}" for n, k in cites if n in pages)
        attrs = f' data-cites="{data}"' if data else ""
        rows.append(f'<span class="ft-cl" id="{unit.line_id(lineno)}" data-n="{lineno}"{attrs}>'
                    f"{_link_citations(line_html, here, pages)}</span>")
    title = f"{unit.path} · {unit.qualname.rsplit('.', 1)[-1]}"
    return (f'<div class="highlight ft-code"><span class="filename">{html.escape(title)}</span>'
            f'<pre><code>{chr(10).join(rows)}</code></pre></div>')


@dataclass(frozen=True)
class Implementation:
    """One tab: its title, the functions shown, and the link targets of each spec line."""

    title: str
    units: tuple[Unit, ...]
    missing: str = ""

    def targets(self, number: int, k: int) -> list[str]:
        """Ids of the code lines citing line k; the top function's first line if none does."""
        ids = [u.line_id(lineno) for u in self.units for lineno, cites in u.citations.items()
               if (number, k) in cites]
        if not ids and self.units:
            return [self.units[0].line_id(self.units[0].first_line)]
        return ids

    def line_level(self, number: int, k: int) -> bool:
        return any((number, k) in cites for u in self.units for cites in u.citations.values())


def impl_links(number: int, k: int, impls: Iterable[Implementation]) -> str:
    """The links of one pseudocode line to the code implementing it, one per implementation."""
    links = []
    for impl in impls:
        targets = impl.targets(number, k)
        if not targets:
            continue
        how = ("the code lines citing it" if impl.line_level(number, k) else
               "the function (it cites no single line for this one)")
        short = "NumPy" if impl.title.startswith("NumPy") else impl.title
        links.append(f'<a class="ft-to-code" href="#{targets[0]}" '
                     f'title="{html.escape(impl.title)}: {how}">{short}</a>')
    return f'<span class="ft-impl">{" ".join(links)}</span>' if links else ""


def tabs_html(impls: list[Implementation], here: int,
              pages: Mapping[int, tuple[str, str]]) -> str:
    """The implementations as Material tabs (pymdownx.tabbed's alternate markup), raw HTML."""
    ids = [re.sub(r"[^a-z0-9]+", "-", i.title.lower()).strip("-") for i in impls]
    inputs = "".join(f'<input {"checked " if n == 0 else ""}id="{ident}" name="ft-code" '
                     f'type="radio" />' for n, ident in enumerate(ids))
    labels = "".join(f'<label for="{ident}">{html.escape(i.title)}</label>'
                     for ident, i in zip(ids, impls, strict=True))
    blocks = []
    for impl in impls:
        if impl.units:
            inner = "\n".join(code_block_html(u, here, pages) for u in impl.units)
        else:
            inner = f"<p>{impl.missing}</p>"
        blocks.append(f'<div class="tabbed-block">\n{inner}\n</div>')
    return (f'<div class="tabbed-set tabbed-alternate ft-code-tabs" data-tabs="1:{len(impls)}">'
            f'{inputs}<div class="tabbed-labels">{labels}</div>\n'
            f'<div class="tabbed-content">\n{chr(10).join(blocks)}\n</div>\n</div>')


TABS = (("reference_numpy", "NumPy reference"), ("torch_impl", "PyTorch"))


def implementations(alg, registries: Mapping[str, Mapping[str, Callable]],
                    root: Path) -> list[Implementation]:
    """The NumPy reference and PyTorch tabs of one algorithm (``registries``: package ->
    its REGISTRY)."""
    out = []
    for package, title in TABS:
        units = units_for(package_index(root, package), alg.number,
                          registries.get(package, {}).get(alg.id))
        missing = (f"No function is registered for <code>{alg.id}</code> in "
                   f"<code>{package}.REGISTRY</code> yet.")
        out.append(Implementation(title, tuple(units), missing))
    return out
