"""QK-norm, forward (spec: Algorithm 44, spec/algorithms/44-qk-norm.md).

Literal float64 mirror in the spec's column layout::

    qk_norm(Q (H*d_attn, l), gamma, H, axis, eps, cache=None) -> Q_hat (H*d_attn, l)

Rows h*d_attn .. (h+1)*d_attn - 1 of Q are head h (Algorithm 5's stacking: for the stacked
per-head queries Q^h of a reference loop, Q = np.concatenate([Q^0, ..., Q^{H-1}])).
axis "per_head": gamma (d_attn,), statistics per head; axis "projection": gamma (H*d_attn,),
statistics over the whole column. Apply it to the queries with gamma_q and to the keys with
gamma_k. The backward (Algorithm 45) is ``qk_norm_backward`` below.
"""

from __future__ import annotations

import math

import numpy as np

from formal_transformers.attention_options import check_heads, check_qk_norm_options
from formal_transformers.errors import NonFiniteError
from formal_transformers.validation import check_array
from reference_numpy.backward import _need


def _normalised(q: np.ndarray, gamma: np.ndarray, eps: float) -> tuple[np.ndarray, float]:
    """gamma * q / sqrt(mean(q^2) + eps) and the root r it divides by."""
    r = math.sqrt(sum(q[i] ** 2 for i in range(q.shape[0])) / q.shape[0] + eps)
    if r == 0.0:
        raise NonFiniteError("qk_norm of an all-zero vector with eps = 0 divides by zero; use "
                             "eps > 0 (spec: Algorithm 44, edge cases)")
    return gamma * q / r, r


def qk_norm(Q: np.ndarray, gamma: np.ndarray, H: int, axis: str, eps: float,
            cache: dict | None = None) -> np.ndarray:
    """QK-norm (spec: Algorithm 44, spec/algorithms/44-qk-norm.md); shapes in the module doc.

    If ``cache`` is a dict, the backward pass's needs (Q, gamma, H, axis and the roots r,
    one per (head, token) or per token) are stored in it.
    """
    eps = check_qk_norm_options(axis, eps)
    check_array("Q", Q, ("H*d_attn", "l"))
    H = check_heads(H, Q.shape[0])
    d_attn, l = Q.shape[0] // H, Q.shape[1]
    check_array("gamma", gamma, (d_attn,) if axis == "per_head" else (H * d_attn,))

    Q_hat, roots = np.zeros_like(Q), np.zeros((H, l) if axis == "per_head" else (1, l))
    for t in range(l):  # Alg 44 L1
        if axis == "per_head":  # Alg 44 L2
            for h in range(H):  # Alg 44 L3
                q = Q[h * d_attn:(h + 1) * d_attn, t]  # Alg 44 L4
                Q_hat[h * d_attn:(h + 1) * d_attn, t], roots[h, t] = _normalised(
                    q, gamma, eps)  # Alg 44 L5
        else:  # Alg 44 L6
            q = Q[:, t]  # Alg 44 L7
            Q_hat[:, t], roots[0, t] = _normalised(q, gamma, eps)  # Alg 44 L8
    if cache is not None:
        cache.update(Q=Q, gamma=gamma, H=H, axis=axis, roots=roots)
    return Q_hat  # Alg 44 L9


def qk_norm_backward(d_out: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Gradient of Algorithm 44 (spec: Algorithm 45, 45-qk-norm-backward.md).

    d_out: dQ_hat (H*d_attn, l); ``cache`` as filled by ``qk_norm``. Returns
    {"Q": dQ (H*d_attn, l), "gamma": dgamma (gamma's shape)}.
    """
    _need(cache, "qk_norm", "Q", "gamma", "H", "axis", "roots")
    Q, gamma, H, axis, roots = (cache[k] for k in ("Q", "gamma", "H", "axis", "roots"))
    check_array("dQ_hat", d_out, Q.shape)
    d_attn, l = Q.shape[0] // H, Q.shape[1]
    blocks = [slice(h * d_attn, (h + 1) * d_attn) for h in range(H)] \
        if axis == "per_head" else [slice(0, H * d_attn)]

    dgamma, dQ = np.zeros_like(gamma), np.zeros_like(Q)  # Alg 45 L1
    for t in range(l):  # Alg 45 L2
        for i, beta in enumerate(blocks):
            q, r = Q[beta, t], roots[i, t]  # Alg 45 L3
            n, u = q.shape[0], gamma * d_out[beta, t]
            dgamma = dgamma + d_out[beta, t] * q / r  # Alg 45 L4
            dQ[beta, t] = (u - q * (q @ u) / (n * r ** 2)) / r  # Alg 45 L5
    return {"Q": dQ, "gamma": dgamma}  # Alg 45 L6
