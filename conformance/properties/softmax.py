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


def constant_values(params, Z, rng, dtype):
    """(params, Z, v) whose values v_t = W_v z_t + b_v are v for every context token t.

    With a value bias: W_v = 0, b_v = v. Bias-free (the declared variant bias = False):
    W_v = v u^T and every z_t moved along u to u^T z_t = 1 -- the keys still differ wherever
    d_z >= 2, so the weights are not uniform."""
    params = dict(params)
    v = rng.standard_normal(params["W_v"].shape[0])
    if "b_v" in params:
        params["W_v"], params["b_v"] = np.zeros_like(params["W_v"]), v.astype(dtype)
        return params, Z, v.astype(dtype).astype(np.float64)
    u = rng.standard_normal(Z.shape[-1])
    Z64 = Z.astype(np.float64)
    Z = (Z64 + (1.0 - Z64 @ u)[..., None] * u / (u @ u)).astype(dtype)
    params["W_v"] = np.outer(v, u).astype(dtype)
    return params, Z, params["W_v"].astype(np.float64) @ Z[(0,) * (Z.ndim - 1)].astype(
        np.float64)


@check("softmax.normalised", ("basic_attention", "attention"), _cases, line=r"softmax|alpha")
def weights_sum_to_one(ctx, case):
    """With constant values (W_v = 0, b_v = v; bias-free: W_v = v u^T on context tokens with
    u^T z = 1) every output column is v: the weights of each query sum to one, masked or
    not."""
    rng = case.rng()
    if ctx.algorithm == "basic_attention":
        params, E_ctx, v = constant_values(case["params"], case["E_ctx"], rng, ctx.dtype)
        out = ctx.adapter.basic_attention(case["e"], E_ctx, params)
    else:
        params, Z, v = constant_values(case["params"], case["Z"], rng, ctx.dtype)
        out = ctx.adapter.attention(case["X"], Z, params, case["mask"])
    assert_close(ctx, "output for constant values v (should be v in every column)", out,
                 np.broadcast_to(v, out.shape), tolerance(ctx.dtype), calls.AXES[ctx.algorithm])


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
    attention output is unchanged; W_u + 1 a^T shifts every logit of column e by a^T e.
    Bias-free attention (no b_k to move): moving every context token by one vector c adds
    (W_k c)^T q_{t_x} to column t_x and W_v c to every value, so the output moves by W_v c."""
    params = dict(case["params"])
    rng = case.rng()
    if ctx.algorithm == "attention" and "b_k" not in params:
        c = 2.0 * rng.standard_normal(case["Z"].shape[-1])
        Z = (case["Z"].astype(np.float64) + c).astype(ctx.dtype)
        shift = params["W_v"].astype(np.float64) @ (Z.astype(np.float64)
                                                    - case["Z"].astype(np.float64))[..., 0, :].T
        got = ctx.adapter.attention(case["X"], Z, params, case["mask"]).astype(np.float64)
        want = ctx.adapter.attention(case["X"], case["Z"], params, case["mask"]
                                     ).astype(np.float64) + shift.T[:, None, :]
        what = "output after moving every context token by c, less W_v c (bias-free)"
    elif ctx.algorithm == "attention":
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
