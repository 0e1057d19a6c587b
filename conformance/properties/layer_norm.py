"""layer_norm.*: invariance to affine rescaling, and standardisation (spec/properties.md).
Both are exact laws only with eps = 0, so they are tested with eps = 0."""

from __future__ import annotations

import numpy as np

from conformance import calls
from conformance.assertions import assert_close, tolerance
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
    tol = tolerance(ctx.dtype)
    if ctx.dtype != np.float64:  # rounding a*e + c in the dtype perturbs the input itself
        tol = type(tol)(tol.rtol * 20, tol.atol * 20)
    assert_close(ctx, "layer_norm(a X + c) vs layer_norm(X), eps = 0",
                 ctx.adapter.layer_norm(X2, params, 0.0), ctx.adapter.layer_norm(X, params, 0.0),
                 tol, calls.AXES["layer_norm"])


@check("layer_norm.standardised", ("layer_norm",),
       lambda a, c, d: layer_norm_cases(c, d, eps_zero=True, identity_affine=True),
       line=r"v \\gets")
def standardised(ctx, case):
    """With gamma = 1, beta = 0, eps = 0 each output column has mean 0 and biased variance 1."""
    Y = ctx.adapter.layer_norm(case["X"], case["params"], 0.0).astype(np.float64)
    tol = tolerance(ctx.dtype)
    assert_close(ctx, "mean over d_e", Y.mean(axis=-1), np.zeros(Y.shape[:2]), tol, ("b", "t"))
    assert_close(ctx, "biased variance over d_e", Y.var(axis=-1), np.ones(Y.shape[:2]), tol,
                 ("b", "t"))
