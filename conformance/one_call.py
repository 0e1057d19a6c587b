"""One call: ``check(my_attention, "attention")`` runs an algorithm's properties on a function.

The function (or a mapping ``{algorithm id: function}``) takes the arguments of the adapter
protocol's method of that name (conformance/adapter.py: ``attention(X, Z, params, mask)``, ...)
in the adapter layout -- ``(batch, length, features)``, parameters keyed by the spec's names in
the spec's orientation -- as NumPy arrays, torch tensors or JAX arrays (``arrays=``); the
conversion happens here, at the boundary, in both directions. A ``torch.nn.Module`` is checked
through ``mapping`` (canonical name -> state-dict key, optionally with a transform), its forward
called with the canonical parameters by ``torch.func.functional_call``.

Nothing here is a second runner: ``check`` synthesises an adapter object and hands it to
``conformance.runner.run``; the result is a ``Report`` that prints as a table (rich in a
terminal, HTML in a notebook) and raises ``ConformanceFailure`` on request.
"""

from __future__ import annotations

import html
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from conformance.adapter import ALGORITHMS, EXTRAS, Adapter
from conformance.report import STYLE, failure_text, sorted_results, summary_line
from conformance.runner import FAILING, Result, run, summary
from formal_transformers.errors import AdapterError, FormalTransformersError

ARRAYS = ("numpy", "torch", "jax")


class ConformanceFailure(FormalTransformersError, AssertionError):
    """A one-call check found a failed or errored property, or checked nothing at all."""

    def __init__(self, report: Report):
        self.report = report
        super().__init__(report.failure_message())


# -- the report ------------------------------------------------------------------------------
class Report:
    """The results of one ``check`` call (a list of conformance.runner.Result)."""

    def __init__(self, name: str, results: Sequence[Result]):
        self.name = name
        self.results = sorted_results(results)

    @property
    def counts(self) -> dict[str, int]:
        return summary(self.results)

    @property
    def checked(self) -> int:
        """How many checks ran at least one example (not "not covered")."""
        return sum(r.status != "not covered" for r in self.results)

    @property
    def passed(self) -> bool:
        """True when no check failed or errored and at least one check ran: an empty run is
        not a pass."""
        return self.checked > 0 and not self.failures()

    def __bool__(self) -> bool:
        return self.passed

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def failures(self) -> list[Result]:
        return [r for r in self.results if r.status in FAILING]

    def failure_message(self) -> str:
        if self.checked == 0:
            return (f"{self.name}: nothing was checked ({summary_line(self.results)}); "
                    "an empty run is not a pass")
        return "\n\n".join([f"{self.name}: {summary_line(self.results)}"]
                           + [failure_text(r) for r in self.failures()])

    def raise_for_failures(self) -> Report:
        """Raise ConformanceFailure unless the report passed; return the report otherwise."""
        if not self.passed:
            raise ConformanceFailure(self)
        return self

    # -- rendering ---------------------------------------------------------------------------
    def rows(self) -> list[tuple[str, str, str, str, str, str]]:
        return [(r.algorithm, r.property, r.dtype or "-", r.status,
                 "-" if r.status == "not covered" else str(r.examples),
                 "" if r.max_error is None else f"{r.max_error:.2e}") for r in self.results]

    HEADER = ("algorithm", "property", "dtype", "status", "examples", "max error")

    def __str__(self) -> str:
        lines = [f"{self.name}: {summary_line(self.results)}"]
        lines += ["  " + "  ".join(row) for row in self.rows()]
        lines += ["", *[failure_text(r) for r in self.failures()]] if self.failures() else []
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Report {self.name}: {summary_line(self.results)}>"

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"{self.name}: {summary_line(self.results)}", header_style="bold")
        for column in self.HEADER:
            table.add_column(column, no_wrap=column in ("algorithm", "property"))
        for row in self.rows():
            cells = list(row)
            cells[3] = f"[{STYLE[row[3]]}]{row[3]}[/{STYLE[row[3]]}]"
            table.add_row(*cells)
        return Group(table, *[Text(failure_text(r)) for r in self.failures()])

    def _repr_html_(self) -> str:
        colour = {"passed": "#1a7f37", "failed": "#cf222e", "error": "#8250df",
                  "timed out": "#bc4c00", "not covered": "#6e7781"}
        head = "".join(f"<th>{h}</th>" for h in self.HEADER)
        body = "".join(
            "<tr>" + "".join(
                f'<td style="color:{colour[row[3]]}">{html.escape(c)}</td>' if i == 3
                else f"<td>{html.escape(c)}</td>" for i, c in enumerate(row)) + "</tr>"
            for row in self.rows())
        details = "".join(f"<pre>{html.escape(failure_text(r))}</pre>" for r in self.failures())
        verdict = "passed" if self.passed else "FAILED"
        return (f"<div><p><b>{html.escape(self.name)}</b>: {verdict} -- "
                f"{html.escape(summary_line(self.results))}</p>"
                f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                f"{details}</div>")


# -- conversion at the boundary --------------------------------------------------------------
def _to_backend(value: Any, arrays: str) -> Any:
    if isinstance(value, np.ndarray):
        if arrays == "torch":
            import torch

            return torch.from_numpy(value.copy())
        if arrays == "jax":
            import jax.numpy as jnp

            return jnp.asarray(value)
        return value
    if isinstance(value, Mapping):
        return {k: _to_backend(v, arrays) for k, v in value.items()}
    return value


def to_numpy(value: Any) -> Any:
    """NumPy arrays from torch tensors / JAX arrays, through dicts, tuples and lists."""
    if isinstance(value, Mapping):
        return {k: to_numpy(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(to_numpy(v) for v in value)
    if type(value).__module__.startswith("torch"):
        return value.detach().cpu().numpy()
    if hasattr(value, "__array__") and not isinstance(value, np.ndarray):
        return np.asarray(value)
    return value


def _default_dtypes(arrays: str) -> tuple[str, ...]:
    if arrays == "jax":
        import jax

        return ("float64", "float32") if jax.config.jax_enable_x64 else ("float32",)
    return ("float64", "float32")


def _boundary(fn: Callable, arrays: str) -> Callable:
    def method(self, *args, **kwargs):
        out = fn(*(_to_backend(a, arrays) for a in args),
                 **{k: _to_backend(v, arrays) for k, v in kwargs.items()})
        return to_numpy(out)

    method.__name__ = getattr(fn, "__name__", "method")
    return method


# -- torch modules through a mapping ---------------------------------------------------------
Rule = str | tuple[str, str | Callable] | Callable[[Mapping[str, Any]], Mapping[str, Any]]

# The sizes a canonical parameter's shape fixes (spec orientation), per algorithm.
SIZE_DIMS: dict[str, dict[str, tuple[str | None, ...]]] = {
    "attention": {"W_q": ("d_attn", "d_x"), "W_k": ("d_attn", "d_z"), "W_v": ("d_out", "d_z")},
    "mhattention": {"W_q": ("H", "d_attn", "d_x"), "W_k": ("H", "d_attn", "d_z"),
                    "W_v": ("H", "d_mid", "d_z"), "W_o": ("d_out", None)},
    "layer_norm": {"gamma": ("d_e",)}, "rmsnorm": {"gamma": ("d_e",)},
    "mlp": {"W_mlp1": ("d_mlp", "d_e")}, "unembedding": {"W_u": ("N_V", "d_e")},
    "gated_mlp": {"W_up": ("d_mlp", "d_e")},
}


def _transform(tensor: Any, rule: str | Callable | None) -> Any:
    if rule is None:
        return tensor
    if rule == "T":
        return tensor.transpose(-1, -2)
    if rule == "heads":  # (H, a, ...) -> (H * a, ...): heads stacked on the output features
        return tensor.reshape(-1, *tensor.shape[2:])
    if callable(rule):
        return rule(tensor)
    raise AdapterError(f"mapping transform must be 'T', 'heads' or a callable, got {rule!r}")


def state_dict_from(params: Mapping[str, Any], mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The module's state dict from canonical torch tensors.

    ``mapping[name]`` is a state-dict key, or ``(key, transform)`` with transform "T" (the
    transpose of the last two axes: a weight stored (in, out)), "heads" (merge the head axis
    into the rows) or a callable on the tensor. Several names on one key are concatenated along
    axis 0 in the mapping's order (a fused QKV projection).
    """
    import torch

    parts: dict[str, list[Any]] = {}
    for name, rule in mapping.items():
        if name not in params:
            continue  # an optional parameter the case does not have
        key, how = (rule, None) if isinstance(rule, str) else rule
        parts.setdefault(key, []).append(_transform(params[name], how))
    return {k: v[0] if len(v) == 1 else torch.cat(v, dim=0) for k, v in parts.items()}


def module_function(module: Any, algorithm: str, mapping: Any,
                    call: Callable | None = None) -> Callable:
    """A protocol function over torch tensors that runs ``module`` with the canonical params.

    ``call(forward, *inputs)`` adapts the argument order (default: ``forward(*inputs)``, with
    ``mask`` passed by keyword where the protocol has one); ``forward`` is the module's forward
    with the canonical parameters in place (torch.func.functional_call).
    """
    from torch.func import functional_call

    names = list(inspect.signature(getattr(Adapter, algorithm)).parameters)[1:]
    if "params" not in names:
        raise AdapterError(f"{algorithm} takes no parameters; check the function itself")

    def fn(*args, **kwargs):
        bound = dict(zip(names, args, strict=False)) | kwargs
        params = bound.pop("params")
        sd = mapping(params) if callable(mapping) else state_dict_from(params, mapping)

        def forward(*a, **k):
            return functional_call(module, sd, a, k, strict=False)

        rest = [bound.pop(n) for n in names if n in bound and n != "mask"]
        if call is not None:
            return call(forward, *rest, **bound)
        return forward(*rest, **bound)

    return fn


def module_sizes(module: Any, algorithm: str, mapping: Any) -> dict[str, int]:
    """Sizes fixed by the module's parameter shapes (names mapped without transform or "T")."""
    if callable(mapping):
        return {}
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    keys = [r if isinstance(r, str) else r[0] for r in mapping.values()]
    sizes: dict[str, int] = {}
    for name, dims in SIZE_DIMS.get(algorithm, {}).items():
        rule = mapping.get(name)
        if rule is None:
            continue
        key, how = (rule, None) if isinstance(rule, str) else rule
        if key not in shapes or keys.count(key) > 1 or how not in (None, "T"):
            continue
        shape = shapes[key][::-1] if how == "T" else shapes[key]
        if len(shape) == len(dims):
            sizes |= {d: int(n) for d, n in zip(dims, shape, strict=True) if d is not None}
    return sizes


def _is_torch_module(obj: Any) -> bool:
    torch = sys.modules.get("torch")  # a module object implies torch is imported already
    return torch is not None and isinstance(obj, torch.nn.Module)


# -- the adapter and the call -----------------------------------------------------------------
def make_adapter(functions: Mapping[str, Callable], *, name: str, arrays: str = "numpy",
                 dtypes: Sequence[str] | None = None, sizes: Mapping[str, Any] | None = None,
                 constrain: Callable | None = None,
                 variants: Mapping[str, Any] | None = None) -> Adapter:
    """An adapter object whose methods are ``functions`` behind the array conversion.

    ``sizes`` fixes drawn sizes/conventions (e.g. ``{"d_x": 8}``) wherever an algorithm draws
    them; ``constrain(algorithm, sizes)`` is the protocol's hook for anything subtler;
    ``variants`` are the declared variants (conformance/adapter.py, e.g. ``{"bias": False}``).
    """
    if arrays not in ARRAYS:
        raise AdapterError(f"arrays must be one of {ARRAYS}, got {arrays!r}")
    unknown = [a for a in functions if a not in ALGORITHMS + EXTRAS]
    if unknown:
        raise AdapterError(f"unknown algorithm id(s) {unknown}; known: "
                           f"{', '.join(ALGORITHMS + EXTRAS)}")
    fixed = dict(sizes or {})
    from conformance.adapter import _check_variants

    _check_variants(f"check({name})", variants)

    def constrain_method(self, algorithm, drawn):
        drawn = {k: fixed.get(k, v) for k, v in drawn.items()}
        return constrain(algorithm, drawn) if constrain is not None else drawn

    body: dict[str, Any] = {"name": name, "algorithms": tuple(functions),
                            "dtypes": tuple(dtypes or _default_dtypes(arrays)),
                            "constrain": constrain_method, "variants": dict(variants or {})}
    body |= {alg: _boundary(fn, arrays) for alg, fn in functions.items()}
    return type("OneCallAdapter", (Adapter,), body)()


def adapter_for(target: Any, algorithm: str | Iterable[str] | None = None, *,
                arrays: str | None = None, mapping: Any = None, call: Callable | None = None,
                dtypes: Sequence[str] | None = None, sizes: Mapping[str, Any] | None = None,
                constrain: Callable | None = None, name: str | None = None,
                variants: Mapping[str, Any] | None = None) -> Adapter:
    """The adapter object ``check`` synthesises for ``target`` (arguments as for ``check``)."""
    if isinstance(mapping, (str, os.PathLike)):
        return _mapped(target, algorithm, mapping)
    if isinstance(target, Mapping):
        functions = dict(target)
    else:
        if algorithm is None:
            raise AdapterError("check(fn, algorithm): name the algorithm the function "
                               "implements, e.g. check(fn, 'attention')")
        algs = [algorithm] if isinstance(algorithm, str) else list(algorithm)
        if len(algs) != 1:
            raise AdapterError("one function implements one algorithm; pass a mapping "
                               "{algorithm id: function} for several")
        functions = {algs[0]: target}
    fixed = dict(sizes or {})
    if _is_torch_module(target):
        if mapping is None:
            raise AdapterError("a torch module needs mapping={canonical name: state-dict key "
                               "or (key, transform)} to receive the canonical parameters")
        alg = next(iter(functions))
        fixed = module_sizes(target, alg, mapping) | fixed
        functions = {alg: module_function(target, alg, mapping, call)}
        arrays = arrays or "torch"
    label = name or getattr(target, "__name__", type(target).__name__)
    return make_adapter(functions, name=label, arrays=arrays or "numpy", dtypes=dtypes,
                        sizes=fixed, constrain=constrain, variants=variants)


def _mapped(target: Any, algorithm: str | Iterable[str] | None, mapping: str | os.PathLike
            ) -> Adapter:
    """A mapping *file* (``verify --map``'s TOML, conformance/adapters/mapped.py): ``target``
    is the factory of the user's modern-decoder nn.Module (a class or function, or its
    "module:Name"; None takes the file's ``factory``), built afresh for every drawn config."""
    from conformance.adapter import _checked, load_adapter
    from conformance.adapters.mapped import MappedModule

    algs = [] if algorithm is None else [algorithm] if isinstance(algorithm, str) \
        else list(algorithm)
    wrong = sorted(set(algs) - set(MappedModule.algorithms))
    if wrong:
        raise AdapterError(f"a mapping file maps the modern decoder (algorithm "
                           f"'modern_d_transformer'), not {wrong[0]!r}")
    if target is None or isinstance(target, str):  # "module:Name", or the file's factory
        return load_adapter(target, os.fspath(mapping))
    if _is_torch_module(target):
        raise AdapterError("with a mapping file, pass the module's class or factory (the suite "
                           "builds one per drawn config), not an instance; an instance takes "
                           "mapping={canonical name: state-dict key}")
    if not callable(target):
        raise AdapterError(f"the factory of a mapping file must be callable, got "
                           f"{type(target).__name__}")
    return _checked(MappedModule(target, os.fspath(mapping)))


def check(target: Any, algorithm: str | Iterable[str] | None = None, *,
          arrays: str | None = None, mapping: Any = None, call: Callable | None = None,
          dtypes: Sequence[str] | None = None, sizes: Mapping[str, Any] | None = None,
          constrain: Callable | None = None, profile: str = "quick", seed: int = 0,
          only: Iterable[str] | None = None, shrink: bool = True, name: str | None = None,
          raise_on_failure: bool = False, variants: Mapping[str, Any] | None = None) -> Report:
    """Run the properties of ``algorithm`` on ``target`` and return a Report.

    ``target``: a function with the protocol method's signature (conformance/adapter.py), a
    mapping ``{algorithm id: function}``, or a ``torch.nn.Module`` with ``mapping`` (canonical
    name -> state-dict key or (key, "T" | "heads" | callable)), optional ``call``. With
    ``mapping`` a path to a TOML mapping file (``verify --map``'s), ``target`` is the factory
    of a modern-decoder module (its class, function or "module:Name"; None: the file's). ``arrays``:
    what the function takes -- "numpy" (default), "torch" (default for a module) or "jax".
    ``sizes`` fixes drawn sizes (a module's are read from its parameters where the mapping
    allows). ``only`` narrows to property ids or families (``["mask"]``); ``profile`` is the
    runner's (quick / ci / thorough). With ``raise_on_failure`` a failure raises
    ConformanceFailure. ``variants`` declares the variants the target implements (e.g.
    ``{"bias": False}`` for a bias-free attention, layer norm or MLP).
    """
    adapter = adapter_for(target, algorithm, arrays=arrays, mapping=mapping, call=call,
                          dtypes=dtypes, sizes=sizes, constrain=constrain, name=name,
                          variants=variants)
    declared = adapter.algorithms
    selected = list(only) if only else list(declared)
    results = [r for r in run(adapter, profile, seed, selected, shrink=shrink)
               if r.algorithm in declared]
    report = Report(adapter.name, results)
    return report.raise_for_failures() if raise_on_failure else report
