"""Run the registered checks against an adapter and collect a report (behind ``verify``).

Each check runs as a hypothesis test with the profile's example budget and a seed derived from
the run's seed and the check's key, so a run is reproducible. A failing example is shrunk
(unless ``shrink=False``) and reported with the property's statement, the spec line at stake,
and expected vs observed.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, example, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky

from conformance import coverage as spec_coverage
from conformance.assertions import PropertyViolation
from conformance.bound import Bound
from conformance.registry import PROFILES, Check, Context, Profile, all_checks
from formal_transformers.errors import AdapterError, ConfigError
from formal_transformers.spec import load_catalogue, load_properties

STATUSES = ("passed", "failed", "error", "not covered")


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

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if out["max_error"] is not None and not np.isfinite(out["max_error"]):
            out["max_error"] = str(out["max_error"])
        return {k: v for k, v in out.items() if v not in ("", None) or k in
                ("algorithm", "property", "status", "examples", "max_error")}


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
    order = [d for d in ("float64", "float32", "float16") if d in declared]
    if check.dtypes == "all":
        return order
    if check.dtypes == "best":
        return order[:1]
    return [check.dtypes] if check.dtypes in declared else []


def missing(check: Check, bound: Bound) -> list[str]:
    return [name for name in (check.algorithm, *check.requires) if not bound.declares(name)]


def run(adapter: Any, profile: str | Profile = "ci", seed: int = 0,
        only: Iterable[str] | None = None, shrink: bool = True,
        progress: Callable[[Result, int, int], None] | None = None) -> list[Result]:
    """Run every selected check; ``progress(result, done, total)`` after each one."""
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    bound = Bound(adapter)
    jobs: list[tuple[Check, str | None]] = []
    for c in select(all_checks(), only):
        kinds = dtypes_for(c, bound.dtypes)
        jobs += [(c, d) for d in kinds] if kinds else [(c, None)]
    results = []
    spec_coverage.start()  # which pseudocode lines the reference runs (conformance/coverage.py)
    for i, (c, dtype) in enumerate(jobs):
        result = run_check(c, bound, dtype, prof, seed, shrink)
        results.append(result)
        if progress is not None:
            progress(result, i + 1, len(jobs))
    spec_coverage.stop()
    return results


def run_check(check: Check, bound: Bound, dtype: str | None, profile: Profile, seed: int,
              shrink: bool = True) -> Result:
    """Run one check in one dtype; never raises for a property failure or a broken adapter."""
    result = Result(check.algorithm, check.property, dtype, "passed",
                    statement=statement(check.property), spec_line=spec_line(check))
    absent = missing(check, bound)
    if absent or dtype is None:
        result.status = "not covered"
        result.reason = (f"the adapter does not declare {', '.join(absent)}" if absent else
                         f"the adapter's dtypes {bound.dtypes} exclude {check.dtypes}")
        return result
    ctx = Context(bound, np.dtype(dtype), check.algorithm, profile)
    state: dict[str, Any] = {"examples": 0, "case": None}

    def body(case):
        state["examples"] += 1
        state["case"] = case
        check.fn(ctx, case)

    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    test = given(check.strategy(check.algorithm, bound.constrain, np.dtype(dtype)))(body)
    for case in check.pinned(check.algorithm, np.dtype(dtype)):
        test = example(case)(test)
    test = settings(max_examples=max(1, profile.max_examples // check.cost), deadline=None,
                    database=None, phases=phases, verbosity=Verbosity.quiet,
                    suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
                    print_blob=False)(test)
    test = hypothesis_seed(zlib.crc32(f"{seed}/{check.key}/{dtype}".encode()))(test)
    start = time.perf_counter()
    try:
        test()
    except PropertyViolation as exc:
        _failure(result, "failed", exc, state["case"])
        result.expected, result.observed = exc.expected, exc.observed
    except (AdapterError, Flaky) as exc:
        _failure(result, "error", exc, state["case"])
    except Exception as exc:  # a bug in a check must surface, not pass
        _failure(result, "error", exc, state["case"], prefix=f"{type(exc).__name__}: ")
    result.seconds = time.perf_counter() - start
    result.examples, result.max_error = state["examples"], ctx.max_error
    return result


def _failure(result: Result, status: str, exc: BaseException, case: Any, prefix: str = ""
             ) -> None:
    result.status = status
    result.reason = prefix + str(exc).strip()
    result.counterexample = repr(case) if case is not None else ""


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


def summary(results: Iterable[Result]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for r in results:
        counts[r.status] += 1
    return counts
