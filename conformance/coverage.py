"""Spec-line coverage: which pseudocode lines the reference executed during a run.

Every mirrored line of ``reference_numpy`` cites the spec line it implements (``# Alg 10 L6``;
tests/test_traceability.py checks that every pseudocode line is cited). While a run of the
suite is traced, each executed source line that carries a citation marks its spec lines as
executed; a spec line none of whose citing lines ran was not exercised by the run, whatever
the run's verdicts say.

The tracer watches only the reference's files: ``sys.monitoring`` (Python 3.12+, events
switched on for those files' code objects alone and off again after each line's first hit)
or else ``sys.settrace``/``threading.settrace``, whose global hook returns at once for any
other file. It does not start when another tracer is installed (a debugger, coverage.py): the
report then says why it has no figures. ``FT_SPEC_COVERAGE=0`` turns it off.

The runner calls :func:`start` before its checks and :func:`stop` after them; the report's
JSON takes :func:`last_report`:

    {"files": [...], "lines": 277, "executed": 251, "fraction": 0.906,
     "algorithms": {"attention": {"number": 4, "lines": 8, "executed": [1, 2, ...],
                                  "not_executed": [7]}, ...}}
"""

from __future__ import annotations

import ast
import os
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CITATION = re.compile(r"#.*?\bAlg (\d+) (L\d+(?:-\d+)?(?:,\s*L?\d+(?:-\d+)?)*)")
TOOL_NAME = "formal-transformers spec-line coverage"


def parse_citations(text: str) -> list[tuple[int, int]]:
    """All (algorithm number, line) pairs cited in a source text; 'L5-7' and 'L1, L3' expand."""
    cited = []
    for m in CITATION.finditer(text):
        number = int(m.group(1))
        for part in re.split(r",\s*", m.group(2)):
            lo, _, hi = part.lstrip("L").partition("-")
            cited += [(number, k) for k in range(int(lo), int(hi or lo) + 1)]
    return cited


def reference_dir() -> Path:
    """The directory of the installed ``reference_numpy`` package."""
    import reference_numpy

    return Path(reference_numpy.__file__).absolute().parent


def _statements(tree: ast.AST) -> list[ast.stmt]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.stmt)]


def _executed_line(stmts: list[ast.stmt], line: int) -> int:
    """The source line whose execution means that the citation on ``line`` ran.

    That is the first line of the innermost statement holding ``line`` (a call continued over
    several lines reports its first line); for an ``else:``/``except:`` clause line, the first
    statement of that clause.
    """
    holding = [s for s in stmts if s.lineno <= line <= (s.end_lineno or s.lineno)]
    if not holding:
        return line
    inner = max(holding, key=lambda s: (s.lineno, -(s.end_lineno or s.lineno)))
    body = getattr(inner, "body", None)
    if isinstance(body, list) and body and line >= body[0].lineno:
        later = [s.lineno for s in stmts if s.lineno > line]
        return min(later) if later else line
    return inner.lineno


def citation_map(files: Iterable[Path]) -> dict[tuple[str, int], tuple[tuple[int, int], ...]]:
    """(file, executed line) -> the (algorithm number, spec line) pairs it implements."""
    out: dict[tuple[str, int], set[tuple[int, int]]] = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        stmts = _statements(ast.parse(text))
        for lineno, line in enumerate(text.splitlines(), 1):
            cited = parse_citations(line)
            if cited:
                key = (str(path), _executed_line(stmts, lineno))
                out.setdefault(key, set()).update(cited)
    return {k: tuple(sorted(v)) for k, v in out.items()}


@dataclass
class Tracer:
    """Records which of ``wanted``'s (file, line) pairs execute between start() and stop()."""

    wanted: Mapping[tuple[str, int], Any]
    hit: set[tuple[str, int]] = field(default_factory=set)
    unavailable: str = ""
    _tool: int | None = None

    def __post_init__(self):
        self._files = {f for f, _ in self.wanted}
        self._code_left: dict[Any, set[int]] = {}

    def start(self) -> bool:
        monitoring = getattr(sys, "monitoring", None)
        if monitoring is not None:
            return self._start_monitoring(monitoring)
        if sys.gettrace() is not None:
            self.unavailable = "another tracer (a debugger or coverage tool) was active"
            return False
        sys.settrace(self._global)
        threading.settrace(self._global)
        return True

    def stop(self) -> None:
        monitoring = getattr(sys, "monitoring", None)
        if monitoring is not None:
            if self._tool is not None:
                monitoring.set_events(self._tool, 0)
                monitoring.register_callback(self._tool, monitoring.events.PY_START, None)
                monitoring.register_callback(self._tool, monitoring.events.LINE, None)
                monitoring.free_tool_id(self._tool)
                self._tool = None
            return
        if sys.gettrace() == self._global:
            sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]

    # sys.settrace (Python < 3.12): a code object is traced only while some line of it that
    # carries a citation has not run yet, so the literal loops of the reference run untraced
    # once their lines have been seen.
    def _global(self, frame, event, arg):
        code = frame.f_code
        left = self._code_left.get(code)
        if left is None:
            if code.co_filename not in self._files:
                self._code_left[code] = left = set()
            else:
                lines = {ln for _, _, ln in code.co_lines() if ln is not None}
                left = {ln for f, ln in self.wanted if f == code.co_filename and ln in lines}
                self._code_left[code] = left = left - {ln for f, ln in self.hit
                                                       if f == code.co_filename}
        return self._local if left else None

    def _local(self, frame, event, arg):
        if event == "line":
            left = self._code_left.get(frame.f_code)
            if left and frame.f_lineno in left:
                left.discard(frame.f_lineno)
                self.hit.add((frame.f_code.co_filename, frame.f_lineno))
            if not left:
                return None
        return self._local

    # sys.monitoring (Python >= 3.12)
    def _start_monitoring(self, mon) -> bool:
        free = [t for t in range(6) if mon.get_tool(t) is None]
        if not free:
            self.unavailable = "no free sys.monitoring tool id"
            return False
        self._tool = tool = free[-1]
        mon.use_tool_id(tool, TOOL_NAME)

        def on_start(code, offset):
            if code.co_filename in self._files:
                mon.set_local_events(tool, code, mon.events.LINE)
            return mon.DISABLE

        def on_line(code, line):
            key = (code.co_filename, line)
            if key in self.wanted:
                self.hit.add(key)
            return mon.DISABLE

        mon.register_callback(tool, mon.events.PY_START, on_start)
        mon.register_callback(tool, mon.events.LINE, on_line)
        mon.set_events(tool, mon.events.PY_START)
        mon.restart_events()
        return True


def report(tracer: Tracer, algorithms: Iterable[Any]) -> dict[str, Any]:
    """The coverage document (module docstring) from a stopped tracer and the catalogue."""
    executed: dict[int, set[int]] = {}
    for key in tracer.hit:
        for number, k in tracer.wanted[key]:
            executed.setdefault(number, set()).add(k)
    per_alg, total, done = {}, 0, 0
    for alg in algorithms:
        lines = range(1, len(alg.pseudocode) + 1)
        ran = sorted(executed.get(alg.number, set()) & set(lines))
        per_alg[alg.id] = {"number": alg.number, "lines": len(lines), "executed": ran,
                           "not_executed": [k for k in lines if k not in ran]}
        total, done = total + len(lines), done + len(ran)
    doc: dict[str, Any] = {
        "measured_on": "reference_numpy", "lines": total, "executed": done,
        "fraction": round(done / total, 4) if total else None, "algorithms": per_alg}
    if tracer.unavailable:
        doc = {"measured_on": "reference_numpy", "unavailable": tracer.unavailable}
    return doc


_state: dict[str, Any] = {"tracer": None, "last": None}


def start() -> None:
    """Start tracing the reference for the run about to begin (no-op if FT_SPEC_COVERAGE=0)."""
    stop_quietly()
    _state["last"] = None
    if os.environ.get("FT_SPEC_COVERAGE", "1") == "0":
        return
    files = sorted(str(p) for p in reference_dir().rglob("*.py"))
    tracer = Tracer(citation_map(Path(f) for f in files))
    tracer.start()
    _state["tracer"] = tracer


def stop_quietly() -> Tracer | None:
    tracer = _state["tracer"]
    if tracer is not None:
        tracer.stop()
        _state["tracer"] = None
    return tracer


def stop() -> dict[str, Any] | None:
    """Stop tracing and keep the run's coverage document (None if tracing was off)."""
    tracer = stop_quietly()
    if tracer is None:
        return None
    from formal_transformers.spec import load_catalogue

    _state["last"] = report(tracer, load_catalogue())
    return _state["last"]


def last_report() -> dict[str, Any] | None:
    """The coverage document of the last traced run, or None."""
    return _state["last"]
