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
import re
from collections.abc import Mapping, Sequence

from sitegen import html as h
from sitegen.code_listing import Implementation, impl_links, tabs_html
from sitegen.fields import declaration, field

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


def pseudocode_html(alg, impls: Sequence[Implementation] = ()) -> str:
    """The algorithm box: caption, signature, header lines and the numbered, linkable lines.

    With ``impls``, each line ends with links to the code lines implementing it.
    """
    header = []
    for label, attr in _ROLES:
        items = getattr(alg, attr)
        if items:
            decl = ", ".join(declaration(s.symbol, s.type) for s in items)
            header.append(f"<dt>{label}</dt><dd>{decl}</dd>")
    lines = []
    for line in alg.pseudocode:
        anchor = line_anchor(alg.id, line.number)
        lines.append(
            f'<li id="{anchor}" style="--depth: {line.depth}">'
            f'<a class="ft-lineno" href="#{anchor}" title="Link to line {line.number}">'
            f"{line.number}</a>"
            f'<span class="ft-line">{h.pseudocode_line(line.text)}</span>'
            f"{impl_links(alg.number, line.number, impls)}</li>")
    body = "\n".join(lines)
    return (f'<figure class="ft-algorithm" id="{alg.id}-algorithm">\n'
            f"<figcaption><strong>Algorithm {alg.number}:</strong> "
            f"{h.math(alg.signature)}</figcaption>\n"
            f'<dl class="ft-alg-header">{"".join(header)}</dl>\n'
            f'<ol class="ft-alg-lines">\n{body}\n</ol>\n</figure>')


def code_name(name: str) -> str:
    """A canonical name in <code>, breakable after its dots and underscores only."""
    return "<code>" + re.sub(r"([._])", r"\1<wbr>", html.escape(name)) + "</code>"


def signature_table_html(alg) -> str:
    """Inputs, outputs, parameters and hyperparameters: symbol, code name, type and shape,
    meaning; one group of rows per role. Narrow screens stack each row (site.css)."""
    head = ("<thead><tr><th>symbol</th><th>name</th><th>type · shape</th><th>meaning</th>"
            "</tr></thead>")
    rows = []
    for label, attr in _ROLES:
        items = getattr(alg, attr)
        if not items:
            continue
        rows.append(f'<tr class="ft-role"><th colspan="4">{label}</th></tr>')
        for s in items:
            shape = "" if s.shape is None else f'<span class="ft-shape">shape {_shape(s)}</span>'
            rows.append(
                f'<tr><td data-label="symbol">{field(s.symbol)}</td>'
                f'<td data-label="name">{code_name(s.name)}</td>'
                f'<td data-label="type">{field(s.type)}{shape}</td>'
                f'<td data-label="meaning">{h.inline(s.meaning)}</td></tr>')
    body = "\n".join(rows)
    return (f'<div class="ft-signature">\n<table>\n{head}\n<tbody>\n{body}\n</tbody>\n'
            "</table>\n</div>")


def api_links(impls: Sequence[Implementation]) -> str:
    """Each function shown, linked to its entry in the API reference where it has one (an
    optional autorefs reference: an object the reference does not render stays plain)."""
    items = []
    for impl in impls:
        names = []
        for u in impl.units:
            module = u.path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            label = f"<code>{html.escape(u.qualname.removeprefix(module + '.'))}</code>"
            names.append(f'<autoref identifier="{u.qualname}" optional>{label}</autoref>'
                         if u.public else label)
        if names:
            items.append(f"- {impl.title}: " + ", ".join(names))
    return "\n".join(items)


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
                   impls: Sequence[Implementation],
                   numbers: Mapping[int, tuple[str, str]]) -> str:
    """The Markdown of one algorithm's page.

    ``pages`` maps every algorithm id to its file name, ``numbers`` every algorithm number to
    (id, page stem), ``impls`` are the NumPy reference and PyTorch tabs (code_listing).
    """
    return "\n\n".join([
        f"# Algorithm {alg.number}: {alg.title}",
        h.inline(alg.summary),
        _origin(alg, pages),
        pseudocode_html(alg, impls),
        "## Signature",
        signature_table_html(alg),
        "## Implementations",
        "The registered function first, then every other function whose lines cite this "
        f"algorithm (`# Alg {alg.number} Lk`), from their source files with their true line "
        "numbers. Each pseudocode line above links to the code lines that implement it (to "
        "the function, where the PyTorch code cites no single line); each citation in the "
        "code links back to its line. In the API reference:",
        api_links(impls),
        tabs_html(list(impls), alg.number, numbers),
        alg.body.strip(),
        "## Properties that guard it",
        properties_section(alg, properties),
    ]) + "\n"
