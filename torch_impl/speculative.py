"""Speculative decoding with both models' KV caches (spec: Algorithm 61,
spec/algorithms/61-speculative-decoding.md).

Generic over the models: anything with ``new_cache(B, capacity)`` returning a cache whose
``length`` counts the cached tokens and may be set back (torch_impl.kv_cache.KVCache), and
``forward(x, cache) -> logits (B, T, N_V)`` for the T tokens after the cached ones
(torch_impl.models.DTransformer; the modern decoder plugs in the same way).

Cache invariant: each model's cache holds a prefix of the accepted sequence x; at every call
the model is fed the tokens of x it has not seen (``x[cache.length:]``) followed by the new
proposals. After a verification step both caches are cut back to the accepted tokens: the
target scored kappa + 1 positions of which only the first n stay valid, the draft saw kappa - 1
proposals. One row at a time (rows accept different numbers of tokens).

The sequence lives in one preallocated buffer (proposals are written in place, no
concatenation per token). Greedy rounds never build distributions: with D_S the one-hot
argmax, line 6 accepts a proposal exactly when it equals the target's argmax (p/q is 1 or 0,
no uniform is needed) and lines 7-8 both emit the target's argmax at the first disagreement
(the residual of two different one-hot vectors is the target's), so a greedy round is the
argmaxes of both models compared once, with two tensor-to-list conversions per round.
"""

from __future__ import annotations

import numpy as np
import torch

from formal_transformers.errors import ConfigError, SequenceLengthError
from formal_transformers.sampling_config import SamplingConfig, check_draft_length
from torch_impl.sampling import Generator, draw, truncated_distribution


def uniform(generator: Generator) -> float:
    """u ~ U[0, 1) from the one generator (numpy or torch)."""
    if isinstance(generator, np.random.Generator):
        return float(generator.random())
    return float(torch.rand((), generator=generator, dtype=torch.float64))


class SpeculativeDecoder:
    """Algorithm 61 for one prompt; each step of the pseudocode is one method."""

    def __init__(self, target, draft, k: int, sampling: SamplingConfig | None,
                 generator: Generator):
        if sampling is not None and not isinstance(sampling, SamplingConfig):
            raise ConfigError(f"sampling must be a SamplingConfig or None (greedy), got "
                              f"{type(sampling).__name__}")
        if sampling is not None and not isinstance(generator, (torch.Generator,
                                                                np.random.Generator)):
            raise ConfigError(f"generator must be a torch.Generator or a numpy.random."
                              f"Generator, got {type(generator).__name__}")
        self.target, self.draft, self.k = target, draft, check_draft_length(k)
        self.sampling, self.generator = sampling, generator

    # -- the steps ------------------------------------------------------------------------
    def distribution(self, logits: torch.Tensor) -> torch.Tensor:
        """D_S of a sampled run: Algorithm 60's q per row, (T, N_V) float64."""
        return truncated_distribution(logits, self.sampling).double()

    def feed(self, model, cache, x: torch.Tensor) -> torch.Tensor:
        """Logits after each unseen token of x (1-D): (T, N_V)."""
        return model(x[cache.length:][None], cache)[0]

    def propose(self, cache, seq: torch.Tensor, l: int, kappa: int
                ) -> tuple[list[int], list[torch.Tensor]]:
        """The draft's kappa proposals, written into seq[l:l + kappa]; their q (sampled)."""
        q: list[torch.Tensor] = []
        for j in range(kappa):  # Alg 61 L4
            logits = self.feed(self.draft, cache, seq[:l + j])[-1]  # (N_V,)
            if self.sampling is None:  # greedy: x~_j is the argmax of q_j
                seq[l + j] = logits.argmax()
            else:
                q.append(self.distribution(logits[None])[0])
                seq[l + j] = draw(q[-1][None], self.generator)[0]
        return seq[l:l + kappa].tolist(), q

    def verify(self, proposal: list[int], logits: torch.Tensor, q: list[torch.Tensor]
               ) -> tuple[int, int]:
        """(n, t) from the target's logits (kappa + 1, N_V) at the proposals (Alg 61 L6-8)."""
        if self.sampling is None:
            best = logits.argmax(-1).tolist()  # the one-hot p_j's argmaxes
            n = 0  # Alg 61 L6: greedy p / q is 1 (equal argmaxes) or 0
            while n < len(proposal) and proposal[n] == best[n]:
                n += 1
            return n, best[n]  # Alg 61 L7-8: residual or bonus, the target's argmax
        p = self.distribution(logits)
        q_all = torch.stack(q) if q else p[:0]
        n = self.accepted(proposal, p, q_all)  # Alg 61 L6
        return n, self.finish(n, len(proposal), p, q_all)  # Alg 61 L7-8

    def residual(self, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:  # Alg 61 L7
        r = torch.clamp(p - q, min=0)
        return r / r.sum() if float(r.sum()) > 0 else p

    def accepted(self, proposal: list[int], p: torch.Tensor, q: torch.Tensor) -> int:
        n = 0  # Alg 61 L6: accept while u < p / q
        while n < len(proposal) and uniform(self.generator) < float(
                p[n, proposal[n]] / q[n, proposal[n]]):
            n += 1
        return n

    def finish(self, n: int, kappa: int, p: torch.Tensor, q: torch.Tensor) -> int:
        """The token after the accepted ones: residual (L7) or bonus (L8)."""
        dist = self.residual(p[n], q[n]) if n < kappa else p[kappa]
        return int(draw(dist[None], self.generator)[0])

    def appended(self, proposal: list[int], n: int, t: int) -> list[int]:
        """The tokens one verification step adds: the accepted proposals and t (Alg 61 L9)."""
        return proposal[:n] + [t]

    def rollback(self, model, cache, length: int) -> None:
        """Forget ``model``'s cached positions past ``length`` (the rejected proposals)."""
        cache.length = min(cache.length, length)

    # -- the loop -------------------------------------------------------------------------
    @torch.inference_mode()
    def run(self, prompt: torch.Tensor, l_gen: int) -> tuple[torch.Tensor, list[int]]:
        """prompt (l_x,) -> (y (l_gen,), accepted counts)."""
        l_x = prompt.shape[0]
        capacity = l_x + l_gen - 1  # Alg 61 L1
        tc, dc = self.target.new_cache(1, capacity), self.draft.new_cache(1, capacity)
        # x = seq[:l]; room for a step that appends more than it should (kappa + 2 tokens)
        seq = prompt.new_zeros(l_x + l_gen + self.k + 1)
        seq[:l_x] = prompt
        l, A = l_x, []
        while l < l_x + l_gen:  # Alg 61 L2
            kappa = min(self.k, l_x + l_gen - l - 1)  # Alg 61 L3
            proposal, q = self.propose(dc, seq, l, kappa)  # Alg 61 L4
            logits = self.feed(self.target, tc, seq[:l + kappa])[-(kappa + 1):]  # Alg 61 L5
            n, t = self.verify(proposal, logits, q)  # Alg 61 L6-8
            new = self.appended(proposal, n, t)
            seq[l:l + len(new)] = seq.new_tensor(new)  # Alg 61 L9
            l += len(new)
            A.append(n)
            self.rollback(self.target, tc, l - 1)  # the newest token is fed next time
            self.rollback(self.draft, dc, l - 1)
        return seq[l_x:l].clone(), A


def speculative_decoding(target, draft, prompt: torch.Tensor, l_gen: int, k: int,
                         sampling: SamplingConfig | None = None, generator: Generator = None,
                         decoder_class: type[SpeculativeDecoder] = SpeculativeDecoder
                         ) -> tuple[torch.Tensor, list[list[int]]]:
    """Speculative decoding (spec: Algorithm 61): draft proposes up to k tokens, target verifies.

    prompt: (l_x,) or (B, l_x) ids; sampling: Algorithm 60's conventions for both models, or
    None for greedy. Returns (y: (l_gen,) or (B, l_gen), accepted counts per row).
    ``decoder_class`` runs each row (a SpeculativeDecoder; the suite's mutants override one
    of its steps).
    """
    rows = prompt[None] if prompt.ndim == 1 else prompt
    l_max = min(target.config.l_max, draft.config.l_max)
    if isinstance(l_gen, bool) or not isinstance(l_gen, int) or l_gen < 1:
        raise ConfigError(f"l_gen must be an integer >= 1, got {l_gen!r}")
    if rows.shape[1] < 1 or rows.shape[1] + l_gen - 1 > l_max:
        raise SequenceLengthError(f"prompt length {rows.shape[1]} + l_gen {l_gen} - 1 must be "
                                  f"in [1, l_max = {l_max}] (spec: Algorithm 61 L1)")
    target.check_tokens("prompt", rows)
    decoder = decoder_class(target, draft, k, sampling, generator)
    ys, accepted = [], []
    for row in rows:
        y, A = decoder.run(row, l_gen)
        ys.append(y)
        accepted.append(A)
    y = torch.stack(ys)
    return (y[0], accepted) if prompt.ndim == 1 else (y, accepted)
