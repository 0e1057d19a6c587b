"""rope.*: the laws of rotary position embedding (spec/properties.md; spec: Algorithm 25).

Scores depend on positions only through their offset, every column keeps its norm, the two
layouts are one map up to the fixed pair permutation, scaling by a factor 1 is no scaling, a
column computed alone (a cache step) is the column computed within the sequence, and every
head gets the same rotation.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from conformance.assertions import assert_close, tolerance
from conformance.properties.permutation import permutation
from conformance.registry import check
from conformance.strategies_modern import rope_cases
from formal_transformers.rope import RopeScaling

AXES = ("b", "h", "t", "i")


def _scores(Qr: np.ndarray, Kr: np.ndarray) -> np.ndarray:
    """S[b, h, t, t'] = <q_t, k_t'> in float64."""
    return np.einsum("bhti,bhsi->bhts", Qr.astype(np.float64), Kr.astype(np.float64))


@check("rope.relative", ("rope",), lambda a, c, d: rope_cases(c, d), line=r"Y\[a, t\]")
def relative(ctx, case):
    """<RoPE(q, p + s), RoPE(k, p' + s)> = <RoPE(q, p), RoPE(k, p')> for every shift s."""
    Q, p, config = case["X"], case["positions"], case["rope"]
    rng = case.rng()
    K = rng.standard_normal(Q.shape).astype(ctx.dtype)
    pk = rng.integers(0, 64, p.shape).astype(np.int64)
    s = int(rng.integers(1, 40))
    rope = ctx.adapter.rope
    assert_close(ctx, f"scores at positions shifted by {s} vs unshifted",
                 _scores(rope(Q, p + s, config), rope(K, pk + s, config)),
                 _scores(rope(Q, p, config), rope(K, pk, config)), tolerance(ctx.dtype),
                 ("b", "h", "t_q", "t_k"))


@check("rope.norm_preserving", ("rope",), lambda a, c, d: rope_cases(c, d), line=r"Y\[b, t\]")
def norm_preserving(ctx, case):
    """||RoPE(X)[.., t, :]|| = ||X[.., t, :]|| for every column: each pair is rotated."""
    X = case["X"]
    Y = ctx.adapter.rope(X, case["positions"], case["rope"])
    assert_close(ctx, "norm of every rotated vector vs its input's",
                 np.linalg.norm(Y.astype(np.float64), axis=-1),
                 np.linalg.norm(X.astype(np.float64), axis=-1), tolerance(ctx.dtype),
                 ("b", "h", "t"))


def pair_permutation(d: int, d_r: int) -> np.ndarray:
    """pi with pi(2i) = i, pi(2i + 1) = i + d_r / 2 on the rotated features, identity after."""
    half = d_r // 2
    pi = np.arange(d)
    pi[0:d_r:2], pi[1:d_r:2] = np.arange(half), np.arange(half) + half
    return pi


@check("rope.layout_permutation", ("rope",), lambda a, c, d: rope_cases(c, d),
       line=r"half\\_split")
def layout_permutation(ctx, case):
    """RoPE_interleaved(X[.., pi]) = RoPE_half_split(X)[.., pi]. The adapter computes its
    declared layout; the other side of the identity is the reference in the other layout."""
    X, p, config = case["X"], case["positions"], case["rope"]
    pi = pair_permutation(X.shape[-1], config.rotated_features(X.shape[-1]))
    other = dataclasses.replace(config, layout="interleaved" if config.layout == "half_split"
                                else "half_split")
    ref = ctx.reference.rope
    if config.layout == "half_split":
        observed = ctx.adapter.rope(X, p, config)[..., pi]
        expected = ref(X[..., pi].astype(np.float64), p, other)
    else:
        observed = ctx.adapter.rope(X[..., pi], p, config)
        expected = ref(X.astype(np.float64), p, other)[..., pi]
    assert_close(ctx, f"RoPE in layout {config.layout} vs the {other.layout} layout permuted by "
                 f"pi = {pi.tolist()}", observed, expected, tolerance(ctx.dtype), AXES)


@check("rope.scaling_identity", ("rope",),
       lambda a, c, d: rope_cases(c, d, scalings=("linear", "llama3"), theta=500000.0),
       line=r"scale")
def scaling_identity(ctx, case):
    """Scaling with factor 1 (linear or llama3) equals no scaling. An adapter that declares
    no scaling (constrain gives "none") is compared with the reference scaled by factor 1."""
    X, p, config = case["X"], case["positions"], case["rope"]
    unscaled = dataclasses.replace(config, scaling=RopeScaling())
    if config.scaling.kind == "none":
        one = dataclasses.replace(config, scaling=RopeScaling("linear", factor=1.0))
        observed, expected = ctx.adapter.rope(X, p, unscaled), ctx.reference.rope(
            X.astype(np.float64), p, one)
    else:
        one = dataclasses.replace(config, scaling=dataclasses.replace(config.scaling,
                                                                      factor=1.0))
        observed, expected = ctx.adapter.rope(X, p, one), ctx.adapter.rope(X, p, unscaled)
    assert_close(ctx, f"RoPE scaled by {one.scaling.kind} with factor 1 vs unscaled", observed,
                 expected, tolerance(ctx.dtype), AXES)


@check("rope.cache_step", ("rope",), lambda a, c, d: rope_cases(c, d, positions="consecutive"),
       line=r"for \$t")
def cache_step(ctx, case):
    """Column t computed alone at its position p_t (a decode step at offset p_t) equals column
    t of the whole sequence; so does every suffix (a chunk continuing a cache)."""
    X, p, config = case["X"], case["positions"], case["rope"]
    full = ctx.adapter.rope(X, p, config)
    t = int(case.rng().integers(X.shape[2]))
    assert_close(ctx, f"column {t} alone at position {int(p[t])} vs within the sequence",
                 ctx.adapter.rope(X[:, :, t:t + 1], p[t:t + 1], config), full[:, :, t:t + 1],
                 tolerance(ctx.dtype), AXES)
    assert_close(ctx, f"suffix from column {t} (positions {p[t:].tolist()}) vs within the "
                 "sequence", ctx.adapter.rope(X[:, :, t:], p[t:], config), full[:, :, t:],
                 tolerance(ctx.dtype), AXES)


@check("rope.heads_alike", ("rope",), lambda a, c, d: rope_cases(c, d, H=(2, 3)),
       line=r"omega_i \\gets \\theta")
def heads_alike(ctx, case):
    """Every head is rotated by the same map: permuting the heads permutes the output."""
    X, p, config = case["X"], case["positions"], case["rope"]
    perm = permutation(case.rng(), X.shape[1])
    assert_close(ctx, f"RoPE of heads permuted by {perm.tolist()} vs RoPE permuted",
                 ctx.adapter.rope(X[:, perm], p, config), ctx.adapter.rope(X, p, config)[:, perm],
                 tolerance(ctx.dtype), AXES)
