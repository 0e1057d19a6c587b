"""softmax.*: attention weights are distributions, and invariant to a constant shift
(spec/properties.md)."""

from __future__ import annotations

import numpy as np

from conformance import calls
from conformance.assertions import assert_close, tolerance
from conformance.registry import check
from conformance.strategies import attention_cases, basic_attention_cases, unembedding_cases


def _cases(alg, constrain, dtype):
    if alg == "basic_attention":
        return basic_attention_cases(constrain, dtype)
    if alg == "unembedding":
        return unembedding_cases(constrain, dtype)
    return attention_cases(constrain, dtype, False, mask="any")


@check("softmax.normalised", ("basic_attention", "attention"), _cases, line=r"softmax|alpha")
def weights_sum_to_one(ctx, case):
    """With constant values (W_v = 0, b_v = v) every output column is v: the weights of each
    query sum to one, masked or not."""
    params = dict(case["params"])
    v = case.rng().standard_normal(params["b_v"].shape).astype(ctx.dtype)
    params["W_v"], params["b_v"] = np.zeros_like(params["W_v"]), v
    if ctx.algorithm == "basic_attention":
        out = ctx.adapter.basic_attention(case["e"], case["E_ctx"], params)
        want = np.broadcast_to(v, out.shape)
    else:
        out = ctx.adapter.attention(case["X"], case["Z"], params, case["mask"])
        want = np.broadcast_to(v, out.shape)
    assert_close(ctx, "output for constant values v (should be v in every column)", out, want,
                 tolerance(ctx.dtype), calls.AXES[ctx.algorithm])


@check("softmax.normalised", ("unembedding",), _cases, line=r"softmax")
def probabilities_sum_to_one(ctx, case):
    """Every p = Unembedding(e) is a probability vector: p >= 0 and sum(p) = 1."""
    P = ctx.adapter.unembedding(case["X"], case["params"])
    assert_close(ctx, "min(0, P)", np.minimum(P, 0), np.zeros_like(P), tolerance(ctx.dtype),
                 calls.AXES["unembedding"])
    assert_close(ctx, "sum of P over the vocabulary", P.sum(axis=-1),
                 np.ones(P.shape[:-1]), tolerance(ctx.dtype), ("b", "t"))


@check("softmax.shift_invariance", ("attention", "unembedding"), _cases, line=r"softmax")
def shift_invariance(ctx, case):
    """softmax(S + 1 c^T) = softmax(S): a shift that adds one constant per softmax column
    changes nothing. Any key-bias change delta (a random one, not only directions orthogonal
    to the queries) adds delta^T q_{t_x} to every score of column t_x, masked or not, so the
    attention output is unchanged; W_u + 1 a^T shifts every logit of column e by a^T e."""
    params = dict(case["params"])
    rng = case.rng()
    if ctx.algorithm == "attention":
        params["b_k"] = params["b_k"] + 2.0 * rng.standard_normal(params["b_k"].shape
                                                                   ).astype(ctx.dtype)
        got = ctx.adapter.attention(case["X"], case["Z"], params, case["mask"])
        want = ctx.adapter.attention(case["X"], case["Z"], case["params"], case["mask"])
        what = "output after adding a constant vector to b_k"
    else:
        a = rng.standard_normal(params["W_u"].shape[1]).astype(ctx.dtype)
        params["W_u"] = params["W_u"] + a[None, :]
        got = ctx.adapter.unembedding(case["X"], params)
        want = ctx.adapter.unembedding(case["X"], case["params"])
        what = "P after adding the same row a^T to every row of W_u"
    assert_close(ctx, what, got, want, tolerance(ctx.dtype), calls.AXES[ctx.algorithm])
