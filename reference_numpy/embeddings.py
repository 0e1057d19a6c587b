"""Token and positional embeddings, forward (spec: Algorithms 1-2,
spec/algorithms/01-token-embedding.md, 02-positional-embedding.md).

Literal float64 mirror of the pseudocode; each mirrored line cites its spec line. The backward
passes (Algorithms 17-18) are in reference_numpy/backward.py.
"""

from __future__ import annotations

import numpy as np

from formal_transformers.validation import check_array, check_position, check_token_id


def token_embedding(v: int, W_e: np.ndarray, cache: dict | None = None) -> np.ndarray:
    """Token embedding (spec: Algorithm 1, spec/algorithms/01-token-embedding.md).

    v: a token id in [N_V]; W_e: (d_e, N_V). Returns e: (d_e,). If ``cache`` is a dict, the
    backward pass's needs (v and the shape of W_e) are stored in it.
    """
    check_array("W_e", W_e, ("d_e", "N_V"))
    check_token_id("v", v, W_e.shape[1])
    e = W_e[:, v].copy()  # Alg 1 L1
    if cache is not None:
        cache.update(v=int(v), W_e_shape=W_e.shape)
    return e


def positional_embedding(t: int, W_p: np.ndarray, cache: dict | None = None) -> np.ndarray:
    """Positional embedding (spec: Algorithm 2, spec/algorithms/02-positional-embedding.md).

    t: a position in [l_max]; W_p: (d_e, l_max). Returns e_p: (d_e,). If ``cache`` is a dict,
    the backward pass's needs (t and the shape of W_p) are stored in it.
    """
    check_array("W_p", W_p, ("d_e", "l_max"))
    check_position("t", t, W_p.shape[1])
    e_p = W_p[:, t].copy()  # Alg 2 L1
    if cache is not None:
        cache.update(t=int(t), W_p_shape=W_p.shape)
    return e_p
