"""Token and positional embeddings, batched (spec: Algorithms 1-2, 01/02-*-embedding.md).

The spec's W_e is (d_e, N_V) with one column per token, and W_p is (d_e, l_max) with one
column per position; a lookup of column v is row v of the transpose, ``F.embedding(x, W_e.T)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from formal_transformers.errors import SequenceLengthError, SpecDTypeError
from formal_transformers.validation import check_shape, check_tokens
from torch_impl._checks import check_tensor


def token_embedding(x: torch.Tensor, W_e: torch.Tensor) -> torch.Tensor:
    """e = W_e[:, v] for every token v of x (spec: Algorithm 1, 01-token-embedding.md).

    x: (B, l) integer ids in [0, N_V); W_e: (d_e, N_V). Returns (B, l, d_e).
    """
    check_tensor("W_e", W_e, ("d_e", "N_V"))
    if not isinstance(x, torch.Tensor):
        raise SpecDTypeError(f"x must be a torch.Tensor of token ids, got {type(x).__name__}")
    check_shape("x", x, ("B", "l"))
    check_tokens("x", x, W_e.shape[1])
    if x.dtype not in (torch.int64, torch.int32):  # any integer dtype, as the reference
        x = x.long()
    return F.embedding(x, W_e.T)  # (B, l, d_e)


def positional_embedding(l: int, W_p: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """e_p = W_p[:, t] for t in offset..offset+l-1 (spec: Algorithm 2, 02-positional-embedding.md).

    W_p: (d_e, l_max). Returns (l, d_e); ``offset`` lets a KV-cached decoder embed the
    positions after the ones already processed.
    """
    check_tensor("W_p", W_p, ("d_e", "l_max"))
    l_max = W_p.shape[1]
    if not isinstance(l, int) or not isinstance(offset, int) or l < 1 or offset < 0:
        raise SequenceLengthError(f"positions need an integer length l >= 1 and offset >= 0, "
                                  f"got l={l!r}, offset={offset!r}")
    if offset + l > l_max:
        raise SequenceLengthError(f"positions {offset}..{offset + l - 1} exceed the context "
                                  f"size l_max = {l_max} (the columns of W_p)")
    return W_p[:, offset:offset + l].T  # (l, d_e)
