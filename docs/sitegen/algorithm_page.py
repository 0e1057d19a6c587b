"""One page per algorithm (spec/algorithms/NN-slug.md -> algorithms/NN-slug.md).

The pages mirror the spec's layout, so the relative links the spec's prose writes between its
files (``14-d-inference.md``, ``../notation.md``) hold on the site too.

Layout: summary and origin; the numbered pseudocode in the Phuong & Hutter layout (Input,
Output, Parameters, Hyperparameters, then numbered lines, each with the stable id
``<id>-L<n>``); the signature table; the NumPy reference and the PyTorch code in tabs, taken
from the real source files; the prose; the properties that guard it, linked to the catalogue.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Mapping

from sitegen import html as h
from sitegen.sources import Source

ARXIV = "https://arxiv.org/abs/2207.09238"
_ROLES = (("Input", "inputs"), ("Output", "outputs"), ("Parameters", "parameters"),
          ("Hyperparameters", "hyperparameters"))


def page_path(alg) -> str:
    """Path of an algorithm's page in the docs tree, e.g. ``algorithms/04-attention.md``."""
    return f"algorithms/{alg.path.name}"


def line_anchor(alg_id: str, number: int) -> str:
    """Stable id of pseudocode line ``number`` (1-based), e.g. ``attention-L3``."""
    return f"{alg_id}-L{number}"


def _shape(symbol) -> str:
    if symbol.shape is None:
        return "—"
    if not symbol.shape:
        return "<code>()</code>"
    return "<code>(" + ", ".join(html.escape(str(d)) for d in symbol.shape) + ")</code>"


def pseudocode_html(alg) -> str:
    """The algorithm box: caption, signature, header lines and the numbered, linkable lines."""
    header = []
    for label, attr in _ROLES:
        items = getattr(alg, attr)
        if items:
            decl = ", ".join(h.math(f"{s.symbol} \\in {s.type}") for s in items)
            header.append(f"<dt>{label}</dt><dd>{decl}</dd>")
    lines = []
    for line in alg.pseudocode:
        anchor = line_anchor(alg.id, line.number)
        lines.append(
            f'<li id="{anchor}" style="--depth: {line.depth}">'
            f'<a class="ft-lineno" href="#{anchor}" title="Link to line {line.number}">'
            f"{line.number}</a>"
            f'<span class="ft-line">{h.pseudocode_line(line.text)}</span></li>')
    body = "\n".join(lines)
    return (f'<figure class="ft-algorithm" id="{alg.id}-algorithm">\n'
            f"<figcaption><strong>Algorithm {alg.number}:</strong> "
            f"{h.math(alg.signature)}</figcaption>\n"
            f'<dl class="ft-alg-header">{"".join(header)}</dl>\n'
            f'<ol class="ft-alg-lines">\n{body}\n</ol>\n</figure>')


def signature_table_html(alg) -> str:
    """Inputs, outputs, parameters and hyperparameters: symbol, code name, type, shape, meaning."""
    rows = []
    for label, attr in _ROLES:
        for s in getattr(alg, attr):
            rows.append([label.lower(), h.math(s.symbol), f"<code>{html.escape(s.name)}</code>",
                         h.math(s.type), _shape(s), h.inline(s.meaning)])
    return h.table(["role", "symbol", "name", "type", "shape", "meaning"], rows, "ft-signature")


def _code_tab(title: str, source: Source | None, missing: str) -> str:
    if source is None:
        return f'=== "{title}"\n\n    {missing}\n'
    fence = "```"
    code = textwrap.indent(source.text.rstrip("\n"), "    ")
    return (f'=== "{title}"\n\n'
            f'    {fence}python linenums="{source.first_line}" title="{source.path}"\n'
            f"{code}\n    {fence}\n")


def code_tabs(alg_id: str, numpy: Source | None, torch: Source | None) -> str:
    """Tabs NumPy reference | PyTorch with the registered functions' real source."""
    return "\n".join([
        _code_tab("NumPy reference", numpy,
                  f"No function is registered for `{alg_id}` in `reference_numpy.REGISTRY` yet."),
        _code_tab("PyTorch", torch,
                  f"No function is registered for `{alg_id}` in `torch_impl.REGISTRY` yet."),
    ])


def properties_section(alg, properties: Mapping) -> str:
    """The properties that guard the algorithm, each linked to its anchor in the catalogue."""
    items = []
    for pid in alg.properties:
        prop = properties.get(pid)
        title = h.inline(prop.title) if prop is not None else "(not in the catalogue)"
        items.append(f"- [`{pid}`](../properties.md#{pid}) — {title}")
    return "\n".join(items)


def _origin(alg, pages: Mapping[str, str]) -> str:
    origin = html.escape(alg.origin)
    if alg.origin.startswith("Phuong & Hutter"):
        origin = f"[{origin}]({ARXIV})"
    if alg.forward:
        fwd = (f"[`{alg.forward}`]({pages[alg.forward]})" if alg.forward in pages
               else f"`{alg.forward}`")
        origin += f" · backward pass of {fwd}"
    return (f"**Origin:** {origin} · **kind:** {alg.kind} · "
            f"**spec file:** `spec/algorithms/{alg.path.name}`")


def algorithm_page(alg, pages: Mapping[str, str], properties: Mapping,
                   numpy: Source | None, torch: Source | None) -> str:
    """The Markdown of one algorithm's page; ``pages`` maps every algorithm id to its file name."""
    return "\n\n".join([
        f"# Algorithm {alg.number}: {alg.title}",
        h.inline(alg.summary),
        _origin(alg, pages),
        pseudocode_html(alg),
        "## Signature",
        signature_table_html(alg),
        "## Implementations",
        "The functions registered for this algorithm, shown from their source files. "
        "Each mirrored line of the NumPy reference cites the pseudocode line it implements "
        f"(`# Alg {alg.number} Lk`).",
        code_tabs(alg.id, numpy, torch),
        alg.body.strip(),
        "## Properties that guard it",
        properties_section(alg, properties),
    ]) + "\n"
