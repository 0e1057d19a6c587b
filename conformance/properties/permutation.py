"""permutation.*: equivariance without positions, and cross-attention's invariance to the
order of its context (spec/properties.md)."""

from __future__ import annotations

import numpy as np

from conformance import calls
from conformance.assertions import assert_close, tolerance
from conformance.registry import check
from conformance.strategies import architecture_cases, attention_cases, basic_attention_cases


def permutation(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random permutation of range(n), never the identity when n >= 2."""
    perm = rng.permutation(n)
    if n >= 2 and (perm == np.arange(n)).all():
        perm = np.roll(perm, 1)
    return perm


def _self_attention(alg, constrain, dtype):
    return attention_cases(constrain, dtype, alg == "mhattention", mask="none",
                           self_attention=True)


@check("permutation.equivariance", ("attention", "mhattention"), _self_attention,
       line=r"Q \\gets|Y\^h")
def self_attention_equivariance(ctx, case):
    """Self-attention without mask: f(X Pi) = f(X) Pi (columns = positions)."""
    X, params = case["X"], case["params"]
    perm = permutation(case.rng(), X.shape[1])
    f = getattr(ctx.adapter, ctx.algorithm)
    out = f(X, X, params)
    Xp = X[:, perm]
    assert_close(ctx, f"{ctx.algorithm}(X Pi, X Pi) vs {ctx.algorithm}(X, X) Pi "
                 f"(perm {perm.tolist()})", f(Xp, Xp, params), out[:, perm],
                 tolerance(ctx.dtype), calls.AXES[ctx.algorithm])


@check("permutation.equivariance", ("e_transformer",),
       lambda a, c, d: architecture_cases(c, d, a, zero_positions=True), line=r"W_p", cost=2)
def encoder_equivariance(ctx, case):
    """E transformer with W_p = 0: permuting the tokens permutes the output columns."""
    x, params, config = case["x"], case["params"], case["config"]
    perm = permutation(case.rng(), x.shape[1])
    out = ctx.adapter.e_transformer(x, params, config)
    assert_close(ctx, f"P(x Pi) vs P(x) Pi with W_p = 0 (perm {perm.tolist()})",
                 ctx.adapter.e_transformer(x[:, perm], params, config), out[:, perm],
                 tolerance(ctx.dtype), calls.AXES["e_transformer"])


def _cross(alg, constrain, dtype):
    if alg == "basic_attention":
        return basic_attention_cases(constrain, dtype)
    return attention_cases(constrain, dtype, alg == "mhattention", mask="none")


@check("permutation.cross_invariance", ("basic_attention", "attention", "mhattention"), _cross,
       line=r"softmax|alpha")
def cross_invariance(ctx, case):
    """Without a mask, permuting the context's positions leaves the output unchanged."""
    params, alg = case["params"], ctx.algorithm
    if alg == "basic_attention":
        e, E = case["e"], case["E_ctx"]
        perm = permutation(case.rng(), E.shape[1])
        got, want = ctx.adapter.basic_attention(e, E[:, perm], params), \
            ctx.adapter.basic_attention(e, E, params)
    else:
        X, Z = case["X"], case["Z"]
        perm = permutation(case.rng(), Z.shape[1])
        f = getattr(ctx.adapter, alg)
        got, want = f(X, Z[:, perm], params), f(X, Z, params)
    assert_close(ctx, f"{alg} with the context permuted by {perm.tolist()} vs unpermuted",
                 got, want, tolerance(ctx.dtype), calls.AXES[alg])
