"""Attention family, forward (spec: Algorithms 3-5, spec/algorithms/03-05).

Literal float64 mirror of the pseudocode: column layout, the spec's symbol names, loops where
the pseudocode loops. Each mirrored line cites its spec line (``# Alg 4 L3``). The backward
passes (Algorithms 19-20) are in reference_numpy/backward.py.
"""

from __future__ import annotations

import numpy as np

from formal_transformers.errors import MaskError, SpecShapeError
from formal_transformers.validation import check_array, check_length, check_mask, check_shape


def softmax_columns(S: np.ndarray) -> np.ndarray:
    """Column-wise softmax (spec/notation.md): each column of the result sums to one."""
    S_max = np.max(S, axis=0, keepdims=True)  # subtracting the column max changes nothing
    E = np.exp(S - S_max)
    return E / np.sum(E, axis=0, keepdims=True)


def _check_qkv(W_q, b_q, W_k, b_k, W_v, b_v, d_x: int, d_z: int) -> int:
    """Shapes of one head's W_qkv against d_x, d_z (d_attn, d_out read from W_q, W_v).

    Returns d_attn, which must be positive: the scores are divided by sqrt(d_attn).
    """
    check_shape("W_q", W_q, ("d_attn", d_x))
    check_shape("W_v", W_v, ("d_out", d_z))
    d_attn, d_out = W_q.shape[0], W_v.shape[0]
    if d_attn < 1:
        raise SpecShapeError(f"W_q must have at least one row (d_attn >= 1), got shape {W_q.shape}")
    for name, arr, shape in (("W_q", W_q, (d_attn, d_x)), ("b_q", b_q, (d_attn,)),
                             ("W_k", W_k, (d_attn, d_z)), ("b_k", b_k, (d_attn,)),
                             ("W_v", W_v, (d_out, d_z)), ("b_v", b_v, (d_out,))):
        check_array(name, arr, shape)
    return d_attn


def basic_attention(e: np.ndarray, E_ctx: np.ndarray, W_q: np.ndarray, b_q: np.ndarray,
                    W_k: np.ndarray, b_k: np.ndarray, W_v: np.ndarray, b_v: np.ndarray
                    ) -> np.ndarray:
    """Basic single-query attention (spec: Algorithm 3, spec/algorithms/03-basic-attention.md).

    e: (d_x,) the current token; E_ctx: (d_z, l_z) the context, one column e_t per token.
    Returns v_tilde: (d_out,).
    """
    check_array("e", e, ("d_x",))
    check_array("E_ctx", E_ctx, ("d_z", "l_z"))
    d_attn = _check_qkv(W_q, b_q, W_k, b_k, W_v, b_v, e.shape[0], E_ctx.shape[0])
    l_z = E_ctx.shape[1]
    check_length("E_ctx (the context)", l_z, l_z)

    q = W_q @ e + b_q  # Alg 3 L1
    k, v = [], []
    for t in range(l_z):  # Alg 3 L2
        e_t = E_ctx[:, t]
        k.append(W_k @ e_t + b_k)  # Alg 3 L3
        v.append(W_v @ e_t + b_v)  # Alg 3 L4
    s = np.array([q @ k[t] / np.sqrt(d_attn) for t in range(l_z)])
    alpha = softmax_columns(s)  # Alg 3 L5 (shifted by max(s) first: same alpha, no overflow)
    return sum(alpha[t] * v[t] for t in range(l_z))  # Alg 3 L6


def _prepare_mask(Mask: np.ndarray | None, l_z: int, l_x: int) -> np.ndarray:
    """All ones if omitted; MaskError for a wrong shape/dtype or a fully masked query column."""
    check_length("Z (the context)", l_z, l_z)
    if Mask is None:
        return np.ones((l_z, l_x), dtype=bool)
    check_mask("Mask", Mask, (l_z, l_x))
    if not Mask.any(axis=0).all():
        t_x = int(np.flatnonzero(~Mask.any(axis=0))[0])
        raise MaskError(f"Mask column {t_x} is all zeros: query token {t_x} attends to nothing "
                        "and its softmax is undefined (spec: Algorithm 4, edge cases)")
    return Mask


def attention(X: np.ndarray, Z: np.ndarray, W_q: np.ndarray, b_q: np.ndarray, W_k: np.ndarray,
              b_k: np.ndarray, W_v: np.ndarray, b_v: np.ndarray, Mask: np.ndarray | None = None,
              cache: dict | None = None) -> np.ndarray:
    """Attention (spec: Algorithm 4, spec/algorithms/04-attention.md).

    X: (d_x, l_x) primary sequence; Z: (d_z, l_z) context; Mask: (l_z, l_x) bool or None
    (all ones). Returns V_tilde: (d_out, l_x). If ``cache`` is a dict, the intermediates the
    backward pass needs (X, Z, Q, K, V, A, Mask and the parameters) are stored in it.
    """
    check_array("X", X, ("d_x", "l_x"))
    check_array("Z", Z, ("d_z", "l_z"))
    (d_x, l_x), (d_z, l_z) = X.shape, Z.shape
    d_attn = _check_qkv(W_q, b_q, W_k, b_k, W_v, b_v, d_x, d_z)
    Mask = _prepare_mask(Mask, l_z, l_x)

    Q = W_q @ X + b_q[:, None]  # Alg 4 L1
    K = W_k @ Z + b_k[:, None]  # Alg 4 L2
    V = W_v @ Z + b_v[:, None]  # Alg 4 L3
    S = K.T @ Q  # Alg 4 L4
    for t_z in range(l_z):  # Alg 4 L5
        for t_x in range(l_x):
            if not Mask[t_z, t_x]:  # Alg 4 L6
                S[t_z, t_x] = -np.inf
    A = softmax_columns(S / np.sqrt(d_attn))
    V_tilde = V @ A  # Alg 4 L7
    if cache is not None:
        cache.update(X=X, Z=Z, Q=Q, K=K, V=V, A=A, Mask=Mask, W_q=W_q, W_k=W_k, W_v=W_v)
    return V_tilde


def _check_mh_parameters(X, Z, W_q, b_q, W_k, b_k, W_v, b_v, W_o, b_o) -> int:
    """Shapes of the stacked heads (H, ...) and of W_o, b_o; returns H."""
    check_shape("W_q", W_q, ("H", "d_attn", "d_x"))
    check_shape("W_v", W_v, ("H", "d_mid", "d_z"))
    H, d_attn, d_mid = W_q.shape[0], W_q.shape[1], W_v.shape[1]
    if H < 1:
        raise SpecShapeError(f"W_q must stack at least one head (H >= 1), got shape {W_q.shape}")
    d_x, d_z = X.shape[0], Z.shape[0]
    for name, arr, shape in (("W_q", W_q, (H, d_attn, d_x)), ("b_q", b_q, (H, d_attn)),
                             ("W_k", W_k, (H, d_attn, d_z)), ("b_k", b_k, (H, d_attn)),
                             ("W_v", W_v, (H, d_mid, d_z)), ("b_v", b_v, (H, d_mid))):
        check_array(name, arr, shape)
    check_array("W_o", W_o, ("d_out", H * d_mid))
    check_array("b_o", b_o, (W_o.shape[0],))
    return H


def mh_attention(X: np.ndarray, Z: np.ndarray, W_q: np.ndarray, b_q: np.ndarray,
                 W_k: np.ndarray, b_k: np.ndarray, W_v: np.ndarray, b_v: np.ndarray,
                 W_o: np.ndarray, b_o: np.ndarray, Mask: np.ndarray | None = None,
                 cache: dict | None = None) -> np.ndarray:
    """Multi-head attention (spec: Algorithm 5, spec/algorithms/05-mhattention.md).

    X: (d_x, l_x); Z: (d_z, l_z); heads stacked on axis 0: W_q (H, d_attn, d_x),
    b_q (H, d_attn), W_k (H, d_attn, d_z), b_k (H, d_attn), W_v (H, d_mid, d_z), b_v (H, d_mid);
    W_o (d_out, H*d_mid), b_o (d_out,); Mask (l_z, l_x) bool or None. Returns
    V_tilde: (d_out, l_x). If ``cache`` is a dict it receives each head's attention cache
    (``heads``), the stacked head outputs ``Y`` and ``W_o``.
    """
    check_array("X", X, ("d_x", "l_x"))
    check_array("Z", Z, ("d_z", "l_z"))
    H = _check_mh_parameters(X, Z, W_q, b_q, W_k, b_k, W_v, b_v, W_o, b_o)
    head_caches = [{} if cache is not None else None for _ in range(H)]

    Y_heads = []
    for h in range(H):  # Alg 5 L1
        Y_heads.append(attention(X, Z, W_q[h], b_q[h], W_k[h], b_k[h], W_v[h], b_v[h],
                                 Mask, cache=head_caches[h]))  # Alg 5 L2
    Y = np.concatenate(Y_heads, axis=0)  # Alg 5 L3, (H*d_mid, l_x)
    V_tilde = W_o @ Y + b_o[:, None]  # Alg 5 L4
    if cache is not None:
        cache.update(heads=head_caches, Y=Y, W_o=W_o)
    return V_tilde
