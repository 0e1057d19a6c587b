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


def verification_page(data: Any, problem: str | None, pages: Mapping[str, str]) -> str:
    """verification.md from `formal-transformers verify --json` output.

    ``pages`` maps algorithm ids to their page's file name (``04-attention.md``).
    """
    head = ["# Verification report",
            "The latest run of the conformance suite, from the JSON that "
            f"`formal-transformers verify --json {VERIFY_JSON}` writes."]
    if problem:
        return "\n\n".join(head + [f'!!! failure "Unreadable report"\n\n    {problem}']) + "\n"
    if data is None:
        command = f"formal-transformers verify --json {VERIFY_JSON}"
        return "\n\n".join(head + [not_produced("verification report", command)])
    parts = list(head)
    if isinstance(data.get("summary"), dict):
        parts += ["## Summary", generic_report(data["summary"])]
    results = data.get("results")
    if isinstance(results, list) and all(isinstance(r, dict) for r in results):
        parts += ["## Results", _results_table(results, pages)]
        failures = [r for r in results if r.get("status") in ("failed", "error")]
        if failures:
            parts += ["## Failures"] + [_failure(r, pages) for r in failures]
    meta = {k: v for k, v in data.items() if k not in ("results", "summary")}
    parts += ["## Run", generic_report(meta)]
    return "\n\n".join(parts) + "\n"


def _alg_link(alg: str, pages: Mapping[str, str], line: int | None = None) -> str:
    if alg not in pages:
        return html.escape(alg)
    anchor = f"#{alg}-L{line}" if line else ""
    text = f"{alg} L{line}" if line else alg
    return f'<a href="../algorithms/{Path(pages[alg]).stem}/{anchor}">{html.escape(text)}</a>'


def _results_table(results: Sequence[Mapping[str, Any]], pages: Mapping[str, str]) -> str:
    rows = []
    for r in results:
        alg, prop = str(r.get("algorithm", "")), str(r.get("property", ""))
        prop_cell = (f'<a href="../properties/#{html.escape(prop)}">'
                     f"<code>{html.escape(prop)}</code></a>")
        status = str(r.get("status", ""))
        rows.append([_alg_link(alg, pages), prop_cell, cell(r.get("dtype")),
                     status_html(status),
                     cell(r.get("examples")), cell(r.get("max_error"))])
    return h.table(["algorithm", "property", "dtype", "status", "examples", "largest error"],
                   rows)


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
