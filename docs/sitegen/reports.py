"""Pages filled by data that other parts of the project produce (reports/*.json, plots).

Each page renders its data file when it exists and otherwise says plainly that the data has
not been produced yet and which command produces it: the site never shows invented figures.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sitegen import html as h

VERIFY_JSON = "reports/verify.json"  # as the pages name them; read from reports_dir()
BENCH_JSON = "reports/bench.json"
MEMORY_JSON = "reports/memory.json"

def status_html(status: str) -> str:
    """A status word, styled by its class (``ft-status-passed``, ...): no emoji fonts needed."""
    slug = re.sub(r"[^a-z]+", "-", status.lower()).strip("-") or "unknown"
    return f'<span class="ft-status ft-status-{slug}">{html.escape(status)}</span>'


def reports_dir(root: Path) -> Path:
    """Where the report files are read: $FT_REPORTS_DIR, else <repo>/reports."""
    return Path(os.environ.get("FT_REPORTS_DIR") or root / "reports")


def not_produced(what: str, command: str) -> str:
    """An admonition saying the data is missing and how to produce it."""
    return (f'!!! warning "Not yet produced"\n\n    No {what} has been produced for this build. '
            f"Run `{command}` and rebuild the site to fill this page.\n")


def load_json(path: Path) -> tuple[Any, str | None]:
    """(data, None), or (None, problem) when the file is absent or unreadable."""
    if not path.is_file():
        return None, None
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, ValueError) as exc:
        return None, f"{path.name} could not be read: {exc}"


def cell(value: Any) -> str:
    """A JSON value as an HTML table cell: floats in 4 significant digits, the rest escaped."""
    if isinstance(value, bool) or value is None:
        return html.escape(str(value).lower() if value is not None else "—")
    if isinstance(value, float):
        return f"{value:.4g}"
    if _flat(value):
        return ", ".join(f"{html.escape(str(k))} {cell(v)}" for k, v in value.items())
    if isinstance(value, (dict, list)):
        return f"<code>{html.escape(json.dumps(value, ensure_ascii=False))}</code>"
    return html.escape(str(value))


def _flat(value: Any) -> bool:
    """A non-empty mapping of scalars (shown inline in one cell, e.g. versions)."""
    return isinstance(value, dict) and bool(value) and not any(
        isinstance(v, (dict, list)) for v in value.values())


def records_table(records: Sequence[Mapping[str, Any]]) -> str:
    """A list of flat JSON objects as a table whose columns are the union of their keys."""
    columns: list[str] = []
    for r in records:
        columns += [k for k in r if k not in columns]
    return h.table(columns, ([cell(r.get(c)) for c in columns] for r in records))


def generic_report(data: Any) -> str:
    """Any JSON report: scalars as a key/value table, lists of objects as tables."""
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return records_table(data)
    if not isinstance(data, dict):
        return f"```json\n{json.dumps(data, indent=2, ensure_ascii=False)}\n```"
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, (dict, list)) or _flat(v)]
    parts = [h.table(["field", "value"], ([html.escape(k), cell(v)] for k, v in scalars))
             ] if scalars else []
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            parts += [f"### {key}", records_table(value)]
        elif isinstance(value, dict) and value and not _flat(value):
            parts += [f"### {key}", generic_report(value)]
    return "\n\n".join(parts)


def humanize(key: str) -> str:
    """``attention_vs_length`` -> ``Attention vs length``."""
    text = key.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def run_facts_table(data: Mapping[str, Any], extra: Sequence[tuple[str, str]] = ()) -> str:
    """Date, commit, machine and the like of a report, as a two-column table."""
    rows = list(extra)
    date = data.get("date")
    rows.append(("date", html.escape(str(date)) if date else "not recorded in the report"))
    commit = data.get("commit")
    rows.append(("commit", f"<code>{html.escape(str(commit))}</code>" if commit else
                 "not recorded in the report"))
    machine = data.get("machine")
    if isinstance(machine, dict):
        rows.append(("machine", ", ".join(f"{html.escape(humanize(k).lower())} "
                                          f"{html.escape(str(v))}" for k, v in machine.items())))
    elif machine:
        rows.append(("machine", html.escape(str(machine))))
    else:
        rows.append(("machine", "not recorded in the report"))
    if isinstance(data.get("versions"), dict):
        rows.append(("versions", cell(data["versions"])))
    return h.table(["field", "value"], rows, "ft-facts ft-stack")


def _profile_text(name: str) -> str:
    try:
        from conformance.registry import PROFILES
    except Exception:  # the page still renders what the report says
        return html.escape(name)
    prof = PROFILES.get(name)
    if prof is None:
        return html.escape(name)
    others = ", ".join(f"{p.name} {p.max_examples}" for p in PROFILES.values() if p.name != name)
    return (f"<strong>{html.escape(name)}</strong>: up to {prof.max_examples} examples per "
            f"check (other profiles: {others})")


def verification_page(data: Any, problem: str | None, pages: Mapping[str, str],
                      titles: Mapping[str, tuple[int, str]] | None = None) -> str:
    """verification.md from `formal-transformers verify --json` output.

    ``pages`` maps algorithm ids to their page's file name (``04-attention.md``), ``titles``
    to (number, title). Results are grouped by algorithm in catalogue order; the run's
    profile, date, commit and machine come first, then the spec-line coverage.
    """
    titles = titles or {}
    head = ["# Verification report",
            "The latest run of the conformance suite, from the JSON that "
            f"`formal-transformers verify --json {VERIFY_JSON}` writes."]
    if problem:
        return "\n\n".join(head + [f'!!! failure "Unreadable report"\n\n    {problem}']) + "\n"
    if data is None:
        command = f"formal-transformers verify --json {VERIFY_JSON}"
        return "\n\n".join(head + [not_produced("verification report", command)])
    parts = list(head)
    profile = str(data.get("profile", "")) or "not recorded"
    if profile == "quick":
        parts.append('!!! note "Quick profile"\n\n    This run used the `quick` profile, the '
                     "smallest example budget: a smoke run, not the full search (`ci`, "
                     "`thorough`).")
    extra = [("implementation", f"{html.escape(str(data.get('implementation', '')))} "
              f"(<code>--impl {html.escape(str(data.get('impl', '')))}</code>)"),
             ("profile", _profile_text(profile)), ("seed", cell(data.get("seed"))),
             ("duration", f"{data['seconds']:.1f} s" if isinstance(data.get("seconds"),
                                                                   (int, float)) else "—")]
    parts += ["## The run", run_facts_table(data, extra)]
    if isinstance(data.get("summary"), dict):
        counts = data["summary"]
        parts += ["## Summary", h.table(
            [humanize(k) for k in counts], [[cell(v) for v in counts.values()]],
            "ft-summary ft-stack")]
    coverage = data.get("spec_coverage")
    parts += ["## Spec-line coverage", coverage_section(coverage, pages, titles)]
    results = data.get("results")
    if isinstance(results, list) and all(isinstance(r, dict) for r in results):
        parts += ["## Results by algorithm"] + _results_by_algorithm(results, pages, titles)
        failures = [r for r in results if r.get("status") in ("failed", "error", "timed out")]
        if failures:
            parts += ["## Failures"] + [_failure(r, pages) for r in failures]
    return "\n\n".join(parts) + "\n"


def coverage_section(coverage: Any, pages: Mapping[str, str],
                     titles: Mapping[str, tuple[int, str]]) -> str:
    """The figure and, per algorithm, each pseudocode line executed or not during the run."""
    if not isinstance(coverage, dict):
        return ("This report holds no spec-line coverage (it was written before the suite "
                "traced the reference, or with `FT_SPEC_COVERAGE=0`).")
    if coverage.get("unavailable"):
        return f"Not measured in this run: {html.escape(str(coverage['unavailable']))}."
    lines, done = coverage.get("lines") or 0, coverage.get("executed") or 0
    pct = f"{100 * done / lines:.1f} %" if lines else "—"
    intro = (f'<p class="ft-figure"><strong>{done} of {lines} pseudocode lines ({pct})</strong> '
             "were executed by the reference (<code>reference_numpy</code>) while the suite "
             "ran: each executed source line citing <code># Alg N Lk</code> marks line k of "
             "Algorithm N (<code>conformance/coverage.py</code>). A line that was not executed "
             "is one no check of this run reached through the reference.</p>")
    rows = []
    algs = coverage.get("algorithms") or {}
    order = sorted(algs, key=lambda a: (titles.get(a, (algs[a].get("number", 99),))[0]))
    for alg in order:
        info = algs[alg]
        ran = set(info.get("executed") or [])
        n = int(info.get("lines") or 0)
        stem = Path(pages[alg]).stem if alg in pages else None
        cells = []
        for k in range(1, n + 1):
            state = "ran" if k in ran else "not-run"
            word = "executed" if k in ran else "not executed"
            label = f'<span class="ft-cov ft-cov-{state}" title="line {k}: {word}">{k}</span>'
            cells.append(f'<a href="../algorithms/{stem}/#{alg}-L{k}">{label}</a>'
                         if stem else label)
        name = titles.get(alg, (info.get("number", ""), alg))
        rows.append([cell(info.get("number")), _alg_link(alg, pages, title=name[1]),
                     f"{len(ran)} / {n}", " ".join(cells)])
    table = h.table(["#", "algorithm", "executed", "pseudocode lines (executed / not)"],
                    rows, "ft-coverage ft-stack")
    return intro + "\n\n" + table


def _alg_link(alg: str, pages: Mapping[str, str], line: int | None = None,
              title: str | None = None) -> str:
    if alg not in pages:
        return html.escape(alg)
    anchor = f"#{alg}-L{line}" if line else ""
    text = f"{alg} L{line}" if line else (title or alg)
    return f'<a href="../algorithms/{Path(pages[alg]).stem}/{anchor}">{html.escape(text)}</a>'


def _breakable(ident: str) -> str:
    return re.sub(r"([._])", r"\1<wbr>", html.escape(ident))


def _results_by_algorithm(results: Sequence[Mapping[str, Any]], pages: Mapping[str, str],
                          titles: Mapping[str, tuple[int, str]]) -> list[str]:
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        groups.setdefault(str(r.get("algorithm", "")), []).append(r)
    parts = []
    for alg in sorted(groups, key=lambda a: (titles.get(a, (999, a))[0], a)):
        number, title = titles.get(alg, (None, alg))
        rows = groups[alg]
        counts: dict[str, int] = {}
        for r in rows:
            counts[str(r.get("status"))] = counts.get(str(r.get("status")), 0) + 1
        tally = ", ".join(f"{n} {s}" for s, n in counts.items())
        heading = f"Algorithm {number}: {title}" if number is not None else alg
        link = (f"[`{alg}`](algorithms/{pages[alg]})" if alg in pages else f"`{alg}`")
        parts += [f"### {heading}", f"{link} · {tally}", _results_table(rows)]
    return parts


def _results_table(results: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for r in results:
        prop = str(r.get("property", ""))
        prop_cell = (f'<a href="../properties/#{html.escape(prop)}">'
                     f"<code>{_breakable(prop)}</code></a>")
        rows.append([prop_cell, cell(r.get("dtype")), status_html(str(r.get("status", ""))),
                     cell(r.get("examples")), cell(r.get("max_error"))])
    return h.table(["property", "dtype", "status", "examples", "largest error"], rows,
                   "ft-results ft-stack")


def _failure(r: Mapping[str, Any], pages: Mapping[str, str]) -> str:
    """One failed check: where in the spec, why, and the shrunk counterexample."""
    alg, prop = str(r.get("algorithm", "")), str(r.get("property", ""))
    spec_line = str(r.get("spec_line", ""))
    m = re.search(r" L(\d+):", spec_line)
    parts = [f"### {alg} · {prop} ({r.get('dtype') or 'any dtype'})",
             f"Spec line: {_alg_link(alg, pages, int(m.group(1)) if m else None)}"]
    for key in ("reason", "spec_line", "counterexample", "expected", "observed"):
        if r.get(key):
            parts.append(f"**{key.replace('_', ' ')}:**\n\n```text\n{r[key]}\n```")
    return "\n\n".join(parts)


def data_page(title: str, intro: str, data: Any, problem: str | None, command: str,
              what: str, images: Sequence[str] = ()) -> str:
    """A page rendering a generic JSON report and its plots, or saying they are missing."""
    parts = [f"# {title}", intro]
    if problem:
        parts.append(f'!!! failure "Unreadable report"\n\n    {problem}')
    elif data is None:
        parts.append(not_produced(what, command))
    else:
        parts.append(generic_report(data))
    parts += [f"![{Path(img).stem}]({img})" for img in images]
    return "\n\n".join(parts) + "\n"
