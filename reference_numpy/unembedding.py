"""Unembedding, forward, and the cross-entropy loss of a target token (spec: Algorithm 7,
spec/algorithms/07-unembedding.md; the loss is the forward of Algorithm 23,
spec/algorithms/23-unembedding-backward.md).

The backward pass (Algorithm 23) is in reference_numpy/backward.py.
"""

from __future__ import annotations

import numpy as np

from formal_transformers.validation import check_array, check_token_id
from reference_numpy.attention import softmax_columns


def unembedding(e: np.ndarray, W_u: np.ndarray, cache: dict | None = None) -> np.ndarray:
    """Unembedding (spec: Algorithm 7, spec/algorithms/07-unembedding.md).

    e: (d_e,); W_u: (N_V, d_e). Returns p: (N_V,), a probability distribution. If ``cache``
    is a dict, e, W_u and p are stored in it.
    """
    check_array("e", e, ("d_e",))
    check_array("W_u", W_u, ("N_V", e.shape[0]))
    p = softmax_columns(W_u @ e)  # Alg 7 L1
    if cache is not None:
        cache.update(e=e, W_u=W_u, p=p)
    return p


def unembedding_loss(e: np.ndarray, W_u: np.ndarray, y: int, cache: dict | None = None
                     ) -> float:
    """Cross-entropy loss -log p[y] of a target token y, p = Unembedding(e | W_u)
    (spec: the forward of Algorithm 23, spec/algorithms/23-unembedding-backward.md).

    e: (d_e,); W_u: (N_V, d_e); y in [N_V]. Returns the scalar loss. If ``cache`` is a dict,
    it receives what unembedding stores plus y, as unembedding_backward needs.
    """
    unembedding(e, W_u, cache=cache)  # Algorithm 7: validates e, W_u and fills the cache
    check_token_id("y", y, W_u.shape[0])
    z = W_u @ e
    z_max = np.max(z)
    # -log p[y] = logsumexp(z) - z[y]: the same number as -log(p[y]), without underflow
    loss = float(z_max + np.log(np.sum(np.exp(z - z_max))) - z[y])
    if cache is not None:
        cache.update(y=int(y))
    return loss
