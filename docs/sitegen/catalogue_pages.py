"""Catalogue-wide pages: home, index of algorithms, notation and the property catalogue."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence

from sitegen import html as h
from sitegen.algorithm_page import ARXIV

KIND_TITLES = {"forward": "Forward algorithms", "backward": "Backward passes (extension)",
               "training": "Training", "inference": "Inference"}


def short_origin(origin: str) -> str:
    """'Phuong & Hutter 2022, Algorithm 4' -> 'P&H Alg. 4'; 'extension: ...' -> 'extension'."""
    m = re.fullmatch(r"Phuong & Hutter \d{4}, Algorithm (\d+)", origin)
    return f"P&amp;H Alg.&nbsp;{m.group(1)}" if m else html.escape(origin.split(":")[0])


def algorithm_table(algorithms: Sequence, prefix: str = "") -> str:
    """Table of algorithms: number, linked title with origin and summary, signature."""
    rows = []
    for alg in algorithms:
        link = (f'<a href="{prefix}{alg.path.stem}/"><strong>{html.escape(alg.title)}</strong>'
                f'</a> <span class="ft-origin">{short_origin(alg.origin)}</span><br>'
                f"{h.inline(alg.summary)}")
        rows.append([str(alg.number), link, h.math(alg.signature)])
    return h.table(["#", "algorithm", "signature"], rows, "ft-index")


def algorithms_index(algorithms: Sequence) -> str:
    """algorithms/index.md: every algorithm of the catalogue, grouped by kind."""
    parts = ["# Algorithms",
             f"The catalogue holds {len(algorithms)} algorithms, each generated from its file "
             "in `spec/algorithms/`. Numbers 1–15 are those of Phuong & Hutter; the others "
             "are this project's extensions (the position-wise MLP and the backward passes)."]
    for kind, title in KIND_TITLES.items():
        group = [a for a in algorithms if a.kind == kind]
        if group:
            parts += [f"## {title}", algorithm_table(group, prefix="")]
    return "\n\n".join(parts) + "\n"


def home(algorithms: Sequence) -> str:
    """index.md: what the site is, and the table of algorithms."""
    return "\n\n".join([
        "# Formal transformer algorithms",
        "What exactly does a transformer compute, and does an implementation compute it? "
        "This site renders the project's **spec**: every transformer algorithm of "
        f"[Phuong & Hutter, *Formal Algorithms for Transformers* (2022)]({ARXIV}) as numbered "
        "pseudocode with a typed signature, plus the backward passes the paper leaves out. "
        "Every page is generated from `spec/` at build time, beside the NumPy reference and "
        "the PyTorch code that implement it, and the properties that the conformance suite "
        "checks.",
        "- [Notation](notation.md): column vectors, one column per token, indices from 0.\n"
        "- [Properties](properties.md): the laws a correct implementation satisfies.\n"
        "- [Test your implementation](tutorial.md): point the conformance suite at your code.\n"
        "- [Verification report](verification.md), [memory](memory.md), "
        "[benchmarks](benchmarks.md) and [how to cite](cite.md).",
        "## The catalogue",
        algorithm_table(algorithms, prefix="algorithms/"),
    ]) + "\n"


def properties_page(intro: str, properties: Mapping, algorithms: Sequence) -> str:
    """properties.md: each property under a heading whose anchor is its id."""
    pages = {a.id: a.path.name for a in algorithms}
    listed_by: dict[str, list[str]] = {pid: [] for pid in properties}
    for alg in algorithms:
        for pid in alg.properties:
            listed_by.setdefault(pid, []).append(alg.id)

    def links(ids) -> str:
        return ", ".join(f"[`{i}`](algorithms/{pages[i]})" if i in pages else f"`{i}`"
                         for i in ids) or "—"

    parts = [intro.strip()]
    for prop in properties.values():
        parts += [f'## {prop.title} {{ id="{prop.id}" }}',
                  f"**Id:** `{prop.id}`",
                  prop.statement,
                  f"**Applies to:** {links(prop.applies_to)}  \n"
                  f"**Guards (listed in the front matter of):** {links(listed_by[prop.id])}"]
    return "\n\n".join(parts) + "\n"
