"""Speculative decoding composed from torch_impl's steps, and its mutants (Algorithm 61).

``ComposedSpeculative`` runs torch_impl.speculative.SpeculativeDecoder on two models built
from conformance/mutants/decoder.py's ComposedDecoder (which keeps each layer's attention
inputs in a list, so a cache can keep stale entries without running out of room). Unmutated it
passes the suite (tests/conformance checks that); each mutant overrides one step. The bugs:
resampling a rejected position from the target instead of the residual (the lossiness
reported in transformers#32867), dropping the bonus token, keeping the rejected proposal, the
target's logits read one position late, and a draft cache not cut back after a rejection
(transformers' candidate generator crops the assistant's past_key_values for this reason).
"""

from __future__ import annotations

import torch

from conformance.adapters.torch_adapter import TorchAdapter, _tensors
from conformance.mutants.decoder import ComposedDecoder
from torch_impl.speculative import SpeculativeDecoder, speculative_decoding


class ListCache:
    """Per-layer attention inputs of ComposedDecoder. ``length`` counts the tokens of the
    sequence the model has seen; setting it back cuts every layer's entries -- unless
    ``keep_stale``, where the entries stay and the next tokens are written after them, at the
    positions that follow (a static cache whose write pointer was not rolled back)."""

    def __init__(self, L: int, keep_stale: bool = False):
        self.layers: list[torch.Tensor | None] = [None] * L
        self.keep_stale, self._length = keep_stale, 0

    @property
    def length(self) -> int:
        return self._length

    @length.setter
    def length(self, value: int) -> None:
        if not self.keep_stale:
            self.layers = [None if X is None else X[:, :value] for X in self.layers]
        self._length = value

    @property
    def written(self) -> int:
        """Positions holding entries (= length unless stale entries were kept)."""
        return 0 if self.layers[0] is None else self.layers[0].shape[1]


class ComposedModel:
    """A next-token model for SpeculativeDecoder from ComposedDecoder's hooks."""

    def __init__(self, decoder: ComposedDecoder, params, config, keep_stale: bool = False):
        self.decoder, self.p, self.config = decoder, _tensors(params), config
        self.keep_stale = keep_stale

    def new_cache(self, B: int, capacity: int | None = None) -> ListCache:
        return ListCache(self.config.L, self.keep_stale)

    def check_tokens(self, name, x):
        pass

    def __call__(self, x: torch.Tensor, cache: ListCache) -> torch.Tensor:
        logits = self.decoder.logits(x, self.p, self.config, cache.layers, cache.written)
        cache.length += x.shape[1]
        return logits  # (B, T, N_V)


class ComposedSpeculative(TorchAdapter):
    """Algorithm 61: torch_impl's SpeculativeDecoder on two ComposedDecoder models."""

    name = "composed speculative decoding"
    algorithms = ("speculative_decoding",)
    only = algorithms
    decoder_class = SpeculativeDecoder
    stale_draft = False

    def speculative_decoding(self, prompt, target_params, target_config, draft_params,
                             draft_config, l_gen, k, sampling, seed):
        import numpy as np

        composed = ComposedDecoder()
        target = ComposedModel(composed, target_params, target_config)
        draft = ComposedModel(composed, draft_params, draft_config, self.stale_draft)
        generator = torch.Generator().manual_seed(seed)
        y, accepted = speculative_decoding(target, draft, torch.from_numpy(prompt), l_gen, k,
                                           sampling, generator, self.decoder_class)
        return np.concatenate([prompt, y.numpy()], axis=1), [np.array(A) for A in accepted]


class _ResampleFromTarget(SpeculativeDecoder):
    def residual(self, p, q):
        return p


class ResampleFromTarget(ComposedSpeculative):
    """A rejected position is resampled from the target p instead of the residual
    max(0, p - q): tokens the draft likes are over-produced."""

    only = ("speculative.target_distribution", "speculative.acceptance")
    caught_by = ("speculative.target_distribution",)
    decoder_class = _ResampleFromTarget


class _NoBonus(SpeculativeDecoder):
    def appended(self, proposal, n, t):
        return proposal if proposal and n == len(proposal) else super().appended(proposal, n, t)


class NoBonusToken(ComposedSpeculative):
    """When every proposal is accepted, the target's free next token is thrown away."""

    only = ("speculative.acceptance", "speculative.greedy_counts")
    caught_by = ("speculative.acceptance", "speculative.greedy_counts")
    decoder_class = _NoBonus


class _KeepsRejected(SpeculativeDecoder):
    def appended(self, proposal, n, t):
        return proposal[:n + 1] + [t] if n < len(proposal) else super().appended(proposal, n, t)


class AcceptedCountOffByOne(ComposedSpeculative):
    """The accepted slice is one too long: the rejected proposal is kept before the
    residual token (proposal[:n + 1] instead of proposal[:n])."""

    only = ("speculative.target_distribution",)
    caught_by = ("speculative.target_distribution",)
    decoder_class = _KeepsRejected


class _ShiftedTarget(SpeculativeDecoder):
    def feed(self, model, cache, x):
        logits = super().feed(model, cache, x)
        if model is self.target and logits.shape[0] > 1:
            return torch.cat([logits[:1], logits[:-1]])  # column j holds position j - 1
        return logits


class TargetLogitsOneLate(ComposedSpeculative):
    """The target's scores are read one position late: proposal j is verified against the
    target's distribution before proposal j - 1 was appended."""

    only = ("speculative.greedy_identical",)
    caught_by = ("speculative.greedy_identical",)
    decoder_class = _ShiftedTarget


class DraftCacheNotRolledBack(ComposedSpeculative):
    """After a rejection the draft's cache keeps the rejected proposals and writes the next
    tokens after them: the draft attends to tokens that are not in the sequence, at shifted
    positions (the output law stays exact, the acceptance counts do not)."""

    only = ("speculative.greedy_counts",)
    caught_by = ("speculative.greedy_counts",)
    stale_draft = True
