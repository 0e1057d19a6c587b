"""Forward laws of the modern attention primitives of reference_numpy (spec: Algorithms 40-46;
property ids of spec/properties.md in each docstring)."""

from __future__ import annotations

import numpy as np
import pytest

from formal_transformers.errors import ConfigError, NonFiniteError, SpecShapeError
from reference_numpy.attention import attention, mh_attention
from reference_numpy.gq_attention import gq_attention, kv_head
from reference_numpy.masks import block_sparse_mask, sliding_window_mask
from reference_numpy.qk_norm import qk_norm
from reference_numpy.softcap import softcap_attention


def gq_params(rng, H, G, d_x=3, d_z=4, d_attn=2, d_mid=3, d_out=3):
    shapes = {"W_q": (H, d_attn, d_x), "b_q": (H, d_attn), "W_k": (G, d_attn, d_z),
              "b_k": (G, d_attn), "W_v": (G, d_mid, d_z), "b_v": (G, d_mid),
              "W_o": (d_out, H * d_mid), "b_o": (d_out,)}
    return {k: rng.standard_normal(s) for k, s in shapes.items()}


def duplicated(p, H):
    """kv head floor(h G / H) copied into query-head slot h (gqa.duplicated_kv_is_mha)."""
    G = p["W_k"].shape[0]
    idx = [kv_head(h, H, G) for h in range(H)]
    return p | {k: p[k][idx] for k in ("W_k", "b_k", "W_v", "b_v")}


@pytest.mark.parametrize(("H", "G"), [(1, 1), (2, 1), (4, 2), (6, 3), (6, 2), (3, 3)])
def test_gq_attention_with_duplicated_kv_heads_is_mh_attention(H, G):
    """gqa.duplicated_kv_is_mha and gqa.full_groups_is_mha (Algorithm 40)."""
    rng = np.random.default_rng(H * 10 + G)
    p = gq_params(rng, H, G)
    X, Z = rng.standard_normal((3, 5)), rng.standard_normal((4, 4))
    Mask = rng.random((4, 5)) < 0.7
    Mask[0] = True
    out = gq_attention(X, Z, **p, Mask=Mask)
    np.testing.assert_allclose(out, mh_attention(X, Z, **duplicated(p, H), Mask=Mask),
                               rtol=0, atol=1e-13)


def test_kv_head_is_repeat_interleave_not_tile():
    """Query head h reads kv head floor(h G / H): runs of H/G consecutive heads (Alg 40 L2)."""
    assert [kv_head(h, 6, 2) for h in range(6)] == [0, 0, 0, 1, 1, 1]
    assert [kv_head(h, 6, 3) for h in range(6)] == [0, 0, 1, 1, 2, 2]
    assert [kv_head(h, 4, 1) for h in range(4)] == [0, 0, 0, 0]


def test_gq_attention_refuses_groups_that_do_not_divide_the_heads():
    rng = np.random.default_rng(0)
    p = gq_params(rng, 3, 2)
    with pytest.raises(SpecShapeError, match="H = 3, G = 2"):
        gq_attention(rng.standard_normal((3, 2)), rng.standard_normal((4, 2)), **p)


@pytest.mark.parametrize("l", [1, 2, 5, 9])
@pytest.mark.parametrize("w", [1, 2, 3, 4, 12])
def test_sliding_window_sees_exactly_min_t_plus_1_w_keys(l, w):
    """window.edges and window.wide_is_causal (Algorithm 42)."""
    Mask = sliding_window_mask(l, w)
    for t_x in range(l):
        rows = np.flatnonzero(Mask[:, t_x]).tolist()
        assert rows == list(range(max(0, t_x - w + 1), t_x + 1))
        assert len(rows) == min(t_x + 1, w)
    if w >= l:
        assert (Mask == np.tril(np.ones((l, l), bool)).T).all()


@pytest.mark.parametrize(("l", "b", "c"), [(9, 3, 1), (8, 4, 2), (7, 2, 2), (5, 8, 3), (1, 1, 1)])
def test_block_sparse_pattern_counts(l, b, c):
    """block_sparse.pattern and block_sparse.dense_limit (Algorithm 43)."""
    Mask = block_sparse_mask(l, b, c)
    causal = np.tril(np.ones((l, l), bool)).T
    assert not (Mask & ~causal).any()
    for t_x in range(l):
        assert Mask[:, t_x].sum() == t_x % b + 1 + c * (t_x // b)
    if c == b or b >= l:
        assert (Mask == causal).all()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_masks_refuse_bad_hyperparameters(bad):
    with pytest.raises(ConfigError, match="w must be an integer >= 1"):
        sliding_window_mask(4, bad)
    with pytest.raises(ConfigError):
        block_sparse_mask(4, bad, 1)
    with pytest.raises(ConfigError, match="c .* must be <= b = 2"):
        block_sparse_mask(4, 2, 3)


@pytest.mark.parametrize("axis", ["per_head", "projection"])
def test_qk_norm_bounds_the_scores_by_the_gains(axis):
    """qk_norm.scores_bounded (Algorithm 44), with heads of very different scales."""
    rng = np.random.default_rng(1)
    H, d_attn, l = 3, 4, 5
    scales = np.repeat([100.0, 1.0, 0.01], d_attn)[:, None]
    Q, K = (scales * rng.standard_normal((H * d_attn, l)) for _ in range(2))
    n = d_attn if axis == "per_head" else H * d_attn
    g_q, g_k = 1 + 0.3 * rng.standard_normal(n), 1 + 0.3 * rng.standard_normal(n)
    Qh, Kh = qk_norm(Q, g_q, H, axis, 0.0), qk_norm(K, g_k, H, axis, 0.0)
    bound = np.abs(g_q).max() * np.abs(g_k).max()
    per_head = [np.abs(Qh[h * d_attn:(h + 1) * d_attn].T @ Kh[h * d_attn:(h + 1) * d_attn])
                for h in range(H)]
    if axis == "per_head":
        assert max(s.max() for s in per_head) <= d_attn * bound * (1 + 1e-12)
    else:
        assert (sum(per_head).max() <= H * d_attn * bound * (1 + 1e-12))
        assert max(s.max() for s in per_head) > d_attn * bound  # the per-head bound is broken


def test_qk_norm_refuses_zero_vectors_without_eps():
    with pytest.raises(NonFiniteError, match="eps > 0"):
        qk_norm(np.zeros((4, 2)), np.ones(2), 2, "per_head", 0.0)
    with pytest.raises(ConfigError, match="axis must be one of"):
        qk_norm(np.ones((4, 2)), np.ones(2), 2, "heads", 0.0)


def _qkv(rng, d_x=3, d_z=4, d_attn=2, d_out=3):
    shapes = {"W_q": (d_attn, d_x), "b_q": (d_attn,), "W_k": (d_attn, d_z), "b_k": (d_attn,),
              "W_v": (d_out, d_z), "b_v": (d_out,)}
    return {k: rng.standard_normal(s) for k, s in shapes.items()}


def test_softcap_with_a_huge_cap_is_attention_and_caps_the_log_weight_ratio():
    """softcap.infinite_cap and softcap.bounded_logits (Algorithm 46)."""
    rng = np.random.default_rng(2)
    p = _qkv(rng)
    X, Z = rng.standard_normal((3, 5)), rng.standard_normal((4, 4))
    np.testing.assert_allclose(softcap_attention(X, Z, **p, c=1e7), attention(X, Z, **p),
                               rtol=0, atol=1e-10)
    big = p | {"W_q": 30 * p["W_q"], "W_k": 30 * p["W_k"]}
    ident = big | {"W_v": np.eye(4), "b_v": np.zeros(4)}
    A = softcap_attention(X, np.eye(4), **ident | {"W_k": big["W_k"][:, :4]}, c=2.0)
    assert np.all(np.log(A).max(axis=0) - np.log(A).min(axis=0) <= 4.0 + 1e-9)
    np.testing.assert_allclose(A.sum(axis=0), 1.0, atol=1e-12)


def test_softcap_is_applied_before_the_mask():
    """A masked key gets weight exactly zero (not exp(-c)) (Alg 46 L3-5)."""
    rng = np.random.default_rng(3)
    p = _qkv(rng, d_z=4) | {"W_v": np.eye(4), "b_v": np.zeros(4)}
    Mask = np.ones((4, 2), bool)
    Mask[1, :] = False
    A = softcap_attention(rng.standard_normal((3, 2)), np.eye(4), **p, c=1.0, Mask=Mask)
    assert np.all(A[1] == 0.0)
    with pytest.raises(ConfigError, match="soft cap c"):
        softcap_attention(rng.standard_normal((3, 2)), np.eye(4), **p, c=0.0)


@pytest.mark.parametrize("block", [1, 2, 3, 5, 8, 9, 40])
@pytest.mark.parametrize("mask", ["none", "causal", "random", "first_keys_masked"])
def test_online_softmax_equals_attention_to_1e_12(block, mask):
    """online_softmax.equals_attention (Algorithm 48), forward and backward (Algorithm 49),
    float64 to 1e-12: every block size, every mask, including queries whose first blocks are
    fully masked (the running max stays -inf)."""
    from reference_numpy.backward import attention_backward
    from reference_numpy.online_softmax import (
        online_softmax_attention,
        online_softmax_attention_backward,
    )

    rng = np.random.default_rng(block)
    l = 9
    p = {k: 2 * v for k, v in _qkv(rng, d_x=3, d_z=3).items()}
    X = rng.standard_normal((3, l))
    Mask = {"none": None, "causal": np.tril(np.ones((l, l), bool)).T,
            "random": rng.random((l, l)) < 0.5,
            "first_keys_masked": np.arange(l)[:, None] >= 5 + np.zeros((1, l), int)}[mask]
    if Mask is not None:
        Mask[l - 1] = True
    c_on, c_ref = {}, {}
    out = online_softmax_attention(X, X, **p, Mask=Mask, block=block, cache=c_on)
    want = attention(X, X, **p, Mask=Mask, cache=c_ref)
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-12)
    dY = rng.standard_normal(out.shape)
    g_on, g_ref = online_softmax_attention_backward(dY, c_on), attention_backward(dY, c_ref)
    assert set(g_on) == set(g_ref)
    for k in g_ref:
        np.testing.assert_allclose(g_on[k], g_ref[k], rtol=0, atol=1e-12, err_msg=k)
