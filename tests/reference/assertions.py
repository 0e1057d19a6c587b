"""Comparisons that explain themselves, and central finite differences (STYLE.md, item 10).

A failed check names the array, the largest absolute error and its index, the two values
there, the tolerance and the spec line at stake.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np


def assert_allclose(actual: np.ndarray, expected: np.ndarray, what: str, spec: str,
                    rtol: float = 1e-12, atol: float = 1e-12) -> None:
    """Elementwise |actual - expected| <= atol + rtol |expected|, explained on failure."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (
        f"{what}: shape {actual.shape}, expected {expected.shape} ({spec})")
    if actual.size == 0:
        return
    err = np.abs(actual - expected)
    bound = atol + rtol * np.abs(expected)
    if np.all(err <= bound):
        return
    i = np.unravel_index(int(np.argmax(err - bound)), err.shape)
    where = tuple(int(k) for k in i)
    raise AssertionError(
        f"{what} differs ({spec}): largest abs error {err.max():.3e}; at index {where} "
        f"got {actual[i]!r}, expected {expected[i]!r}; tolerance atol={atol:g}, rtol={rtol:g}; "
        f"{int(np.sum(err > bound))} of {err.size} entries out of tolerance")


def assert_gradients_close(actual: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray],
                           what: str, spec: str, rtol: float) -> None:
    """Every gradient of ``expected`` is in ``actual`` and agrees relative to the gradients'
    scale: max |actual - expected| <= rtol * max(1e-8, largest |expected| over all arrays).

    One scale for all arrays, because a gradient that is exactly zero in theory (b_k of
    attention) is ~1e-10 of noise under finite differences and has no relative error of its own.
    """
    missing = sorted(set(expected) - set(actual))
    assert not missing, f"{what}: backward returned {sorted(actual)}, missing {missing}"
    scale = max([1e-8] + [float(np.max(np.abs(g), initial=0.0)) for g in expected.values()])
    for name, g in expected.items():
        assert_allclose(actual[name], g, f"{what}: gradient of {name}", spec,
                        rtol=0.0, atol=rtol * scale)


def finite_difference_gradients(f: Callable[[], float], arrays: Mapping[str, np.ndarray],
                                h: float = 1e-6) -> dict[str, np.ndarray]:
    """Central differences (f(a + h e_i) - f(a - h e_i)) / 2h of the scalar ``f()`` in every
    entry of every array; the arrays are perturbed in place and restored."""
    grads = {}
    for name, a in arrays.items():
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            old = a[i]
            a[i] = old + h
            f_plus = f()
            a[i] = old - h
            f_minus = f()
            a[i] = old
            g[i] = (f_plus - f_minus) / (2 * h)
        grads[name] = g
    return grads
