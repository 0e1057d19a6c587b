"""Masks as algorithms, batched-ready (spec: Algorithms 42-43, 42-*.md and 43-*.md).

    sliding_window_mask(l, w, device=None) -> (l, l) bool   # [t_x - w < t_z <= t_x]
    block_sparse_mask(l, b, c, device=None) -> (l, l) bool  # Child et al.'s fixed pattern, causal

Spec orientation, like ``torch_impl.attention.causal_mask``: ``Mask[t_z, t_x]`` is True when
query t_x may attend to key t_z; pass it as ``mask=`` to the attention functions (SDPA's
(query, key) order is handled in ``sdpa``). In FlashAttention's ``window_size=(left, right)``
terms the sliding window is ``(w - 1, 0)``. Queries after a cache of ``offset`` positions use the
last columns of the full mask: ``sliding_window_mask(offset + l_x, w)[:, offset:]``.
"""

from __future__ import annotations

import torch

from formal_transformers.attention_options import check_block_sparse, check_positive_int


def _positions(l: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.arange(l, device=device)
    return t[:, None], t[None, :]  # t_z (l, 1), t_x (1, l)


def sliding_window_mask(l: int, w: int, device: torch.device | str | None = None
                        ) -> torch.Tensor:
    """Sliding-window causal mask (spec: Algorithm 42): min(t_x + 1, w) keys per query."""
    l, w = check_positive_int("l", l), check_positive_int("w", w)
    t_z, t_x = _positions(l, device)
    return (t_x - w < t_z) & (t_z <= t_x)


def block_sparse_mask(l: int, b: int, c: int, device: torch.device | str | None = None
                      ) -> torch.Tensor:
    """Fixed block-sparse causal mask (spec: Algorithm 43), 1 <= c <= b."""
    l, (b, c) = check_positive_int("l", l), check_block_sparse(b, c)
    t_z, t_x = _positions(l, device)
    local = t_z // b == t_x // b
    summary = t_z % b >= b - c
    return (t_z <= t_x) & (local | summary)
