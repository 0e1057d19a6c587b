"""Sampling with temperature and truncation, batched (spec: Algorithm 60,
spec/algorithms/60-sampling.md).

Rows of logits (B, N_V) in, one token per row out. Each rule keeps every token whose value
reaches a threshold, so ties at a boundary are kept together as the spec says:

- top-k: the threshold is the k-th largest value (``torch.topk``), kept with ``>=``;
- top-p: after one descending sort, the mass strictly above sorted position i is the exclusive
  cumulative sum; the n positions whose mass is below pi are kept, and then every token at
  least as probable as the n-th (so a tie group is kept whole or dropped whole);
- min-p: r >= p_min * max r.

With ``order="truncation_first"`` the kept tokens are then sampled from softmax(logits / tau)
restricted to them (which is r^{1/tau} renormalised over K, Algorithm 60 line 7).
"""

from __future__ import annotations

import numpy as np
import torch

from formal_transformers.errors import ConfigError
from formal_transformers.sampling_config import SamplingConfig

Generator = torch.Generator | np.random.Generator | None


def _renormalise(r: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    r = torch.where(keep, r, torch.zeros_like(r))
    return r / r.sum(dim=-1, keepdim=True)


def _top_p_keep(r: torch.Tensor, top_p: float) -> torch.Tensor:
    """Tokens whose mass strictly above is below top_p: (B, N_V) -> (B, N_V) bool."""
    s, _ = torch.sort(r, dim=-1, descending=True)  # (B, N_V)
    above = torch.cumsum(s, dim=-1) - s  # mass of the sorted positions before each one
    n = (above < top_p).sum(dim=-1, keepdim=True)  # >= 1: position 0 has mass 0 above
    threshold = s.gather(-1, n - 1)  # (B, 1) the value of the crossing token
    return r >= threshold


def truncated_distribution(logits: torch.Tensor, config: SamplingConfig) -> torch.Tensor:
    """q of Algorithm 60 (lines 1-7) for each row: (B, N_V) logits -> (B, N_V), zero off K."""
    if not isinstance(config, SamplingConfig):
        raise ConfigError(f"config must be a SamplingConfig, got {type(config).__name__}")
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    N_V, tau = logits.shape[-1], config.tau
    first = config.order == "temperature_first"
    r = torch.softmax(logits / tau if first else logits, dim=-1)  # Alg 60 L1
    keep = torch.ones_like(r, dtype=torch.bool)
    k = config.k_for(N_V)
    if k < N_V:  # Alg 60 L2
        keep = r >= torch.topk(r, k, dim=-1).values[..., -1:]
        r = _renormalise(r, keep)  # Alg 60 L3
    if config.top_p < 1:  # Alg 60 L4-5
        keep = keep & _top_p_keep(r, config.top_p)
        r = _renormalise(r, keep)
    if config.min_p > 0:  # Alg 60 L6
        keep = keep & (r >= config.min_p * r.max(dim=-1, keepdim=True).values)
    if first:  # Alg 60 L7
        return _renormalise(r, keep)
    return torch.softmax((logits / tau).masked_fill(~keep, -torch.inf), dim=-1)


def draw(q: torch.Tensor, generator: Generator) -> torch.Tensor:
    """One token per row of the distributions q (B, N_V) -> (B,).

    A torch.Generator draws with torch.multinomial; a numpy.random.Generator draws exactly as
    reference_numpy does (one ``rng.choice`` per token), so that a float64 model and the
    reference sample the same tokens from the same seed.
    """
    if isinstance(generator, np.random.Generator):
        rows = q.double().cpu().numpy()
        ys = [generator.choice(row.shape[0], p=row / row.sum()) for row in rows]
        return torch.tensor(ys, dtype=torch.long, device=q.device)
    return torch.multinomial(q, 1, generator=generator)[:, 0]


def sample(logits: torch.Tensor, config: SamplingConfig, generator: Generator) -> torch.Tensor:
    """Sample (spec: Algorithm 60): one token per row, (B, N_V) logits -> (B,) ids."""
    return draw(truncated_distribution(logits, config), generator)  # Alg 60 L8
