"""The verification report as data: JSON, table rows, failure explanations, the summary of
what was not covered, the mutant pattern a failure matches, and repro scripts (no printing).
"""

from __future__ import annotations

import base64
import pickle
import platform
from collections import defaultdict
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from conformance import coverage as spec_coverage
from conformance.runner import FAILING, STATUSES, Result, summary
from formal_transformers.provenance import run_facts
from formal_transformers.spec import load_catalogue

MEASURES = {"abs error": "abs", "abs error (exact)": "abs, exact", "rel. error": "rel",
            "non-finite": "non-finite", "count difference": "count diff"}


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
            seed: int, seconds: float, interrupted: bool = False,
            timeout: float | None = None, exit_status: int | None = None) -> dict[str, Any]:
    """The JSON document of ``formal-transformers verify --json``."""
    counts = summary(results)
    doc = {"implementation": implementation, "impl": impl, "profile": profile, "seed": seed,
           "versions": versions(), "seconds": round(seconds, 3), "interrupted": interrupted,
           "results": [r.to_json() for r in results],
           "summary": counts | {"total": len(results)},
           "not_covered": uncovered_summary(results),
           **run_facts(), "spec_coverage": spec_coverage.last_report()}
    if timeout is not None:
        doc["timeout"] = timeout
    if exit_status is not None:
        doc["exit_status"] = exit_status
    return doc


def _order() -> dict[str, int]:
    return {a.id: a.number for a in load_catalogue()}


def sorted_results(results: Sequence[Result]) -> list[Result]:
    """Catalogue order (algorithm number), then property id, then dtype."""
    order = _order()
    return sorted(results, key=lambda r: (order.get(r.algorithm, 99), r.property, r.dtype or ""))


STYLE = {"passed": "green", "failed": "bold red", "error": "bold magenta",
         "timed out": "bold yellow", "not covered": "dim"}
COLUMNS = ["algorithm", "property", "dtype", "status", "examples",
           "max error (what it measures)", "x tolerance"]


def error_cell(value: float | None, measure: str) -> str:
    """'3.1e-07 abs': the largest error of a check and what it measures."""
    if value is None:
        return ""
    return f"{value:.2e} {MEASURES.get(measure, measure or 'value')}".strip()


def ratio_cell(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def table_rows(results: Sequence[Result], show_uncovered: bool = False
               ) -> list[tuple[str, ...]]:
    """Rows of the algorithm x property table (status marked up for rich). Not-covered cells
    are left out unless ``show_uncovered`` (see ``uncovered_lines``)."""
    rows = []
    for r in sorted_results(results):
        if r.status == "not covered" and not show_uncovered:
            continue
        rows.append((r.algorithm, r.property, r.dtype or "-",
                     f"[{STYLE[r.status]}]{r.status}[/{STYLE[r.status]}]",
                     str(r.examples) if r.status != "not covered" else "-",
                     error_cell(r.max_error, r.measure), ratio_cell(r.max_ratio)))
    return rows


def uncovered_summary(results: Sequence[Result]) -> dict[str, dict[str, Any]]:
    """Per algorithm: how many cells were not covered, and why (each distinct reason once)."""
    out: dict[str, dict[str, Any]] = {}
    for r in sorted_results(results):
        if r.status != "not covered":
            continue
        entry = out.setdefault(r.algorithm, {"checks": 0, "reasons": []})
        entry["checks"] += 1
        if r.reason not in entry["reasons"]:
            entry["reasons"].append(r.reason)
    return out


def note_lines(results: Sequence[Result]) -> list[str]:
    """One line per note a check made (``Result.notes``: a skipped sub-case and its reason,
    a statistic of the run), named by its cell."""
    return [f"{r.algorithm} / {r.property} ({r.dtype or '-'}): {note}"
            for r in sorted_results(results) for note in r.notes]


def uncovered_lines(results: Sequence[Result]) -> list[str]:
    """One line per algorithm with not-covered checks."""
    return [f"{alg}: {e['checks']} check{'s' * (e['checks'] != 1)} not covered "
            f"({'; '.join(e['reasons'])})" for alg, e in uncovered_summary(results).items()]


def nothing_checked_reason(results: Sequence[Result], declared: Sequence[str]) -> str:
    """Why a run checked nothing (exit status 3)."""
    from conformance.adapter import EXTRAS

    if not results:
        return "no check was selected"
    if not declared:
        return ("the adapter declares no algorithm ('algorithms' is empty): there is nothing "
                "to check")
    if set(declared) <= set(EXTRAS):
        needed = sorted({r.algorithm for r in results} - set(declared))
        shown = ", ".join(needed[:8]) + (" ..." if len(needed) > 8 else "")
        return (f"the adapter declares only {', '.join(declared)}, which cannot be checked "
                "alone: every check of an extra also calls the algorithm it belongs to "
                f"(declare one of {shown})")
    return ("no selected check applies to what the adapter declares "
            f"({', '.join(declared)}); see --show-uncovered")


def _tolerance_multiple(ratio: float | None) -> str:
    return "" if ratio is None else f" = {ratio:.3g} x tolerance"


def failure_text(r: Result, pattern: str = "", repro: str = "") -> str:
    """Everything a user needs to see about one failed, errored or timed-out check."""
    lines = [f"{r.status.upper()}: {r.property} on {r.algorithm} ({r.dtype})",
             f"  property:  {r.statement}",
             f"  spec line: {r.spec_line}",
             f"  what:      {r.reason}"]
    if r.expected or r.observed:
        lines += [f"  expected:  {r.expected}", f"  observed:  {r.observed}"]
    if r.max_error is not None:
        measure = r.measure or "error"
        lines.append(f"  largest {measure} of the run: {r.max_error:.3g}"
                     f"{_tolerance_multiple(r.max_ratio)}")
        if r.shrunk_error is not None:
            lines.append(f"  {measure} of the shrunk example: {r.shrunk_error:.3g}"
                         f"{_tolerance_multiple(r.shrunk_ratio)}")
    if r.counterexample:
        lines.append("  counterexample (shrunk):")
        lines += ["    " + line for line in r.counterexample.splitlines()]
    if r.largest_example:
        lines.append("  example with the largest error (before shrinking):")
        lines += ["    " + line for line in r.largest_example.splitlines()]
    if pattern:
        lines.append(f"  likely mistake: {pattern}")
    if repro:
        lines.append(f"  repro script: {repro}")
    return "\n".join(lines)


def summary_line(results: Sequence[Result]) -> str:
    counts = summary(results)
    return ", ".join(f"{counts[s]} {s}" for s in STATUSES) + f" ({len(results)} checks)"


# -- the catalogue's mutants as known patterns --------------------------------------------------
def _first_sentence(doc: str | None) -> str:
    text = " ".join((doc or "").split())
    return text.split(". ")[0].rstrip(".")


def adapter_label(adapter: Any) -> str:
    """The name a report shows: a catalogue mutant names itself (it inherits the bundled
    implementation's ``name``), any other adapter by its ``name``."""
    cls = type(adapter)
    if cls.__module__.startswith("conformance.mutants") and "caught_by" in vars(cls):
        return f"mutant {cls.__name__} ({_first_sentence(cls.__doc__)})"
    return str(adapter.name)


def matching_mutants(results: Sequence[Result], limit: int = 3) -> list[str]:
    """Catalogue mutants whose signature the failing cells match: every property the mutant is
    caught by (``caught_by``) fails on an algorithm the mutant breaks (its ``only``). The most
    specific (largest signature, fewest extra failures) first."""
    from conformance.adapter import ALGORITHMS, EXTRAS
    from conformance.mutants import catalogue

    failing: dict[str, set[str]] = defaultdict(set)
    for r in results:
        if r.status == "failed":
            failing[r.algorithm].add(r.property)
    if not failing:
        return []
    known = set(ALGORITHMS + EXTRAS)
    scored = []
    for mutant in catalogue():
        signature = set(getattr(mutant, "caught_by", ()))
        scope = [a for a in getattr(mutant, "only", ()) if a in known]
        if not signature:
            continue
        seen = set().union(*(failing.get(a, set()) for a in scope)) if scope else \
            set().union(*failing.values())
        if signature <= seen:
            scored.append((-len(signature), len(seen - signature), mutant.__name__, mutant))
    return [f"pattern matches {m.__name__}: {_first_sentence(m.__doc__)}"
            for *_, m in sorted(scored)[:limit]]


def patterns_for(result: Result, results: Sequence[Result]) -> str:
    """The matching mutants (``matching_mutants``) whose scope contains ``result``'s cell."""
    from conformance.mutants import catalogue

    names = {m.__name__: m for m in catalogue()}
    out = []
    for line in matching_mutants(results):
        mutant = names[line.split(":")[0].removeprefix("pattern matches ")]
        if result.property in mutant.caught_by:
            out.append(line)
    return "; ".join(out)


# -- repro scripts ------------------------------------------------------------------------------
REPRO = '''"""Repro of {property} on {algorithm} ({dtype}), written by formal-transformers verify.

Rebuilds the shrunk counterexample, runs the check's law on the adapter and prints expected vs
observed. Run it from the directory verify ran in:  python {name}
"""

import base64
import pickle
import sys

from conformance.adapter import load_adapter
from conformance.assertions import PropertyViolation, as_dtype
from conformance.bound import Bound
from conformance.registry import PROFILES, Context, all_checks

IMPL = {impl!r}
ALGORITHM, PROPERTY, DTYPE, PROFILE = {algorithm!r}, {property!r}, {dtype!r}, {profile!r}
CASE = pickle.loads(base64.b64decode({blob!r}))

check = next(c for c in all_checks() if (c.algorithm, c.property) == (ALGORITHM, PROPERTY))
ctx = Context(Bound(load_adapter(IMPL)), as_dtype(DTYPE), ALGORITHM, PROFILES[PROFILE])
print(f"{{PROPERTY}} on {{ALGORITHM}} ({{DTYPE}}) with --impl {{IMPL}}")
print(repr(CASE))
try:
    check.fn(ctx, CASE)
except PropertyViolation as exc:
    print("FAILED:", exc)
    print("expected:", exc.expected)
    print("observed:", exc.observed)
    sys.exit(1)
print("passed (largest error", ctx.max_error, ")")
'''


def repro_name(result: Result, taken: set[str]) -> str:
    name = f"{result.algorithm}__{result.property}.py"
    if name in taken:
        name = f"{result.algorithm}__{result.property}__{result.dtype}.py"
    taken.add(name)
    return name


def write_repros(results: Sequence[Result], impl: str, profile: str, directory: Path
                 ) -> dict[int, Path]:
    """A runnable script per failed check with a counterexample: ``directory /
    <algorithm>__<property>.py``. Returns {index in results: path}."""
    written: dict[int, Path] = {}
    taken: set[str] = set()
    for i, r in enumerate(results):
        if r.status not in FAILING or r.case is None:
            continue
        try:
            blob = base64.b64encode(pickle.dumps(r.case)).decode("ascii")
        except Exception:  # an example that cannot be pickled gets no script
            continue
        directory.mkdir(parents=True, exist_ok=True)
        name = repro_name(r, taken)
        path = directory / name
        path.write_text(REPRO.format(property=r.property, algorithm=r.algorithm, dtype=r.dtype,
                                     name=name, impl=impl, profile=profile, blob=blob))
        written[i] = path
    return written
