"""The registry of checks: which property is tested on which algorithm, and how.

A *check* is one (algorithm, property) cell of the verification table: a hypothesis strategy
for its examples and a function that asserts the law on one example. Property modules
(``conformance/properties/<family>.py``) register checks with the ``check`` decorator; another
package extends the suite the same way (``register`` a ``Check``) -- for instance the memory
accounting issue adds its byte-count laws beside ``memory.parameter_count``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from conformance.assertions import is_float
from conformance.bound import Bound

_CHECKS: list[Check] = []
PROPERTY_MODULES = ("reference", "permutation", "causal", "memory", "mask", "batch", "softmax",
                    "layer_norm", "sampling", "kv_cache", "structure", "training", "gradient",
                    "rope", "rmsnorm", "gated_mlp", "positions", "attention_variants",
                    "vision", "truncation", "speculative", "modern_decoder")


@dataclass(frozen=True)
class Profile:
    """How hard to look: examples per check and draws per sampling test."""

    name: str
    max_examples: int
    draws: int


PROFILES = {"quick": Profile("quick", 4, 1000), "ci": Profile("ci", 25, 2000),
            "thorough": Profile("thorough", 100, 8000)}


@dataclass(frozen=True)
class Check:
    """One cell of the table: ``property`` (an id of spec/properties.md) on ``algorithm``.

    ``strategy(algorithm, constrain, dtype)`` draws examples; ``fn(ctx, case)`` asserts the law.
    ``requires`` lists further adapter methods the law needs; ``dtypes`` is "all" (each declared
    dtype), "best" (the most precise declared) or a dtype name; ``line`` is a regex picking the
    pseudocode line at stake in ``algorithm``'s spec; ``cost`` divides the example budget;
    ``pinned(algorithm, dtype)`` returns cases always run first (counterexamples once found).
    """

    property: str
    algorithm: str
    fn: Callable[[Context, Any], None]
    strategy: Callable[[str, Callable, Any], Any]
    requires: tuple[str, ...] = ()
    dtypes: str = "best"
    line: str | None = None
    cost: int = 1
    pinned: Callable[[str, Any], list] = lambda algorithm, dtype: []

    @property
    def key(self) -> str:
        return f"{self.algorithm}/{self.property}"


@dataclass
class Context:
    """What a check function gets besides its example: the adapter, dtype and a reference."""

    adapter: Bound
    dtype: np.dtype
    algorithm: str
    profile: Profile
    max_error: float | None = None
    notes: list[str] = field(default_factory=list)
    max_ratio: float | None = None
    measure: str | None = None
    example_error: float | None = None
    example_ratio: float | None = None

    def observe(self, error: float, ratio: float | None = None, measure: str | None = None
                ) -> None:
        """Record an error seen: its size, its multiple of the tolerance (``ratio`` > 1 fails)
        and what it measures ("abs error", "rel. error", ...). The report shows the largest
        of the run and of the last (shrunk) example; a NaN counts as an infinite error."""
        error = _no_nan(error)
        self.max_error = _larger(self.max_error, error)
        self.example_error = _larger(self.example_error, error)
        if ratio is not None:
            self.max_ratio = _larger(self.max_ratio, _no_nan(ratio))
            self.example_ratio = _larger(self.example_ratio, _no_nan(ratio))
        if measure is not None and self.measure in (None, "non-finite"):
            self.measure = measure

    def new_example(self) -> None:
        """Forget the errors of the previous example (the run's maxima are kept)."""
        self.example_error = self.example_ratio = None

    @property
    def reference(self) -> Bound:
        """reference_numpy behind the adapter protocol (float64 in, float64 out)."""
        return _reference()


def _no_nan(x: float) -> float:
    x = float(x)
    return np.inf if np.isnan(x) else x


def _larger(a: float | None, b: float) -> float:
    return b if a is None else max(a, b)


@lru_cache(maxsize=1)
def _reference() -> Bound:
    from conformance.adapters.reference import ReferenceAdapter

    return Bound(ReferenceAdapter())


def up(value: Any) -> Any:
    """float64 copy of an array or of every array of a dict (for the reference)."""
    if isinstance(value, np.ndarray):
        return value.astype(np.float64) if is_float(value.dtype) else value
    if isinstance(value, dict):
        return {k: up(v) for k, v in value.items()}
    return value


def register(check: Check) -> Check:
    """Add a check to the suite (an extension point for other packages)."""
    if any(c.key == check.key for c in _CHECKS):
        raise ValueError(f"check {check.key} is registered twice")
    _CHECKS.append(check)
    return check


def check(property: str, algorithms: Iterable[str], strategy: Callable, *,
          requires: Callable[[str], tuple[str, ...]] | tuple[str, ...] = (),
          dtypes: str = "best", line: str | None = None, cost: int = 1,
          pinned: Callable[[str, Any], list] | None = None):
    """Decorator: register ``fn(ctx, case)`` as the check of ``property`` on each algorithm.

    ``requires`` may be a function of the algorithm id (e.g. ``lambda a: (a + "_backward",)``).
    """
    def deco(fn):
        for alg in algorithms:
            needs = requires(alg) if callable(requires) else tuple(requires)
            register(Check(property, alg, fn, strategy, needs, dtypes, line, cost,
                           pinned or (lambda algorithm, dtype: [])))
        return fn
    return deco


def all_checks() -> list[Check]:
    """Every registered check, after importing the property modules.

    A name in PROPERTY_MODULES without a dot is a module of conformance/properties/; a dotted
    name is imported as it is, so a module elsewhere can register its checks here.
    """
    for name in PROPERTY_MODULES:
        importlib.import_module(name if "." in name else f"conformance.properties.{name}")
    return list(_CHECKS)
