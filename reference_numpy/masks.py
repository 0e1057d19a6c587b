"""Masks as algorithms (spec: Algorithms 42-43, spec/algorithms/42-*.md and 43-*.md).

Literal mirrors producing a boolean ``Mask`` (l, l) in the spec's orientation,
``Mask[t_z, t_x]`` = True when query t_x may attend to key t_z::

    sliding_window_mask(l, w) -> Mask (l, l)      # keys t_x - w + 1 .. t_x
    block_sparse_mask(l, b, c) -> Mask (l, l)     # Child et al.'s fixed pattern, causal

Both feed ``attention`` / ``mh_attention`` / ``gq_attention`` as their ``Mask``.
"""

from __future__ import annotations

import numpy as np

from formal_transformers.attention_options import check_block_sparse, check_positive_int


def sliding_window_mask(l: int, w: int) -> np.ndarray:
    """Sliding-window causal mask (spec: Algorithm 42, 42-sliding-window-mask.md).

    l >= 1 the sequence length, w >= 1 the window (keys seen, the query included).
    Returns Mask (l, l) bool with min(t_x + 1, w) ones in column t_x.
    """
    l, w = check_positive_int("l", l), check_positive_int("w", w)
    Mask = np.zeros((l, l), dtype=bool)
    for t_z in range(l):  # Alg 42 L1
        for t_x in range(l):
            Mask[t_z, t_x] = t_x - w < t_z <= t_x  # Alg 42 L2
    return Mask  # Alg 42 L3


def block_sparse_mask(l: int, b: int, c: int) -> np.ndarray:
    """Fixed block-sparse causal mask (spec: Algorithm 43, 43-block-sparse-mask.md).

    l >= 1 the sequence length, b >= 1 the block size, 1 <= c <= b the summary positions per
    block. Returns Mask (l, l) bool.
    """
    l, (b, c) = check_positive_int("l", l), check_block_sparse(b, c)
    Mask = np.zeros((l, l), dtype=bool)
    for t_z in range(l):  # Alg 43 L1
        for t_x in range(l):
            local = t_z // b == t_x // b  # Alg 43 L2
            summary = t_z % b >= b - c  # Alg 43 L3
            Mask[t_z, t_x] = t_z <= t_x and (local or summary)  # Alg 43 L4
    return Mask  # Alg 43 L5
