"""torch_impl's modern attention primitives compute the reference's function (spec:
Algorithms 40-46; property reference.forward_agreement), float64 to 1e-10."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reference_numpy as ref
import torch_impl as ti


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _gq(rng, H, G, d_x=3, d_z=4, d_attn=2, d_mid=3, d_out=3):
    shapes = {"W_q": (H, d_attn, d_x), "b_q": (H, d_attn), "W_k": (G, d_attn, d_z),
              "b_k": (G, d_attn), "W_v": (G, d_mid, d_z), "b_v": (G, d_mid),
              "W_o": (d_out, H * d_mid), "b_o": (d_out,)}
    return {k: rng.standard_normal(s) for k, s in shapes.items()}


@pytest.mark.parametrize(("H", "G"), [(1, 1), (4, 1), (4, 2), (6, 3), (6, 2), (2, 2)])
@pytest.mark.parametrize("masked", ["none", "shared", "per_sequence"])
def test_gq_attention_agrees_with_the_reference(H, G, masked):
    rng = np.random.default_rng(H + 7 * G)
    p = _gq(rng, H, G)
    X, Z = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 4, 4))
    Mask = None if masked == "none" else rng.random((2, 4, 5)) < 0.6
    if Mask is not None:
        Mask[:, 2] = True
        Mask = Mask[0] if masked == "shared" else Mask
    got = ti.gq_attention(_t(X), _t(Z), **{k: _t(v) for k, v in p.items()},
                          mask=None if Mask is None else _t(Mask)).numpy()
    rows = [None if Mask is None else Mask if Mask.ndim == 2 else Mask[b] for b in range(2)]
    want = np.stack([ref.gq_attention(X[b].T, Z[b].T, **p, Mask=rows[b]).T for b in range(2)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("l", [1, 4, 9])
@pytest.mark.parametrize("w", [1, 3, 10])
def test_masks_agree_with_the_reference(l, w):
    assert (ti.sliding_window_mask(l, w).numpy() == ref.sliding_window_mask(l, w)).all()
    b, c = min(w, 4), 1
    assert (ti.block_sparse_mask(l, b, c).numpy() == ref.block_sparse_mask(l, b, c)).all()


@pytest.mark.parametrize("axis", ["per_head", "projection"])
def test_qk_norm_agrees_with_the_reference(axis):
    rng = np.random.default_rng(5)
    B, H, l, d_attn = 2, 3, 4, 2
    q = rng.standard_normal((B, H, l, d_attn)) * rng.choice([0.1, 10.0], (1, H, 1, 1))
    gamma = rng.standard_normal(d_attn if axis == "per_head" else H * d_attn)
    got = ti.qk_norm(_t(q), _t(gamma), axis, 1e-6).numpy()
    for b in range(B):
        Q = q[b].transpose(0, 2, 1).reshape(H * d_attn, l)  # stacked heads, columns = tokens
        want = ref.qk_norm(Q, gamma, H, axis, 1e-6).reshape(H, d_attn, l).transpose(0, 2, 1)
        np.testing.assert_allclose(got[b], want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("c", [0.5, 3.0, 50.0])
@pytest.mark.parametrize("causal", [False, True])
def test_softcap_attention_agrees_with_the_reference(c, causal):
    rng = np.random.default_rng(int(c * 10))
    shapes = {"W_q": (2, 3), "b_q": (2,), "W_k": (2, 3), "b_k": (2,), "W_v": (3, 3),
              "b_v": (3,)}
    p = {k: 4 * rng.standard_normal(s) for k, s in shapes.items()}
    X = rng.standard_normal((2, 5, 3))
    got = ti.softcap_attention(_t(X), _t(X), **{k: _t(v) for k, v in p.items()}, c=c,
                               causal=causal).numpy()
    Mask = np.tril(np.ones((5, 5), bool)).T if causal else None
    want = np.stack([ref.softcap_attention(X[b].T, X[b].T, **p, c=c, Mask=Mask).T
                     for b in range(2)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("block", [1, 3, 7])
@pytest.mark.parametrize("causal", [False, True])
def test_online_softmax_agrees_with_the_reference_and_with_sdpa(block, causal):
    rng = np.random.default_rng(block)
    shapes = {"W_q": (2, 3), "b_q": (2,), "W_k": (2, 3), "b_k": (2,), "W_v": (3, 3),
              "b_v": (3,)}
    p = {k: 2 * rng.standard_normal(s) for k, s in shapes.items()}
    X = rng.standard_normal((2, 7, 3))
    tp = {k: _t(v) for k, v in p.items()}
    got = ti.online_softmax_attention(_t(X), _t(X), **tp, block=block, causal=causal).numpy()
    Mask = np.tril(np.ones((7, 7), bool)).T if causal else None
    want = np.stack([ref.online_softmax_attention(X[b].T, X[b].T, **p, Mask=Mask,
                                                  block=block).T for b in range(2)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got, ti.attention(_t(X), _t(X), **tp, causal=causal).numpy(),
                               rtol=0, atol=1e-10)


def test_bad_hyperparameters_get_typed_errors_naming_them():
    from formal_transformers.errors import ConfigError, SpecShapeError

    rng = np.random.default_rng(0)
    p = {k: _t(v) for k, v in _gq(rng, 3, 2).items()}
    X = _t(rng.standard_normal((1, 2, 3)))
    with pytest.raises(SpecShapeError, match="H = 3, G = 2"):
        ti.gq_attention(X, _t(rng.standard_normal((1, 2, 4))), **p)
    with pytest.raises(ConfigError, match="w must be an integer >= 1"):
        ti.sliding_window_mask(4, 0)
    with pytest.raises(ConfigError, match="c .* must be <= b = 2"):
        ti.block_sparse_mask(4, 2, 3)
    with pytest.raises(ConfigError, match="axis must be one of"):
        ti.qk_norm(torch.ones(1, 2, 3, 4, dtype=torch.float64), torch.ones(4, dtype=torch.float64),
                   "per_token", 1e-6)
    with pytest.raises(SpecShapeError, match="gamma"):
        ti.qk_norm(torch.ones(1, 2, 3, 4, dtype=torch.float64), torch.ones(4, dtype=torch.float64),
                   "projection", 1e-6)
    with pytest.raises(ConfigError, match="soft cap c"):
        ti.softcap_attention(X, X, *(torch.ones(s, dtype=torch.float64) for s in
                                     [(2, 3), (2,), (2, 3), (2,), (3, 3), (3,)]), c=-1.0)
    with pytest.raises(ConfigError, match="block"):
        ti.online_softmax_attention(X, X, *(torch.ones(s, dtype=torch.float64) for s in
                                            [(2, 3), (2,), (2, 3), (2,), (3, 3), (3,)]), block=0)
