"""Grouped-query attention, forward (spec: Algorithm 40, spec/algorithms/40-gq-attention.md).

Literal float64 mirror in the spec's column layout, looping over the query heads like
``mh_attention`` (reference_numpy/attention.py). Signature::

    gq_attention(X (d_x, l_x), Z (d_z, l_z),
                 W_q (H, d_attn, d_x), b_q (H, d_attn),
                 W_k (G, d_attn, d_z), b_k (G, d_attn),
                 W_v (G, d_mid, d_z),  b_v (G, d_mid),
                 W_o (d_out, H*d_mid), b_o (d_out,), Mask (l_z, l_x) bool | None,
                 cache=None) -> V_tilde (d_out, l_x)

H is read from W_q, G from W_k; G must divide H. Query head h reads kv head
``kv_head(h, H, G) = floor(h G / H)`` (repeat-interleave). The backward (Algorithm 41) is
``gq_attention_backward`` below.
"""

from __future__ import annotations

import numpy as np

from formal_transformers.attention_options import check_groups
from formal_transformers.validation import check_array, check_shape
from reference_numpy.attention import attention
from reference_numpy.backward import _need, attention_backward


def kv_head(h: int, H: int, G: int) -> int:
    """The kv head of query head h: floor(h G / H) (spec: Algorithm 40, line 2)."""
    return (h * G) // H


def check_gq_parameters(X, Z, W_q, b_q, W_k, b_k, W_v, b_v, W_o, b_o) -> tuple[int, int]:
    """Shapes of the H query heads, the G kv heads and W_o, b_o; returns (H, G)."""
    check_shape("W_q", W_q, ("H", "d_attn", "d_x"))
    check_shape("W_k", W_k, ("G", "d_attn", "d_z"))
    check_shape("W_v", W_v, ("G", "d_mid", "d_z"))
    H, d_attn, G, d_mid = W_q.shape[0], W_q.shape[1], W_k.shape[0], W_v.shape[1]
    check_groups(H, G)
    d_x, d_z = X.shape[0], Z.shape[0]
    for name, arr, shape in (("W_q", W_q, (H, d_attn, d_x)), ("b_q", b_q, (H, d_attn)),
                             ("W_k", W_k, (G, d_attn, d_z)), ("b_k", b_k, (G, d_attn)),
                             ("W_v", W_v, (G, d_mid, d_z)), ("b_v", b_v, (G, d_mid))):
        check_array(name, arr, shape)
    check_array("W_o", W_o, ("d_out", H * d_mid))
    check_array("b_o", b_o, (W_o.shape[0],))
    return H, G


def gq_attention(X: np.ndarray, Z: np.ndarray, W_q: np.ndarray, b_q: np.ndarray,
                 W_k: np.ndarray, b_k: np.ndarray, W_v: np.ndarray, b_v: np.ndarray,
                 W_o: np.ndarray, b_o: np.ndarray, Mask: np.ndarray | None = None,
                 cache: dict | None = None) -> np.ndarray:
    """Grouped-query attention (spec: Algorithm 40, spec/algorithms/40-gq-attention.md).

    Shapes in the module docstring. Returns V_tilde (d_out, l_x). If ``cache`` is a dict it
    receives each query head's Algorithm 4 cache (``heads``), the kv head of each query head
    (``groups``), G, the stacked head outputs ``Y`` and ``W_o``.
    """
    check_array("X", X, ("d_x", "l_x"))
    check_array("Z", Z, ("d_z", "l_z"))
    H, G = check_gq_parameters(X, Z, W_q, b_q, W_k, b_k, W_v, b_v, W_o, b_o)
    head_caches = [{} if cache is not None else None for _ in range(H)]

    Y_heads, groups = [], []
    for h in range(H):  # Alg 40 L1
        g = kv_head(h, H, G)  # Alg 40 L2
        Y_heads.append(attention(X, Z, W_q[h], b_q[h], W_k[g], b_k[g], W_v[g], b_v[g],
                                 Mask, cache=head_caches[h]))  # Alg 40 L3
        groups.append(g)
    Y = np.concatenate(Y_heads, axis=0)  # Alg 40 L4, (H*d_mid, l_x)
    V_tilde = W_o @ Y + b_o[:, None]  # Alg 40 L5
    if cache is not None:
        cache.update(heads=head_caches, groups=groups, G=G, Y=Y, W_o=W_o)
    return V_tilde


_KV = ("W_k", "b_k", "W_v", "b_v")


def gq_attention_backward(d_out: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Gradient of Algorithm 40 (spec: Algorithm 41, 41-gq-attention-backward.md).

    d_out: dV_tilde (d_out, l_x); ``cache`` as filled by ``gq_attention``. Returns the
    gradients of X, Z, W_q (H, d_attn, d_x), b_q (H, d_attn), W_k (G, ...), b_k, W_v, b_v,
    W_o and b_o; a kv head's gradient is summed over the query heads of its group.
    """
    _need(cache, "gq_attention", "heads", "groups", "G", "Y", "W_o")
    Y, W_o, heads, groups, G = (cache[k] for k in ("Y", "W_o", "heads", "groups", "G"))
    H = len(heads)
    d_mid = Y.shape[0] // H
    check_array("dV_tilde", d_out, (W_o.shape[0], Y.shape[1]))

    dW_o, db_o = d_out @ Y.T, d_out.sum(axis=1)  # Alg 41 L1
    dY = W_o.T @ d_out  # Alg 41 L2, (H*d_mid, l_x)
    dX, dZ = np.zeros_like(heads[0]["X"]), np.zeros_like(heads[0]["Z"])  # Alg 41 L3
    dkv = {name: [0.0] * G for name in _KV}
    dW_q, db_q = [], []
    for h in range(H):  # Alg 41 L4
        g = groups[h]  # Alg 41 L5
        grads_h = attention_backward(dY[h * d_mid:(h + 1) * d_mid, :], heads[h])  # Alg 41 L6
        dX, dZ = dX + grads_h["X"], dZ + grads_h["Z"]  # Alg 41 L7
        dW_q.append(grads_h["W_q"])
        db_q.append(grads_h["b_q"])
        for name in _KV:
            dkv[name][g] = dkv[name][g] + grads_h[name]  # Alg 41 L8
    return {"X": dX, "Z": dZ, "W_q": np.stack(dW_q), "b_q": np.stack(db_q),  # Alg 41 L9
            **{name: np.stack(dkv[name]) for name in _KV}, "W_o": dW_o, "b_o": db_o}
