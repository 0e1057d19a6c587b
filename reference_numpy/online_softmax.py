"""Attention by the online softmax over key blocks, forward and recomputation backward
(spec: Algorithms 48-49, spec/algorithms/48-*.md and 49-*.md).

Literal float64 mirror in the spec's column layout::

    online_softmax_attention(X (d_x, l_x), Z (d_z, l_z), W_q (d_attn, d_x), b_q, W_k (d_attn, d_z),
                             b_k, W_v (d_out, d_z), b_v, Mask (l_z, l_x) | None, block,
                             cache=None) -> V_tilde (d_out, l_x)
    online_softmax_attention_backward(dV_tilde (d_out, l_x), cache) -> gradients dict

No l_z x l_x array is ever formed: with ``Mask=None`` the all-ones mask is not materialised,
and the working set is one block of B_c keys (``block``). The cache keeps Q, K, V, the output
and the log-normalisers L (l_x,) -- not the attention weights.
"""

from __future__ import annotations

import numpy as np

from formal_transformers.attention_options import check_positive_int
from formal_transformers.errors import MaskError
from formal_transformers.validation import check_array, check_length, check_mask
from reference_numpy.attention import _check_qkv
from reference_numpy.backward import _need


def _blocks(l_z: int, block: int) -> list[range]:
    """Key blocks J_j = {j B_c, ..., min((j+1) B_c, l_z) - 1} (Alg 48 L3-4)."""
    return [range(start, min(start + block, l_z)) for start in range(0, l_z, block)]


def _block_scores(K: np.ndarray, Q: np.ndarray, J: range, Mask: np.ndarray | None
                  ) -> np.ndarray:
    """S = K[:, J]^T Q / sqrt(d_attn), -inf where Mask[J, :] is 0 (Alg 48 L5)."""
    S = K[:, J.start:J.stop].T @ Q / np.sqrt(Q.shape[0])
    if Mask is not None:
        S[~Mask[J.start:J.stop, :]] = -np.inf
    return S


def _check_online_mask(Mask: np.ndarray | None, l_z: int, l_x: int) -> None:
    check_length("Z (the context)", l_z, l_z)
    if Mask is None:
        return
    check_mask("Mask", Mask, (l_z, l_x))
    seen = Mask.any(axis=0)
    if not seen.all():
        t_x = int(np.flatnonzero(~seen)[0])
        raise MaskError(f"Mask column {t_x} is all zeros: query token {t_x} attends to nothing "
                        "and its softmax is undefined (spec: Algorithm 4, edge cases)")


def online_softmax_attention(X: np.ndarray, Z: np.ndarray, W_q: np.ndarray, b_q: np.ndarray,
                             W_k: np.ndarray, b_k: np.ndarray, W_v: np.ndarray,
                             b_v: np.ndarray, Mask: np.ndarray | None = None, block: int = 1,
                             cache: dict | None = None) -> np.ndarray:
    """Attention by the online softmax (spec: Algorithm 48); shapes in the module docstring."""
    check_array("X", X, ("d_x", "l_x"))
    check_array("Z", Z, ("d_z", "l_z"))
    (d_x, l_x), (d_z, l_z) = X.shape, Z.shape
    _check_qkv(W_q, b_q, W_k, b_k, W_v, b_v, d_x, d_z)
    block = check_positive_int("block (B_c)", block)
    _check_online_mask(Mask, l_z, l_x)

    Q, K, V = W_q @ X + b_q[:, None], W_k @ Z + b_k[:, None], W_v @ Z + b_v[:, None]  # Alg 48 L1
    m, s, O = np.full(l_x, -np.inf), np.zeros(l_x), np.zeros((V.shape[0], l_x))  # Alg 48 L2
    for J in _blocks(l_z, block):  # Alg 48 L3-4
        S = _block_scores(K, Q, J, Mask)  # Alg 48 L5, (|J|, l_x)
        m_new = np.maximum(m, S.max(axis=0))  # Alg 48 L6
        seen = np.isfinite(m_new)  # queries with an unmasked key so far
        m_seen = np.where(seen, m_new, 0.0)  # -inf - (-inf) never evaluated
        alpha = np.where(seen, np.exp(np.where(seen, m, 0.0) - m_seen), 0.0)  # Alg 48 L7
        P = np.where(seen, np.exp(S - m_seen), 0.0)
        s = alpha * s + P.sum(axis=0)  # Alg 48 L8
        O = O * alpha + V[:, J.start:J.stop] @ P  # Alg 48 L9
        m = m_new  # Alg 48 L10
    V_tilde = O / s  # Alg 48 L11
    if cache is not None:
        cache.update(X=X, Z=Z, Q=Q, K=K, V=V, V_tilde=V_tilde, L=m + np.log(s), Mask=Mask,
                     block=block, W_q=W_q, W_k=W_k, W_v=W_v)
    return V_tilde


def online_softmax_attention_backward(d_out: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Gradient of Algorithm 48 by recomputation (spec: Algorithm 49).

    d_out: dV_tilde (d_out, l_x). Returns the gradients of X, Z, W_q, b_q, W_k, b_k, W_v, b_v.
    """
    _need(cache, "online_softmax_attention", "X", "Z", "Q", "K", "V", "V_tilde", "L", "Mask",
          "block", "W_q", "W_k", "W_v")
    X, Z, Q, K, V, V_tilde, L = (cache[k] for k in ("X", "Z", "Q", "K", "V", "V_tilde", "L"))
    W_q, W_k, W_v = cache["W_q"], cache["W_k"], cache["W_v"]
    check_array("dV_tilde", d_out, V_tilde.shape)

    D = np.sum(d_out * V_tilde, axis=0)  # Alg 49 L1, (l_x,)
    dQ, dK, dV = np.zeros_like(Q), np.zeros_like(K), np.zeros_like(V)  # Alg 49 L2
    for J in _blocks(K.shape[1], cache["block"]):  # Alg 49 L3-4
        P = np.exp(_block_scores(K, Q, J, cache["Mask"]) - L)  # Alg 49 L5, (|J|, l_x)
        dV[:, J.start:J.stop], dP = d_out @ P.T, V[:, J.start:J.stop].T @ d_out  # Alg 49 L6
        dS = P * (dP - D) / np.sqrt(Q.shape[0])  # Alg 49 L7
        dQ, dK[:, J.start:J.stop] = dQ + K[:, J.start:J.stop] @ dS, Q @ dS.T  # Alg 49 L8
    dW_q, db_q, dW_k, db_k = dQ @ X.T, dQ.sum(axis=1), dK @ Z.T, dK.sum(axis=1)  # Alg 49 L9
    dW_v, db_v = dV @ Z.T, dV.sum(axis=1)
    dX, dZ = W_q.T @ dQ, W_k.T @ dK + W_v.T @ dV  # Alg 49 L10
    return {"X": dX, "Z": dZ, "W_q": dW_q, "b_q": db_q, "W_k": dW_k,  # Alg 49 L11
            "b_k": db_k, "W_v": dW_v, "b_v": db_v}
