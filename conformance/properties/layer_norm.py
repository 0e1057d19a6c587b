"""layer_norm.*: invariance to affine rescaling, and standardisation (spec/properties.md).
Both are exact laws only with eps = 0 (and var(e) > 0), so they are tested with eps = 0.

Tolerances follow the example's conditioning: rounding the entries of e to the dtype moves
(e - m) by about u max|e|, i.e. the standardised output by u max|e| / sigma, so each position's
atol is the dtype's atol times kappa = max|e| / sigma (>= 1/2). Two close entries far from zero
(sigma << |m|) make every correct float32 layer norm lose that much accuracy."""

from __future__ import annotations

import numpy as np

from conformance import calls
from conformance.assertions import Tolerance, assert_close, tolerance
from conformance.registry import check
from conformance.strategies import layer_norm_cases


@check("layer_norm.affine_invariance", ("layer_norm",),
       lambda a, c, d: layer_norm_cases(c, d, eps_zero=True), line=r"m \\gets|v \\gets")
def affine_invariance(ctx, case):
    """layer_norm(a e + c 1) = layer_norm(e) for a > 0, c real (one pair per position)."""
    X, params = case["X"], case["params"]
    rng = case.rng()
    a = np.exp(rng.uniform(-1.5, 1.5, X.shape[:2] + (1,)))
    c = 3.0 * rng.standard_normal(X.shape[:2] + (1,))
    X2 = (a * X.astype(np.float64) + c).astype(ctx.dtype)
    # rounding a e + c in the dtype perturbs the input itself: both conditionings count
    tol = conditioned(tolerance(ctx.dtype), np.maximum(kappa(X), kappa(X2)), 4.0)
    assert_close(ctx, "layer_norm(a X + c) vs layer_norm(X), eps = 0",
                 ctx.adapter.layer_norm(X2, params, 0.0), ctx.adapter.layer_norm(X, params, 0.0),
                 tol, calls.AXES["layer_norm"])


@check("layer_norm.standardised", ("layer_norm",),
       lambda a, c, d: layer_norm_cases(c, d, eps_zero=True, identity_affine=True),
       line=r"v \\gets")
def standardised(ctx, case):
    """With gamma = 1, beta = 0, eps = 0 each output column has mean 0 and biased variance 1."""
    Y = ctx.adapter.layer_norm(case["X"], case["params"], 0.0).astype(np.float64)
    k = kappa(case["X"])[..., 0]
    tol = conditioned(tolerance(ctx.dtype), k, 1.0)
    assert_close(ctx, "mean over d_e", Y.mean(axis=-1), np.zeros(Y.shape[:2]), tol, ("b", "t"))
    assert_close(ctx, "biased variance over d_e", Y.var(axis=-1), np.ones(Y.shape[:2]),
                 conditioned(tolerance(ctx.dtype), k, 2.0), ("b", "t"))


def kappa(X: np.ndarray) -> np.ndarray:
    """max|e| / sigma of every column e (positions on the last-but-one axis), keepdims."""
    e = X.astype(np.float64)
    sigma = e.std(axis=-1, keepdims=True)
    return np.abs(e).max(axis=-1, keepdims=True) / np.maximum(sigma, 1e-300)


def conditioned(tol: Tolerance, k: np.ndarray, factor: float) -> Tolerance:
    """``tol`` with atol times factor * max(1, kappa), per position."""
    return Tolerance(tol.rtol, tol.atol * factor * np.maximum(1.0, k))
