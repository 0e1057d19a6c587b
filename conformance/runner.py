"""Run the registered checks against an adapter and collect a report (behind ``verify``).

Each check runs as a hypothesis test with the profile's example budget and a seed derived from
the run's seed and the check's key, so a run is reproducible. A failing example is shrunk
(unless ``shrink=False``) and reported with the property's statement, the spec line at stake,
and expected vs observed.
"""

from __future__ import annotations

import re
import signal
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, example, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky

from conformance import coverage as spec_coverage
from conformance.assertions import DTYPES, PropertyViolation, as_dtype
from conformance.bound import Bound
from conformance.registry import PROFILES, Check, Context, Profile, all_checks
from formal_transformers.errors import AdapterError, ConfigError
from formal_transformers.spec import load_catalogue, load_properties

STATUSES = ("passed", "failed", "error", "timed out", "not covered")
FAILING = ("failed", "error", "timed out")
DEFAULT_TIMEOUT = {"quick": 120.0, "ci": 120.0, "thorough": 600.0}  # seconds per check


class CheckTimeout(BaseException):
    """A check ran past its time limit (a BaseException, so that neither hypothesis nor the
    adapter's ``except Exception`` takes it for a failing example)."""


class Results(list):
    """The results of a run, in order; ``interrupted`` when Ctrl-C stopped it early."""

    interrupted: bool = False


@dataclass
class Result:
    """One cell of the table: a property on an algorithm in one dtype."""

    algorithm: str
    property: str
    dtype: str | None
    status: str
    examples: int = 0
    max_error: float | None = None
    seconds: float = 0.0
    reason: str = ""
    counterexample: str = ""
    expected: str = ""
    observed: str = ""
    statement: str = ""
    spec_line: str = ""
    measure: str = ""  # what max_error measures ("abs error", "rel. error", ...)
    max_ratio: float | None = None  # max_error's multiple of the tolerance (> 1 fails)
    shrunk_error: float | None = None  # error of the reported (shrunk) example
    shrunk_ratio: float | None = None
    largest_example: str = ""  # the example with the largest error, when not the shrunk one
    notes: list[str] = field(default_factory=list)  # what the check noted (distinct_notes)
    case: Any = field(default=None, repr=False, compare=False)  # the shrunk example itself

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "case"}
        for key in ("max_error", "max_ratio", "shrunk_error", "shrunk_ratio"):
            if out[key] is not None and not np.isfinite(out[key]):
                out[key] = str(out[key])
        return {k: v for k, v in out.items() if v not in ("", None, []) or k in
                ("algorithm", "property", "status", "examples", "max_error")}


MAX_NOTES = 5


def distinct_notes(notes: Iterable[str], limit: int = MAX_NOTES) -> list[str]:
    """The notes a check made over its examples (Context.notes: a skipped sub-case and why,
    a statistic), each once, in order; past ``limit`` one line says how many more."""
    seen: list[str] = []
    for note in notes:
        if note not in seen:
            seen.append(note)
    if len(seen) <= limit:
        return seen
    return seen[:limit] + [f"... and {len(seen) - limit} more notes"]


def select(checks: Iterable[Check], only: Iterable[str] | None) -> list[Check]:
    """Checks whose property id, property family or algorithm is named in ``only`` (an extra
    such as ``d_transformer_backward`` selects the checks that need it)."""
    checks = list(checks)
    if not only:
        return checks

    def names(c: Check) -> set[str]:
        return {c.property, c.property.split(".")[0], c.algorithm, *c.requires}

    wanted = set(only)
    known = set().union(*(names(c) for c in checks))
    unknown = sorted(wanted - known)
    if unknown:
        raise ConfigError(f"--only {' '.join(unknown)}: not a property id, property family or "
                          f"algorithm id of the suite; known: {', '.join(sorted(known))}")
    return [c for c in checks if wanted & names(c)]


def dtypes_for(check: Check, declared: tuple[str, ...]) -> list[str]:
    """The dtypes a check runs in: every declared one, the most precise, or a fixed one."""
    order = [d for d in DTYPES if d in declared]
    if check.dtypes == "all":
        return order
    if check.dtypes == "best":
        return order[:1]
    return [check.dtypes] if check.dtypes in declared else []


def missing(check: Check, bound: Bound) -> list[str]:
    return [name for name in (check.algorithm, *check.requires) if not bound.declares(name)]


def run(adapter: Any, profile: str | Profile = "ci", seed: int = 0,
        only: Iterable[str] | None = None, shrink: bool = True,
        progress: Callable[[Result, int, int], None] | None = None,
        timeout: float | None = None) -> Results:
    """Run every selected check; ``progress(result, done, total)`` after each one.

    ``timeout``: seconds per check (None: DEFAULT_TIMEOUT of the profile; 0: no limit). Ctrl-C
    stops the run between examples: the checks completed so far are returned, with
    ``interrupted`` set.
    """
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    limit = DEFAULT_TIMEOUT.get(prof.name, 120.0) if timeout is None else timeout
    bound = Bound(adapter)
    jobs: list[tuple[Check, str | None]] = []
    for c in select(all_checks(), only):
        kinds = dtypes_for(c, bound.dtypes)
        jobs += [(c, d) for d in kinds] if kinds else [(c, None)]
    results = Results()
    spec_coverage.start()  # which pseudocode lines the reference runs (conformance/coverage.py)
    try:
        for i, (c, dtype) in enumerate(jobs):
            result = run_check(c, bound, dtype, prof, seed, shrink, limit)
            results.append(result)
            if progress is not None:
                progress(result, i + 1, len(jobs))
    except KeyboardInterrupt:
        results.interrupted = True
    finally:
        spec_coverage.stop()
    return results


def run_check(check: Check, bound: Bound, dtype: str | None, profile: Profile, seed: int,
              shrink: bool = True, timeout: float | None = None) -> Result:
    """Run one check in one dtype; never raises for a property failure or a broken adapter.

    ``timeout`` (seconds, None or 0: none) bounds the whole check, shrinking included; past it
    the status is "timed out". In the main thread a SIGALRM timer interrupts the adapter
    between two Python bytecodes; elsewhere the check runs in a daemon thread that is abandoned
    when it overruns. (Neither can stop a single C call that never returns.)
    """
    result = Result(check.algorithm, check.property, dtype, "passed",
                    statement=statement(check.property), spec_line=spec_line(check))
    absent = missing(check, bound)
    if absent or dtype is None:
        result.status = "not covered"
        result.reason = (f"the adapter does not declare {', '.join(absent)}" if absent else
                         f"the adapter's dtypes {bound.dtypes} exclude {check.dtypes}")
        return result
    ctx = Context(bound, as_dtype(dtype), check.algorithm, profile)
    state: dict[str, Any] = {"examples": 0, "case": None, "largest": (-1.0, None)}

    def body(case):
        state["examples"] += 1
        state["case"] = case
        ctx.new_example()
        try:
            check.fn(ctx, case)
        finally:
            size = _size(ctx.example_ratio, ctx.example_error)
            if size > state["largest"][0]:
                state["largest"] = (size, case)

    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    test = given(check.strategy(check.algorithm, bound.constrain, as_dtype(dtype)))(body)
    for case in check.pinned(check.algorithm, as_dtype(dtype)):
        # a pinned config has the spec's default variants and sizes constrain did not see
        if _declared_like(case, bound) and _fits(case, bound):
            test = example(case)(test)
    test = settings(max_examples=max(1, profile.max_examples // check.cost), deadline=None,
                    database=None, phases=phases, verbosity=Verbosity.quiet,
                    suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
                    print_blob=False)(test)
    test = hypothesis_seed(zlib.crc32(f"{seed}/{check.key}/{dtype}".encode()))(test)
    start = time.perf_counter()
    try:
        _with_timeout(test, timeout)
    except PropertyViolation as exc:
        _failure(result, "failed", exc, state["case"])
        result.expected, result.observed = exc.expected, exc.observed
    except CheckTimeout:
        result.status = "timed out"
        result.reason = (f"the check ran past its time limit of {timeout:g} s (--timeout) "
                         f"after {state['examples']} examples")
        result.counterexample = repr(state["case"]) if state["case"] is not None else ""
        result.case = state["case"]
    except (AdapterError, Flaky) as exc:
        _failure(result, "error", exc, state["case"])
    except Exception as exc:  # a bug in a check must surface, not pass
        _failure(result, "error", exc, state["case"], prefix=f"{type(exc).__name__}: ")
    result.seconds = time.perf_counter() - start
    result.examples, result.max_error = state["examples"], ctx.max_error
    result.max_ratio, result.measure = ctx.max_ratio, ctx.measure or ""
    result.notes = distinct_notes(ctx.notes)
    if result.status in FAILING:
        result.shrunk_error, result.shrunk_ratio = ctx.example_error, ctx.example_ratio
        largest = state["largest"][1]
        if largest is not None and repr(largest) != result.counterexample:
            result.largest_example = repr(largest)
    return result


def _size(ratio: float | None, error: float | None) -> float:
    """How bad an example was: its multiple of the tolerance, else its raw error."""
    value = ratio if ratio is not None else error
    return -1.0 if value is None else float(value)


def _with_timeout(fn: Callable[[], None], seconds: float | None) -> None:
    """Call ``fn``; raise CheckTimeout if it runs past ``seconds`` (see run_check)."""
    if not seconds:
        fn()
        return
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        def expire(signum, frame):
            raise CheckTimeout()

        previous = signal.signal(signal.SIGALRM, expire)
        # Re-armed every second after the limit: an alarm that lands inside library code
        # which swallows exceptions (hypothesis's own bookkeeping, an adapter's broad except)
        # is raised again, so a check cannot outlive its limit by more than a moment.
        signal.setitimer(signal.ITIMER_REAL, seconds, min(1.0, seconds))
        try:
            fn()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        return
    outcome: list[BaseException | None] = []

    def target():
        try:
            fn()
            outcome.append(None)
        except BaseException as exc:  # handed to the caller's thread below
            outcome.append(exc)

    worker = threading.Thread(target=target, daemon=True, name="conformance-check")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise CheckTimeout()
    if outcome and outcome[0] is not None:
        raise outcome[0]


def _declared_like(case: Any, bound: Bound) -> bool:
    """The case's config (if any) has the variants the adapter declares."""
    config = getattr(case, "data", {}).get("config")
    return config is None or all(getattr(config, k, v) == v for k, v in bound.variants.items())


def _fits(case: Any, bound: Bound) -> bool:
    """A pinned case with an architecture config is one the adapter's ``constrain`` keeps as
    it is (config fields, batch size and lengths): a fixed-shape implementation is never
    handed a pinned shape it did not agree to."""
    from conformance.strategies import CONFIG_CLASSES

    config = getattr(case, "data", {}).get("config")
    arch = next((a for a, cls in CONFIG_CLASSES.items() if type(config) is cls), None)
    if arch is None:
        return True
    sizes = {f.name: getattr(config, f.name) for f in fields(config)} | dict(case.sizes)
    try:
        return bound.constrain(arch, dict(sizes)) == sizes
    except AdapterError:  # a constrain that rejects these sizes: the drawn cases will say so
        return False


def _failure(result: Result, status: str, exc: BaseException, case: Any, prefix: str = ""
             ) -> None:
    result.status = status
    result.reason = prefix + str(exc).strip()
    result.counterexample = repr(case) if case is not None else ""
    result.case = case


@lru_cache(maxsize=1)
def _statements() -> dict[str, str]:
    return {pid: p.statement for pid, p in load_properties().items()}


def statement(property_id: str) -> str:
    """The formal statement of a property (spec/properties.md)."""
    return _statements().get(property_id, "(not in spec/properties.md)")


@lru_cache(maxsize=1)
def _algorithms() -> dict[str, Any]:
    return {a.id: a for a in load_catalogue()}


def spec_line(check: Check) -> str:
    """'Algorithm N (title) Lk: text' for the pseudocode line the check's regex picks."""
    alg = _algorithms().get(check.algorithm)
    if alg is None:
        return f"{check.algorithm} (no spec file)"
    head = f"Algorithm {alg.number} ({alg.title}), {alg.path.name}"
    if check.line:
        for line in alg.pseudocode:
            if re.search(check.line, line.text):
                return f"{head} L{line.number}: {line.text}"
    return f"{head}: {alg.signature}"


def nothing_checked(results: Iterable[Result]) -> bool:
    """True when no check ran (every cell not covered, or no cell at all): exit status 3."""
    return all(r.status == "not covered" for r in results)


def summary(results: Iterable[Result]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for r in results:
        counts[r.status] += 1
    return counts
