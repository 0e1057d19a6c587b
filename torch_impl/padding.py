"""Padded batches: variable-length sequences in one (B, l) tensor (spec: Algorithms 9-10,
"Padded batches").

``real`` (B, l) bool says which positions hold a sequence's tokens; each row's real positions
are one non-empty contiguous block at the start (right padding) or at the end (left padding).
The spec's convention, the one GPT-2 / Hugging Face generation use: a real token's position is
the number of real tokens before it, ``cumsum(real) - 1`` (so left padding shifts the
positions back to 0); padded keys are invisible to every query; outputs at padded positions
are unspecified (here: a padded query attends to itself only, so every value stays finite).
"""

from __future__ import annotations

import torch

from formal_transformers.errors import MaskError


def check_real(real: object, shape: tuple[int, int]) -> torch.Tensor:
    """``real`` must be a bool tensor of ``shape`` whose rows are right- or left-padded."""
    if not isinstance(real, torch.Tensor) or real.dtype != torch.bool or tuple(real.shape) != shape:
        got = (f"{real.dtype} {tuple(real.shape)}" if isinstance(real, torch.Tensor)
               else type(real).__name__)
        raise MaskError(f"attention_mask must be a bool tensor of shape {shape} (True: a real "
                        f"token), got {got}")
    counts = real.sum(dim=1)
    starts = real.int().argmax(dim=1)
    t = torch.arange(shape[1], device=real.device)[None, :]
    block = (t >= starts[:, None]) & (t < (starts + counts)[:, None])
    edge = (starts == 0) | (starts + counts == shape[1])
    bad = (counts == 0) | ~edge | (block != real).any(dim=1)
    if bool(bad.any()):
        b = int(bad.nonzero()[0, 0])
        raise MaskError(f"attention_mask row {b} = {real[b].int().tolist()}: each row needs one "
                        "non-empty block of real tokens at its start (right padding) or its "
                        "end (left padding)")
    return real


def position_ids(real: torch.Tensor) -> torch.Tensor:
    """Positions (B, l): a real token's is the number of real tokens before it; padded: 0."""
    return torch.where(real, real.long().cumsum(dim=1) - 1, 0)


def key_padding_mask(real: torch.Tensor) -> torch.Tensor:
    """Mask[b, 0, t_z, t_x] in the spec's orientation, (B, 1, l, l): a real query sees the real
    keys (AND-ed with the causal mask by the caller); a padded query sees itself only."""
    return cached_mask(real, real.shape[1], 0, causal=False)


def cached_mask(keys: torch.Tensor, T: int, offset: int, causal: bool = True) -> torch.Tensor:
    """The mask of T new queries after ``offset`` cached tokens, (B, 1, offset + T, T):
    ``keys`` (B, offset + T) says which positions are real; query t_x (at position
    offset + t_x) sees the real keys t_z <= offset + t_x, or only itself when it is padding."""
    S = keys.shape[1]
    t_z = torch.arange(S, device=keys.device)[:, None]
    t_x = torch.arange(T, device=keys.device)[None, :] + offset
    allowed = keys[:, :, None] & ((t_z <= t_x) if causal else torch.ones_like(t_z == t_x))
    query_real = keys[:, None, offset:]  # (B, 1, T)
    return torch.where(query_real, allowed, (t_z == t_x)[None])[:, None]


def cached_positions(keys: torch.Tensor, T: int) -> torch.Tensor:
    """Positions (B, T) of the last T of ``keys`` (B, S): real tokens before, padded 0."""
    return position_ids(keys)[:, keys.shape[1] - T:]


def context_mask(context_real: torch.Tensor, T: int) -> torch.Tensor:
    """Cross-attention mask (B, 1, l_z, T) of T queries to a padded context: the real
    context tokens, for every query."""
    return context_real[:, None, :, None].expand(-1, 1, -1, T)
