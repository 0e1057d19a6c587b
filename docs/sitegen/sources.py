"""The real source of the functions that implement each algorithm.

``reference_numpy.REGISTRY`` and ``torch_impl.REGISTRY`` map algorithm ids to functions; the
site shows each function's source as it stands in its file, with its true line numbers, so
the page can never drift from the code.
"""

from __future__ import annotations

import importlib
import inspect
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Source:
    """``text`` of a function, found in ``path`` (relative to the repo) from ``first_line``."""

    path: str
    first_line: int
    text: str
    qualname: str


def function_source(fn: Callable, root: Path) -> Source:
    """The source of ``fn`` (decorators unwrapped); TypeError/OSError if it has none."""
    fn = inspect.unwrap(fn)
    lines, first = inspect.getsourcelines(fn)
    path = Path(inspect.getsourcefile(fn) or "").resolve()
    try:
        shown = path.relative_to(root.resolve()).as_posix()
    except ValueError:
        shown = path.name
    name = f"{fn.__module__}.{getattr(fn, '__qualname__', fn.__name__)}"
    return Source(shown, first, textwrap.dedent("".join(lines)), name)


def load_registry(module: str) -> tuple[Mapping[str, Callable], list[str]]:
    """``<module>.REGISTRY`` and the problems met (an import failure, a non-mapping)."""
    try:
        registry = importlib.import_module(module).REGISTRY
    except Exception as exc:  # any import-time failure of the package is a build problem
        return {}, [f"cannot import {module}.REGISTRY: {type(exc).__name__}: {exc}"]
    if not isinstance(registry, Mapping):
        return {}, [f"{module}.REGISTRY is a {type(registry).__name__}, not a mapping"]
    return registry, []


def registry_sources(module: str, root: Path) -> tuple[dict[str, Source], list[str]]:
    """Sources of every function in ``<module>.REGISTRY``, and the problems met.

    A module that cannot be imported or has no REGISTRY mapping, and an entry whose source
    cannot be read, are reported as problems (the caller logs them as build warnings).
    """
    registry, problems = load_registry(module)
    if problems:
        return {}, problems
    sources = {}
    for alg_id, fn in registry.items():
        try:
            sources[alg_id] = function_source(fn, root)
        except (TypeError, OSError) as exc:
            problems.append(f"{module}.REGISTRY[{alg_id!r}]: source not readable ({exc})")
    return sources, problems
