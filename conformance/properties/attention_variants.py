"""gqa.*, window.*, block_sparse.*, qk_norm.*, softcap.*, online_softmax.*: the laws of the
modern attention primitives (spec/properties.md; spec: Algorithms 40-48). Each law tells a
disputed convention's options apart: repeat-interleave vs tile, the window's edges, the QK-norm
axis, cap before the mask, the rescaling of the online softmax."""

from __future__ import annotations

import numpy as np

from conformance import calls
from conformance.assertions import assert_close, assert_exact, fail, tolerance
from conformance.registry import check
from conformance.strategies import causal
from conformance.variant_strategies import (
    gq_attention_cases,
    mask_cases,
    online_softmax_cases,
    online_softmax_pinned,
    qk_norm_cases,
    qk_norm_pinned,
    softcap_cases,
    variant_cases_for,
)

KV = ("W_k", "b_k", "W_v", "b_v")


def _kv_index(H: int, G: int) -> list[int]:
    return [h * G // H for h in range(H)]


# -- grouped-query attention (Algorithm 40) -----------------------------------------------------
@check("gqa.full_groups_is_mha", ("gq_attention",),
       lambda a, c, d: gq_attention_cases(c, d, fixed={"r": 1}), requires=("mhattention",),
       line=r"lfloor")
def full_groups_is_mha(ctx, case):
    """With G = H, GQAttention = MHAttention on the same stacked parameters."""
    X, Z, p, mask = case["X"], case["Z"], case["params"], case["mask"]
    assert_close(ctx, "GQAttention (G = H) vs MHAttention", ctx.adapter.gq_attention(X, Z, p, mask),
                 ctx.adapter.mhattention(X, Z, p, mask), tolerance(ctx.dtype),
                 calls.AXES["gq_attention"])


@check("gqa.duplicated_kv_is_mha", ("gq_attention",),
       lambda a, c, d: gq_attention_cases(c, d), requires=("mhattention",), line=r"lfloor")
def duplicated_kv_is_mha(ctx, case):
    """Copying kv head floor(h G / H) into query-head slot h gives MHAttention's parameters."""
    X, Z, p, mask = case["X"], case["Z"], case["params"], case["mask"]
    H, G = p["W_q"].shape[0], p["W_k"].shape[0]
    idx = _kv_index(H, G)
    mha = dict(p) | {k: p[k][idx] for k in KV}
    assert_close(ctx, f"GQAttention (H = {H}, G = {G}) vs MHAttention with kv heads {idx}",
                 ctx.adapter.gq_attention(X, Z, p, mask), ctx.adapter.mhattention(X, Z, mha, mask),
                 tolerance(ctx.dtype), calls.AXES["gq_attention"])


def _group_permutation(rng, H: int, G: int) -> np.ndarray:
    """A permutation of the query heads that moves heads only within their group."""
    r = H // G
    return np.concatenate([g * r + rng.permutation(r) for g in range(G)])


@check("gqa.group_permutation", ("gq_attention",),
       lambda a, c, d: gq_attention_cases(c, d, fixed={"r": 2}), line=r"lfloor")
def group_permutation(ctx, case):
    """Permuting query heads within each group (W_q, b_q, W_o's column blocks alike) changes
    nothing; with G = 1 (multi-query attention) any permutation of the heads."""
    X, Z, p, mask = case["X"], case["Z"], case["params"], case["mask"]
    H, G, d_mid = p["W_q"].shape[0], p["W_k"].shape[0], p["W_v"].shape[1]
    perm = _group_permutation(case.rng(), H, G)
    if (perm == np.arange(H)).all():
        perm = perm.reshape(G, H // G)[:, ::-1].ravel()  # r = 2: swap each group's pair
    cols = np.concatenate([np.arange(h * d_mid, (h + 1) * d_mid) for h in perm])
    q = dict(p) | {"W_q": p["W_q"][perm], "b_q": p["b_q"][perm], "W_o": p["W_o"][:, cols]}
    assert_close(ctx, f"GQAttention with query heads permuted {perm.tolist()} within groups "
                 f"(H = {H}, G = {G})", ctx.adapter.gq_attention(X, Z, q, mask),
                 ctx.adapter.gq_attention(X, Z, p, mask), tolerance(ctx.dtype),
                 calls.AXES["gq_attention"])


# -- masks (Algorithms 42-43) ----------------------------------------------------------------
def _window(l: int, w: int) -> np.ndarray:
    t_z, t_x = np.arange(l)[:, None], np.arange(l)[None, :]
    return (np.maximum(0, t_x - w + 1) <= t_z) & (t_z <= t_x)


def _block_sparse(l: int, b: int, c: int) -> np.ndarray:
    t_z, t_x = np.arange(l)[:, None], np.arange(l)[None, :]
    return (t_z <= t_x) & ((t_z // b == t_x // b) | (t_z % b >= b - c))


@check("window.edges", ("sliding_window_mask",),
       lambda a, c, d: mask_cases(c, d, "sliding_window_mask"), line=r"t_x - w")
def window_edges(ctx, case):
    """Column t_x is one exactly at rows max(0, t_x - w + 1) .. t_x: min(t_x + 1, w) keys."""
    l, w = case["l"], case["w"]
    Mask = ctx.adapter.sliding_window_mask(l, w)
    assert_exact(ctx, f"keys per query of the window w = {w}", Mask.sum(axis=0),
                 np.minimum(np.arange(l) + 1, w), ("t_x",))
    assert_exact(ctx, f"SlidingWindowMask(l = {l} | w = {w})", Mask, _window(l, w),
                 ("t_z", "t_x"))


@check("window.wide_is_causal", ("sliding_window_mask",),
       lambda a, c, d: mask_cases(c, d, "sliding_window_mask", wide=True), line=r"t_x - w")
def window_wide_is_causal(ctx, case):
    """For w >= l the window is the causal mask."""
    l, w = case["l"], case["w"]
    assert_exact(ctx, f"SlidingWindowMask(l = {l} | w = {w} >= l) vs the causal mask",
                 ctx.adapter.sliding_window_mask(l, w), causal(l), ("t_z", "t_x"))


def _no_influence(ctx, case, Mask, allowed, what):
    """Changing a token t_z outside ``allowed[:, t_x]`` leaves output column t_x unchanged,
    in self-attention with the implementation's own ``Mask``."""
    X, p = case["X"], case["params"]
    if not Mask.any(axis=0).all():
        fail(f"{what} has a query that attends to nothing: columns "
             f"{np.flatnonzero(~Mask.any(axis=0)).tolist()} are all zeros")
    rng = case.rng()
    out = ctx.adapter.attention(X, X, p, Mask)
    for t_x in range(X.shape[1]):
        outside = np.flatnonzero(~allowed[:, t_x])
        if outside.size == 0:
            continue
        t_z = int(rng.choice(outside))
        X2 = X.copy()
        X2[:, t_z] = 3.0 * calls.fresh_like(X[:, t_z], rng)
        out2 = ctx.adapter.attention(X2, X2, p, Mask)
        assert_close(ctx, f"output column {t_x} after changing token {t_z}, outside the "
                     f"pattern of {what}", out2[:, t_x], out[:, t_x], tolerance(ctx.dtype),
                     ("b", "i"))


@check("window.no_influence", ("sliding_window_mask",),
       lambda a, c, d: mask_cases(c, d, "sliding_window_mask"), requires=("attention",),
       line=r"t_x - w")
def window_no_influence(ctx, case):
    """Tokens t_z <= t_x - w or t_z > t_x have no influence on output column t_x."""
    l, w = case["l"], case["w"]
    _no_influence(ctx, case, ctx.adapter.sliding_window_mask(l, w), _window(l, w),
                  f"SlidingWindowMask(l = {l} | w = {w})")


@check("block_sparse.pattern", ("block_sparse_mask",),
       lambda a, c, d: mask_cases(c, d, "block_sparse_mask"), line=r"Mask")
def block_sparse_pattern(ctx, case):
    """Mask[t_z, t_x] = [t_z <= t_x] and (same block or t_z mod b >= b - c)."""
    l, b, c = case["l"], case["b"], case["c"]
    Mask = ctx.adapter.block_sparse_mask(l, b, c)
    t = np.arange(l)
    assert_exact(ctx, f"keys per query of BlockSparseMask(b = {b}, c = {c})", Mask.sum(axis=0),
                 t % b + 1 + c * (t // b), ("t_x",))
    assert_exact(ctx, f"BlockSparseMask(l = {l} | b = {b}, c = {c})", Mask,
                 _block_sparse(l, b, c), ("t_z", "t_x"))


@check("block_sparse.dense_limit", ("block_sparse_mask",),
       lambda a, c, d: mask_cases(c, d, "block_sparse_mask", wide=True), line=r"Mask")
def block_sparse_dense_limit(ctx, case):
    """c = b or b >= l gives the causal mask."""
    l, b, c = case["l"], case["b"], case["c"]
    assert_exact(ctx, f"BlockSparseMask(l = {l} | b = {b}, c = {c}) vs the causal mask",
                 ctx.adapter.block_sparse_mask(l, b, c), causal(l), ("t_z", "t_x"))


@check("block_sparse.no_influence", ("block_sparse_mask",),
       lambda a, c, d: mask_cases(c, d, "block_sparse_mask"), requires=("attention",),
       line=r"Mask")
def block_sparse_no_influence(ctx, case):
    """A token outside the pattern of query t_x has no influence on output column t_x."""
    l, b, c = case["l"], case["b"], case["c"]
    _no_influence(ctx, case, ctx.adapter.block_sparse_mask(l, b, c), _block_sparse(l, b, c),
                  f"BlockSparseMask(l = {l} | b = {b}, c = {c})")


# -- QK-norm (Algorithm 44) ------------------------------------------------------------------
@check("qk_norm.scores_bounded", ("qk_norm",), lambda a, c, d: qk_norm_cases(c, d),
       line=r"gamma", pinned=qk_norm_pinned)
def scores_bounded(ctx, case):
    """per_head: |q_h . k_h| <= d_attn max|gamma_q| max|gamma_k| in every head; projection:
    the sum over the heads of |q_h . k_h| <= H d_attn max|gamma_q| max|gamma_k|."""
    X, H, axis, eps, g_q = case["X"], case["H"], case["axis"], case["eps"], case["params"]
    rng = case.rng()
    K = (X.astype(np.float64)[:, ::-1] * rng.choice([0.5, 2.0])).astype(X.dtype)  # other tokens
    g_k = {"gamma": (g_q["gamma"].astype(np.float64)[::-1] * 1.5).astype(X.dtype)}
    Qh = ctx.adapter.qk_norm(X, g_q, H, axis, eps).astype(np.float64)
    Kh = ctx.adapter.qk_norm(K, g_k, H, axis, eps).astype(np.float64)
    B, l, n = X.shape
    d_attn = n // H
    heads = np.abs(np.einsum("bthd,bshd->bhts", Qh.reshape(B, l, H, d_attn),
                             Kh.reshape(B, l, H, d_attn)))  # (B, H, l, l)
    gain = float(np.abs(g_q["gamma"]).max()) * float(np.abs(g_k["gamma"]).max())
    observed = heads if axis == "per_head" else heads.sum(axis=1)
    bound = (d_attn if axis == "per_head" else H * d_attn) * gain
    slack = bound * (1 + 10 * tolerance(ctx.dtype).rtol)
    ctx.observe(max(0.0, float(observed.max()) - bound))
    if observed.max() > slack:
        fail(f"QK-normalised scores (axis = {axis}, H = {H}, d_attn = {d_attn}) reach "
             f"{observed.max():.6g}, above the bound {bound:.6g} = "
             f"{'d_attn' if axis == 'per_head' else 'H d_attn'} max|gamma_q| max|gamma_k|",
             expected=f"<= {bound:.6g}", observed=f"{observed.max():.6g}")


@check("qk_norm.scale_invariance", ("qk_norm",),
       lambda a, c, d: qk_norm_cases(c, d, eps_zero=True), line=r"sqrt", pinned=qk_norm_pinned)
def scale_invariance(ctx, case):
    """With eps = 0, scaling one head's block (per_head) or a whole column (projection) of a
    token by a > 0 changes nothing."""
    X, H, axis, p = case["X"], case["H"], case["axis"], case["params"]
    rng = case.rng()
    B, l, n = X.shape
    d_attn, a = n // H, float(rng.choice([0.25, 4.0]))
    t, h = int(rng.integers(l)), int(rng.integers(H))
    rows = slice(h * d_attn, (h + 1) * d_attn) if axis == "per_head" else slice(0, n)
    X2 = X.copy()
    X2[:, t, rows] = (X[:, t, rows].astype(np.float64) * a).astype(X.dtype)
    assert_close(ctx, f"QKNorm after scaling token {t}'s "
                 f"{'head ' + str(h) if axis == 'per_head' else 'column'} by {a} "
                 f"(axis = {axis})", ctx.adapter.qk_norm(X2, p, H, axis, 0.0),
                 ctx.adapter.qk_norm(X, p, H, axis, 0.0), tolerance(ctx.dtype),
                 calls.AXES["qk_norm"])


# -- soft-capping (Algorithm 46) -------------------------------------------------------------
@check("softcap.bounded_logits", ("softcap",),
       lambda a, c, d: softcap_cases(c, d, caps=(0.5, 2.0, 8.0), fixed={"d_out": 1}),
       line=r"tanh")
def bounded_logits(ctx, case):
    """With Z = I and W_v = I the output is A^T: log-weights of visible keys span <= 2c."""
    X, p, c, mask = case["X"], case["params"], case["c"], case["mask"]
    B, l_x = X.shape[:2]
    l_z = case.sizes["l_z"]
    rng = case.rng()
    W_k = (rng.standard_normal((p["W_k"].shape[0], l_z)) * 8.0).astype(ctx.dtype)
    ident = dict(p) | {"W_k": W_k, "W_v": np.eye(l_z, dtype=ctx.dtype),
                       "b_v": np.zeros(l_z, ctx.dtype)}
    Z = np.broadcast_to(np.eye(l_z, dtype=ctx.dtype), (B, l_z, l_z)).copy()
    A = ctx.adapter.softcap(X, Z, ident, c, mask).astype(np.float64)  # (B, l_x, l_z)
    visible = np.ones((l_z, l_x), bool) if mask is None else mask
    tol = tolerance(ctx.dtype)
    for b in range(B):
        for t_x in range(l_x):
            a = A[b, t_x, visible[:, t_x]]
            with np.errstate(divide="ignore"):
                span = float(np.log(a.max()) - np.log(a.min())) if a.min() > 0 else np.inf
            ctx.observe(max(0.0, span - 2 * c))
            if span > 2 * c * (1 + 10 * tol.rtol) + 10 * tol.atol:
                fail(f"attention weights of query {t_x} (b = {b}) over its visible keys span "
                     f"log-ratio {span:.6g} > 2c = {2 * c:g}: the logits are not within "
                     f"(-c, c) (cap c = {c})", expected=f"<= {2 * c:g}",
                     observed=f"{span:.6g}; weights {np.round(a, 8).tolist()}")


@check("softcap.infinite_cap", ("softcap",), lambda a, c, d: softcap_cases(c, d),
       requires=("attention",), line=r"tanh")
def infinite_cap(ctx, case):
    """At c = 1e8 max(max|S|, 1) the soft-capped attention equals Algorithm 4 (the cap moves a
    logit s by at most |s|^3 / (3 c^2), far below any tolerance)."""
    X, Z, p, mask = case["X"], case["Z"], case["params"], case["mask"]
    up = {k: v.astype(np.float64) for k, v in p.items()}
    Q = X.astype(np.float64) @ up["W_q"].T + up["b_q"]
    K = Z.astype(np.float64) @ up["W_k"].T + up["b_k"]
    S = np.abs(K @ Q.transpose(0, 2, 1)).max() / np.sqrt(up["W_q"].shape[0])
    c = 1e8 * max(float(S), 1.0)
    assert_close(ctx, f"SoftCapAttention with c = {c:.3g} vs Attention",
                 ctx.adapter.softcap(X, Z, p, c, mask), ctx.adapter.attention(X, Z, p, mask),
                 tolerance(ctx.dtype), calls.AXES["softcap"])


@check("mask.no_influence", ("gq_attention", "softcap", "online_softmax_attention"),
       lambda a, c, d: variant_cases_for(a, c, d, mask="random"),
       line=r"\\neg \\mathrm\{Mask\}|Mask")
def masked_context_has_no_influence(ctx, case):
    """Changing context column t_z leaves every output column t_x with Mask[t_z, t_x] = 0."""
    Z, Mask = case["Z"], case["mask"]
    rng = case.rng()
    rows = np.flatnonzero(~Mask.all(axis=1))
    t_z = int(rng.choice(rows)) if rows.size else 0
    blind = np.flatnonzero(~Mask[t_z])
    Z2 = Z.copy()
    Z2[:, t_z] = 3.0 * calls.fresh_like(Z[:, t_z], rng)
    out = calls.forward(ctx.adapter, ctx.algorithm, case.data)
    out2 = calls.forward(ctx.adapter, ctx.algorithm, case.data | {"Z": Z2})
    assert_close(ctx, f"output columns {blind.tolist()} after changing masked context column "
                 f"{t_z}", out2[:, blind], out[:, blind], tolerance(ctx.dtype),
                 ("b", "t_x", "i"))


# -- the online softmax (Algorithm 48) ---------------------------------------------------------
@check("online_softmax.equals_attention", ("online_softmax_attention",),
       lambda a, c, d: online_softmax_cases(c, d), requires=("attention",), line=r"alpha",
       pinned=online_softmax_pinned)
def equals_attention(ctx, case):
    """For every block size and every mask, the online softmax computes Algorithm 4."""
    X, Z, p, mask, block = case["X"], case["Z"], case["params"], case["mask"], case["block"]
    assert_close(ctx, f"OnlineSoftmaxAttention (B_c = {block}) vs Attention",
                 ctx.adapter.online_softmax_attention(X, Z, p, block, mask),
                 ctx.adapter.attention(X, Z, p, mask), tolerance(ctx.dtype),
                 calls.AXES["online_softmax_attention"])


@check("online_softmax.partition_invariance", ("online_softmax_attention",),
       lambda a, c, d: online_softmax_cases(c, d, blocks=2), line=r"J \\gets")
def partition_invariance(ctx, case):
    """Two block sizes give the same output."""
    X, Z, p, mask = case["X"], case["Z"], case["params"], case["mask"]
    b1, b2 = case["block"], case["block_2"]
    f = ctx.adapter.online_softmax_attention
    assert_close(ctx, f"OnlineSoftmaxAttention with B_c = {b1} vs B_c = {b2}",
                 f(X, Z, p, b1, mask), f(X, Z, p, b2, mask), tolerance(ctx.dtype),
                 calls.AXES["online_softmax_attention"])
