"""Attention with logit soft-capping, forward (spec: Algorithm 46, spec/algorithms/46-softcap.md).

Literal float64 mirror in the spec's column layout::

    soft_cap(S, c) -> c tanh(S / c)             # elementwise, any shape (Alg 46 L3)
    softcap_attention(X (d_x, l_x), Z (d_z, l_z), W_q (d_attn, d_x), b_q, W_k (d_attn, d_z),
                      b_k, W_v (d_out, d_z), b_v, c, Mask (l_z, l_x) | None, cache=None)
        -> V_tilde (d_out, l_x)

The cap is applied to the scaled scores K^T Q / sqrt(d_attn), before the mask. The backward
(Algorithm 47) is ``softcap_backward`` below.
"""

from __future__ import annotations

import numpy as np

from formal_transformers.attention_options import check_cap
from formal_transformers.validation import check_array
from reference_numpy.attention import _check_qkv, _prepare_mask, softmax_columns
from reference_numpy.backward import _need, softmax_columns_backward


def soft_cap(S: np.ndarray, c: float) -> np.ndarray:
    """c tanh(S / c), elementwise (spec: Algorithm 46, line 3); every entry in (-c, c)."""
    c = check_cap(c)
    return c * np.tanh(S / c)


def soft_cap_backward(d_out: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Gradient of c tanh(S / c) (Algorithm 47, line 3 without the score scale):
    dS * (1 - T^2), T = tanh(S / c) the kept (finite, unmasked) capped scores over c."""
    return d_out * (1.0 - T * T)


def softcap_attention(X: np.ndarray, Z: np.ndarray, W_q: np.ndarray, b_q: np.ndarray,
                      W_k: np.ndarray, b_k: np.ndarray, W_v: np.ndarray, b_v: np.ndarray,
                      c: float, Mask: np.ndarray | None = None, cache: dict | None = None
                      ) -> np.ndarray:
    """Soft-capped attention (spec: Algorithm 46, spec/algorithms/46-softcap.md).

    Shapes in the module docstring. If ``cache`` is a dict, the backward pass's needs (X, Z, Q,
    K, V, the capped scores' tanh T, the weights A, c and the parameters) are stored in it.
    """
    check_array("X", X, ("d_x", "l_x"))
    check_array("Z", Z, ("d_z", "l_z"))
    (d_x, l_x), (d_z, l_z) = X.shape, Z.shape
    d_attn = _check_qkv(W_q, b_q, W_k, b_k, W_v, b_v, d_x, d_z)
    c = check_cap(c)
    Mask = _prepare_mask(Mask, l_z, l_x)

    Q, K, V = W_q @ X + b_q[:, None], W_k @ Z + b_k[:, None], W_v @ Z + b_v[:, None]  # Alg 46 L1
    S = K.T @ Q / np.sqrt(d_attn)  # Alg 46 L2
    S = soft_cap(S, c)  # Alg 46 L3
    T = S / c
    for t_z in range(l_z):  # Alg 46 L4
        for t_x in range(l_x):
            if not Mask[t_z, t_x]:  # Alg 46 L5
                S[t_z, t_x] = -np.inf
    A = softmax_columns(S)
    V_tilde = V @ A  # Alg 46 L6
    if cache is not None:
        cache.update(X=X, Z=Z, Q=Q, K=K, V=V, T=T, A=A, c=c, W_q=W_q, W_k=W_k, W_v=W_v)
    return V_tilde


def softcap_backward(d_out: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Gradient of Algorithm 46 (spec: Algorithm 47, 47-softcap-backward.md).

    d_out: dV_tilde (d_out, l_x). Returns the gradients of X, Z, W_q, b_q, W_k, b_k, W_v, b_v.
    """
    _need(cache, "softcap_attention", "X", "Z", "Q", "K", "V", "T", "A", "W_q", "W_k", "W_v")
    X, Z, Q, K, V, T, A = (cache[k] for k in ("X", "Z", "Q", "K", "V", "T", "A"))
    W_q, W_k, W_v = cache["W_q"], cache["W_k"], cache["W_v"]
    check_array("dV_tilde", d_out, (V.shape[0], X.shape[1]))

    dV, dA = d_out @ A.T, V.T @ d_out  # Alg 47 L1
    dS = softmax_columns_backward(dA, A)  # Alg 47 L2
    dS = soft_cap_backward(dS, T) / np.sqrt(Q.shape[0])  # Alg 47 L3
    dQ, dK = K @ dS, Q @ dS.T  # Alg 47 L4
    dW_q, db_q, dW_k, db_k = dQ @ X.T, dQ.sum(axis=1), dK @ Z.T, dK.sum(axis=1)  # Alg 47 L5
    dW_v, db_v = dV @ Z.T, dV.sum(axis=1)
    dX, dZ = W_q.T @ dQ, W_k.T @ dK + W_v.T @ dV  # Alg 47 L6
    return {"X": dX, "Z": dZ, "W_q": dW_q, "b_q": db_q, "W_k": dW_k,  # Alg 47 L7
            "b_k": db_k, "W_v": dW_v, "b_v": db_v}
