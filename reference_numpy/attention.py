"""Attention family, forward (spec: Algorithms 3-5, spec/algorithms/03-05).

Literal float64 mirror of the pseudocode: column layout, the spec's symbol names, loops where
the pseudocode loops. Each mirrored line cites its spec line (``# Alg 4 L3``).
"""

from __future__ import annotations

import numpy as np

from formal_transformers.errors import MaskError
from formal_transformers.validation import check_finite, check_mask, check_shape


def softmax_columns(S: np.ndarray) -> np.ndarray:
    """Column-wise softmax (spec/notation.md): each column of the result sums to one."""
    S_max = np.max(S, axis=0, keepdims=True)  # subtracting the column max changes nothing
    E = np.exp(S - S_max)
    return E / np.sum(E, axis=0, keepdims=True)


def attention(X: np.ndarray, Z: np.ndarray, W_q: np.ndarray, b_q: np.ndarray, W_k: np.ndarray,
              b_k: np.ndarray, W_v: np.ndarray, b_v: np.ndarray, Mask: np.ndarray | None = None,
              cache: dict | None = None) -> np.ndarray:
    """Attention (spec: Algorithm 4, spec/algorithms/04-attention.md).

    X: (d_x, l_x) primary sequence; Z: (d_z, l_z) context; Mask: (l_z, l_x) bool or None
    (all ones). Returns V_tilde: (d_out, l_x). If ``cache`` is a dict, the intermediates the
    backward pass needs (X, Z, Q, K, V, A, Mask and the parameters) are stored in it.
    """
    check_shape("X", X, ("d_x", "l_x"))
    check_shape("Z", Z, ("d_z", "l_z"))
    (d_x, l_x), (d_z, l_z) = X.shape, Z.shape
    d_attn, d_out = W_q.shape[0], W_v.shape[0]
    for name, arr, shape in (("W_q", W_q, (d_attn, d_x)), ("b_q", b_q, (d_attn,)),
                             ("W_k", W_k, (d_attn, d_z)), ("b_k", b_k, (d_attn,)),
                             ("W_v", W_v, (d_out, d_z)), ("b_v", b_v, (d_out,))):
        check_shape(name, arr, shape)
        check_finite(name, arr)
    check_finite("X", X)
    check_finite("Z", Z)
    if Mask is None:
        Mask = np.ones((l_z, l_x), dtype=bool)
    check_mask("Mask", Mask, (l_z, l_x))
    if not Mask.any(axis=0).all():
        t_x = int(np.flatnonzero(~Mask.any(axis=0))[0])
        raise MaskError(f"Mask column {t_x} is all zeros: query token {t_x} attends to nothing "
                        "and its softmax is undefined (spec: Algorithm 4, edge cases)")

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
