"""structure.*: identities between algorithms (spec/properties.md): one head is attention,
one query is basic attention, embeddings are lookups, outputs are distributions, position-wise
maps act on each column alone."""

from __future__ import annotations

import numpy as np

from conformance import calls
from conformance.assertions import assert_close, assert_exact, tolerance
from conformance.properties.permutation import permutation
from conformance.registry import check
from conformance.strategies import attention_cases, basic_attention_cases, cases_for


@check("structure.single_head", ("mhattention",),
       lambda a, c, d: attention_cases(c, d, True, mask="any", fixed={"H": 1}),
       requires=("attention",), line=r"Y\^h")
def one_head_is_attention(ctx, case):
    """MHAttention with H = 1, W_o = I, b_o = 0 equals Attention with the head's W_qkv (no
    b_* at all under the declared variant bias = False)."""
    p = case["params"]
    d_mid = p["W_v"].shape[1]
    mh = dict(p) | {"W_o": np.eye(d_mid, dtype=ctx.dtype)}
    if "b_o" in p:
        mh["b_o"] = np.zeros(d_mid, ctx.dtype)
    single = {k: p[k][0] for k in ("W_q", "b_q", "W_k", "b_k", "W_v", "b_v") if k in p}
    X, Z, mask = case["X"], case["Z"], case["mask"]
    assert_close(ctx, "MHAttention (H = 1, W_o = I) vs Attention",
                 ctx.adapter.mhattention(X, Z, mh, mask), ctx.adapter.attention(X, Z, single, mask),
                 tolerance(ctx.dtype), calls.AXES["mhattention"])


@check("structure.basic_attention", ("basic_attention",),
       lambda a, c, d: basic_attention_cases(c, d), requires=("attention",), line=r"alpha")
def one_query_is_basic_attention(ctx, case):
    """Attention with l_x = 1 and no mask equals basic single-query attention (Algorithm 3)."""
    e, E, params = case["e"], case["E_ctx"], case["params"]
    assert_close(ctx, "Attention(e as one column) vs BasicAttention(e)",
                 ctx.adapter.attention(e[:, None, :], E, params)[:, 0],
                 ctx.adapter.basic_attention(e, E, params), tolerance(ctx.dtype), ("b", "i"))


@check("structure.embedding_lookup", ("token_embedding", "positional_embedding"), cases_for,
       line=r"return")
def embedding_is_lookup(ctx, case):
    """The embedding of token v is column v of W_e (of position t, column t of W_p), exactly."""
    if ctx.algorithm == "token_embedding":
        x, W_e = case["x"], case["params"]["W_e"]
        assert_exact(ctx, "token embedding vs W_e[:, x]",
                     ctx.adapter.token_embedding(x, case["params"]), W_e.T[x], ("b", "t", "i"))
    else:
        l, W_p = case["l"], case["params"]["W_p"]
        assert_exact(ctx, "positional embedding vs W_p[:, t]",
                     ctx.adapter.positional_embedding(l, case["params"]), W_p.T[:l], ("t", "i"))


@check("structure.distribution", ("unembedding", *calls.ARCHITECTURES), cases_for,
       line=r"softmax")
def columns_are_distributions(ctx, case):
    """Every output column is a probability vector over the vocabulary."""
    P = calls.forward(ctx.adapter, ctx.algorithm, case.data)
    tol = tolerance(ctx.dtype)
    assert_close(ctx, "negative part of P", np.minimum(P, 0), np.zeros_like(P), tol,
                 calls.AXES[ctx.algorithm])
    assert_close(ctx, "sum of P over the vocabulary", P.astype(np.float64).sum(axis=-1),
                 np.ones(P.shape[:-1]), tol, ("b", "t"))


@check("structure.position_wise", ("layer_norm", "mlp"), cases_for, line=r"return")
def position_wise(ctx, case):
    """f(X)[:, t] = f(X[:, t]): a single column alone, and permuted columns, give the same."""
    alg, X = ctx.algorithm, case["X"]
    out = calls.forward(ctx.adapter, alg, case.data)
    rng = case.rng()
    t = int(rng.integers(X.shape[1]))
    alone = calls.forward(ctx.adapter, alg, case.data | {"X": X[:, t:t + 1]})
    assert_close(ctx, f"column {t} computed alone vs within the sequence", alone,
                 out[:, t:t + 1], tolerance(ctx.dtype), calls.AXES[alg])
    perm = permutation(rng, X.shape[1])
    assert_close(ctx, f"f(X Pi) vs f(X) Pi (perm {perm.tolist()})",
                 calls.forward(ctx.adapter, alg, case.data | {"X": X[:, perm]}), out[:, perm],
                 tolerance(ctx.dtype), calls.AXES[alg])
