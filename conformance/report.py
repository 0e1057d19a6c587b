"""The verification report as data: JSON, table rows and failure explanations (no printing)."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from conformance import coverage as spec_coverage
from conformance.runner import STATUSES, Result, summary
from formal_transformers.provenance import run_facts
from formal_transformers.spec import load_catalogue


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that decide the results."""
    out = {"python": platform.python_version()}
    for dist in ("formal-transformers", "numpy", "torch", "hypothesis"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def to_json(results: Sequence[Result], implementation: str, impl: str, profile: str,
            seed: int, seconds: float) -> dict[str, Any]:
    """The JSON document of ``formal-transformers verify --json``."""
    counts = summary(results)
    return {"implementation": implementation, "impl": impl, "profile": profile, "seed": seed,
            "versions": versions(), "seconds": round(seconds, 3),
            "results": [r.to_json() for r in results],
            "summary": counts | {"total": len(results)},
            **run_facts(), "spec_coverage": spec_coverage.last_report()}


def _order() -> dict[str, int]:
    return {a.id: a.number for a in load_catalogue()}


def sorted_results(results: Sequence[Result]) -> list[Result]:
    """Catalogue order (algorithm number), then property id, then dtype."""
    order = _order()
    return sorted(results, key=lambda r: (order.get(r.algorithm, 99), r.property, r.dtype or ""))


STYLE = {"passed": "green", "failed": "bold red", "error": "bold magenta",
         "not covered": "dim"}


def table_rows(results: Sequence[Result]) -> list[tuple[str, ...]]:
    """Rows of the algorithm x property table (status marked up for rich)."""
    rows = []
    for r in sorted_results(results):
        err = "" if r.max_error is None else f"{r.max_error:.2e}"
        rows.append((r.algorithm, r.property, r.dtype or "-",
                     f"[{STYLE[r.status]}]{r.status}[/{STYLE[r.status]}]",
                     str(r.examples) if r.status != "not covered" else "-", err))
    return rows


def failure_text(r: Result) -> str:
    """Everything a user needs to see about one failed or errored check."""
    lines = [f"{r.status.upper()}: {r.property} on {r.algorithm} ({r.dtype})",
             f"  property:  {r.statement}",
             f"  spec line: {r.spec_line}",
             f"  what:      {r.reason}"]
    if r.expected or r.observed:
        lines += [f"  expected:  {r.expected}", f"  observed:  {r.observed}"]
    if r.counterexample:
        lines.append("  counterexample (shrunk):")
        lines += ["    " + line for line in r.counterexample.splitlines()]
    return "\n".join(lines)


def summary_line(results: Sequence[Result]) -> str:
    counts = summary(results)
    return ", ".join(f"{counts[s]} {s}" for s in STATUSES) + f" ({len(results)} checks)"
