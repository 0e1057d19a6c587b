"""Unembedding, batched (spec: Algorithm 7, spec/algorithms/07-unembedding.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from torch_impl._checks import check_features, check_parameters


def unembedding_logits(X: torch.Tensor, W_u: torch.Tensor) -> torch.Tensor:
    """The logits W_u e of every position: X (..., d_e), W_u (N_V, d_e) -> (..., N_V)."""
    check_features("X", X)
    check_parameters([("W_u", W_u, ("N_V", X.shape[-1]))], X.dtype)
    return F.linear(X, W_u)


def unembedding(X: torch.Tensor, W_u: torch.Tensor) -> torch.Tensor:
    """p = softmax(W_u e) for every position (spec: Algorithm 7).

    X: (B, l, d_e) (any leading axes); W_u: (N_V, d_e). Returns P: (B, l, N_V), each row a
    distribution over the vocabulary. The models return the logits; P is their softmax.
    """
    return torch.softmax(unembedding_logits(X, W_u), dim=-1)
