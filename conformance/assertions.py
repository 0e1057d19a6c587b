"""Assertion helpers that explain what differs and where, and the per-dtype tolerances.

A failed comparison raises ``PropertyViolation`` with the largest absolute and relative error,
the index where it occurred (named axes such as ``b=0, t=2, i=1``), the observed and expected
values there, the tolerance and how many entries are out of it. The runner adds the property's
statement and the spec line at stake.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class Observer(Protocol):
    """Records each error a check measures (``conformance.registry.Context``): the error, its
    multiple of the tolerance (``ratio``, > 1 is a failure) and what it measures."""

    def observe(self, error: float, ratio: float | None = None,
                measure: str | None = None) -> None: ...


class PropertyViolation(AssertionError):
    """A law of spec/properties.md does not hold for an example."""

    def __init__(self, message: str, expected: str = "", observed: str = ""):
        super().__init__(message)
        self.expected = expected
        self.observed = observed


@dataclass(frozen=True)
class Tolerance:
    """Elementwise |observed - expected| <= atol * scale + rtol * |expected|.

    ``scale`` is 1 for forward values, as stated under reference.forward_agreement in
    spec/properties.md, and max(1, max |expected|) when ``scaled`` (gradients span many
    magnitudes; a whole gradient dict is scaled by its largest entry, see
    ``gradient_tolerance``). Gradients: float64 1e-9, float32 2e-3 relative to that scale --
    float32 back-propagation through ill-conditioned examples (a layer norm over d_e = 2 close
    entries, saturated attention, large steps of two layers) loses
    that much, and a wrong gradient is off by far more.
    """

    rtol: float
    atol: Any  # a float, or an array broadcast against expected (a per-entry bound)
    scaled: bool = False


# The float dtypes of the protocol, most precise first. bfloat16 is ml_dtypes' NumPy type.
DTYPES = ("float64", "float32", "float16", "bfloat16")


def as_dtype(dtype: Any) -> np.dtype:
    """The NumPy dtype of a name or dtype of DTYPES (bfloat16 imports ml_dtypes)."""
    if getattr(dtype, "name", dtype) == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype)


def is_float(dtype: Any) -> bool:
    """A floating dtype, bfloat16 included (NumPy does not count it as np.floating)."""
    dt = np.dtype(dtype)
    return bool(np.issubdtype(dt, np.floating)) or dt.name == "bfloat16"


def unit_roundoff(dtype: Any) -> float:
    """The machine epsilon of a float dtype of DTYPES: 2^-52, 2^-23, 2^-10, 2^-7."""
    return {"float64": 2.0 ** -52, "float32": 2.0 ** -23, "float16": 2.0 ** -10,
            "bfloat16": 2.0 ** -7}[as_dtype(dtype).name]


_FORWARD = {"float64": Tolerance(1e-10, 1e-10), "float32": Tolerance(1e-5, 1e-5),
            "float16": Tolerance(1e-2, 1e-2), "bfloat16": Tolerance(3e-2, 3e-2)}
_GRADIENT = {"float64": Tolerance(1e-9, 1e-9, True), "float32": Tolerance(2e-3, 2e-3, True),
             "float16": Tolerance(5e-2, 5e-2, True), "bfloat16": Tolerance(1e-1, 1e-1, True)}


def tolerance(dtype: Any, kind: str = "forward") -> Tolerance:
    """The tolerance of ``dtype`` (a NumPy dtype or its name) for "forward" or "gradient"."""
    table = _GRADIENT if kind == "gradient" else _FORWARD
    return table[as_dtype(dtype).name]


def gradient_tolerance(dtype: Any, expected: Mapping[str, Any], extra: float = 0.0
                       ) -> Tolerance:
    """The gradient tolerance for a whole gradient dict: atol scaled by the largest entry of
    ANY of its arrays (rounding errors flow between parameters), plus ``extra``."""
    tol = tolerance(dtype, "gradient")
    big = max((float(np.max(np.abs(v), initial=0.0)) for v in expected.values()), default=0.0)
    return Tolerance(tol.rtol, tol.atol * max(1.0, big) + extra)


def _index(idx: tuple[int, ...], axes: tuple[str, ...] | None) -> str:
    if axes and len(axes) == len(idx):
        return ", ".join(f"{a}={i}" for a, i in zip(axes, idx, strict=True))
    return ", ".join(str(i) for i in idx)


def assert_close(ctx: Observer, what: str, observed: Any, expected: Any, tol: Tolerance,
                 axes: tuple[str, ...] | None = None) -> None:
    """``observed`` equals ``expected`` within ``tol``; otherwise explain the largest miss."""
    obs = np.asarray(observed, dtype=np.float64)
    exp = np.asarray(expected, dtype=np.float64)
    if obs.shape != exp.shape:
        raise PropertyViolation(f"{what}: shape {obs.shape}, expected {exp.shape}",
                                expected=str(exp.shape), observed=str(obs.shape))
    if obs.size == 0:
        return
    assert_finite(ctx, what, obs, exp, axes)
    err = np.abs(obs - exp)
    scale = max(1.0, float(np.max(np.abs(exp)))) if tol.scaled else 1.0
    bound = tol.atol * scale + tol.rtol * np.abs(exp)
    ctx.observe(float(err.max()), float(np.max(err / bound)), "abs error")
    bad = err > bound
    if not bad.any():
        return
    excess = np.where(bad, err - bound, -np.inf)
    idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), err.shape))
    o, e = obs[idx], exp[idx]
    rel = abs(o - e) / abs(e) if e != 0 else np.inf
    atol = np.broadcast_to(tol.atol, err.shape)[idx]
    raise PropertyViolation(
        f"{what} differs at ({_index(idx, axes)}): observed {o:.10g}, expected {e:.10g} "
        f"(abs error {abs(o - e):.3g}, rel error {rel:.3g}, {err[idx] / bound[idx]:.3g} x "
        f"the tolerance there); largest abs error {float(err.max()):.3g}; tolerance atol "
        f"{atol:.3g}" + (" (from the example's conditioning)" if np.ndim(tol.atol) else "")
        + (f" x {scale:.3g}" if tol.scaled else "") + f" + rtol {tol.rtol:g} |expected|; "
        f"{int(bad.sum())} of {bad.size} entries out of tolerance",
        expected=summarise(exp), observed=summarise(obs))


def assert_exact(ctx: Observer, what: str, observed: Any, expected: Any,
                 axes: tuple[str, ...] | None = None) -> None:
    """Bitwise equality (lookups, token ids, and values the spec makes exactly zero)."""
    obs, exp = np.asarray(observed), np.asarray(expected)
    if obs.shape != exp.shape:
        raise PropertyViolation(f"{what}: shape {obs.shape}, expected {exp.shape}",
                                expected=str(exp.shape), observed=str(obs.shape))
    floating = is_float(obs.dtype) or is_float(exp.dtype)
    if floating and obs.size:
        assert_finite(ctx, what, obs, exp, axes)
    diff = obs != exp
    if floating:
        err = float(np.max(np.abs(obs.astype(np.float64) - exp), initial=0.0))
        ctx.observe(err, np.inf if err else 0.0, "abs error (exact)")
    if not diff.any():
        return
    idx = tuple(int(i) for i in np.argwhere(diff)[0])
    raise PropertyViolation(
        f"{what} differs at ({_index(idx, axes)}): observed {obs[idx]!r}, expected "
        f"{exp[idx]!r}; {int(diff.sum())} of {diff.size} entries differ (exact equality "
        "required)", expected=summarise(exp), observed=summarise(obs))


def nonfinite_message(what: str, obs: np.ndarray, exp: np.ndarray,
                      axes: tuple[str, ...] | None = None) -> str | None:
    """Why ``obs`` vs ``exp`` is no evidence of agreement (a NaN or an Inf on either side), or
    None when both are finite. NaN against NaN, or Inf against Inf, is never agreement: the
    laws of spec/properties.md are statements about finite values."""
    obs_bad, exp_bad = ~np.isfinite(obs), ~np.isfinite(exp)
    if obs.shape != exp.shape:
        exp_bad = np.broadcast_to(exp_bad, obs.shape)
    if not (obs_bad.any() or exp_bad.any()):
        return None
    both = obs_bad & exp_bad
    where = both if both.any() else (obs_bad if obs_bad.any() else exp_bad)
    idx = tuple(int(i) for i in np.argwhere(where)[0])
    o, e = obs[idx], np.broadcast_to(exp, obs.shape)[idx]
    counts = (f"{int(obs_bad.sum())} non-finite observed and {int(exp_bad.sum())} non-finite "
              f"expected of {obs.size} entries")
    if both.any():
        return (f"{what}: observed {o} and expected {e} at ({_index(idx, axes)}): both sides "
                f"are non-finite, which is no evidence of agreement (NaN vs NaN / Inf vs Inf "
                f"counts as a failure); {counts}")
    if obs_bad.any():
        return (f"{what}: observed {o} at ({_index(idx, axes)}) where the expected value is "
                f"finite ({e:.10g}); a non-finite value is a failure; {counts}")
    return (f"{what}: the expected value is non-finite ({e}) at ({_index(idx, axes)}) where "
            f"the observed one is {o:.10g}; an expected value computed by the adapter itself "
            f"(a second call) or by the reference must be finite; {counts}")


def assert_finite(ctx: Observer, what: str, observed: Any, expected: Any,
                  axes: tuple[str, ...] | None = None) -> None:
    """Fail (error recorded as inf) unless every entry of both sides is finite."""
    obs = np.asarray(observed, dtype=np.float64)
    exp = np.asarray(expected, dtype=np.float64)
    message = nonfinite_message(what, obs, exp, axes)
    if message is not None:
        ctx.observe(np.inf, np.inf, "non-finite")
        raise PropertyViolation(message, expected=summarise(exp), observed=summarise(obs))


def fail(what: str, expected: str = "", observed: str = "") -> None:
    """Raise a violation that is not an array comparison (e.g. a failed statistical test)."""
    raise PropertyViolation(what, expected=expected, observed=observed)


def summarise(a: Any, limit: int = 24) -> str:
    """Compact text of an array: the values when small, else shape and statistics."""
    a = np.asarray(a)
    if a.size <= limit:
        return np.array2string(a, precision=6, separator=", ", max_line_width=100)
    flat = a.astype(np.float64).ravel() if a.dtype != bool else a.ravel().astype(np.float64)
    finite = flat[np.isfinite(flat)]
    bad = flat.size - finite.size
    stats = (f"min {finite.min():.6g}, max {finite.max():.6g}, mean {finite.mean():.6g}"
             if finite.size else "no finite entry")
    return (f"array of shape {a.shape}: {stats}"
            + (f" ({bad} non-finite entries)" if bad else "") + "; first values "
            + np.array2string(flat[:8], precision=6, separator=", "))
