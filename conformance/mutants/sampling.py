"""A sampler composed rule by rule, and its mutants (Algorithm 60; the decoder-side top-50
mutant is in conformance/mutants/decoder.py).

``ComposedSampler`` builds Algorithm 60 from one hook per rule (temperature placement, top-k,
top-p, min-p, the final temperature) with torch. Unmutated it passes the suite on what it
declares (tests/conformance checks that), so each mutant differs from a conforming sampler in
exactly the one hook it overrides. The bugs are ones seen in real samplers: the crossing token
dropped from the nucleus (facebookresearch/esm#360), the temperature on the other side of the
truncation (ggml-org/llama.cpp#4091, vllm-project/tpu-inference#1385), top-k ties cut at a
sort index, and a default top_k = 50 applied silently (Hugging Face GenerationConfig's default).
"""

from __future__ import annotations

import torch

from conformance.adapters.torch_adapter import TorchAdapter, _np, _t


class ComposedSampler(TorchAdapter):
    """Algorithm 60 from one hook per rule (float32 and float64)."""

    name = "composed sampler"
    algorithms = ("sampling",)
    only = algorithms

    # -- hooks ------------------------------------------------------------------------------
    def tempers_first(self, config) -> bool:  # Alg 60 L1, L7
        return config.order == "temperature_first"

    def k_of(self, config, N_V):  # top_k None means N_V
        return N_V if config.top_k is None else min(config.top_k, N_V)

    def top_k(self, r, k):  # Alg 60 L2: every token >= the k-th largest value
        return r >= torch.topk(r, k, dim=-1).values[..., -1:]

    def top_p(self, r, pi):  # Alg 60 L4: mass strictly above < pi, ties kept together
        above = (r[..., None, :] * (r[..., None, :] > r[..., :, None])).sum(-1)  # (B, N_V)
        return above < pi

    def min_p(self, r, p_min):  # Alg 60 L6
        return r >= p_min * r.max(dim=-1, keepdim=True).values

    def final(self, logits, r, keep, config):  # Alg 60 L7
        if self.tempers_first(config):
            return torch.where(keep, r, torch.zeros_like(r))
        return torch.softmax((logits / config.tau).masked_fill(~keep, -torch.inf), dim=-1)

    # -- Algorithm 60 from the hooks ----------------------------------------------------------
    def distribution(self, logits, config):
        r = torch.softmax(logits / config.tau if self.tempers_first(config) else logits, -1)
        keep = torch.ones_like(r, dtype=torch.bool)
        k = self.k_of(config, r.shape[-1])
        if k < r.shape[-1]:
            keep = self.top_k(r, k)
        r = torch.where(keep, r, torch.zeros_like(r))
        r = r / r.sum(-1, keepdim=True)
        if config.top_p < 1:
            keep = keep & self.top_p(r, config.top_p)
        r = torch.where(keep, r, torch.zeros_like(r))
        r = r / r.sum(-1, keepdim=True)
        if config.min_p > 0:
            keep = keep & self.min_p(r, config.min_p)
        return self.final(logits, r, keep, config)

    def sampling(self, logits, config, n, seed):
        generator = torch.Generator().manual_seed(seed)
        q = self.distribution(_t(logits), config)  # (B, N_V)
        return _np(torch.multinomial(q, n, replacement=True, generator=generator))


class TopPDropsCrossingToken(ComposedSampler):
    """Top-p keeps only tokens whose running total *including* themselves is below pi, so the
    token that crosses pi is dropped (facebookresearch/esm#360); the top token is kept so the
    set is never empty."""

    caught_by = ("sampling.kept_set", "sampling.truncated_frequencies")

    def top_p(self, r, pi):
        s, order = torch.sort(r, dim=-1, descending=True)
        keep_sorted = torch.cumsum(s, -1) < pi
        keep_sorted[..., 0] = True
        return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)


class TemperatureOnWrongSide(ComposedSampler):
    """The temperature is applied on the other side of the truncation from the declared order
    (llama.cpp's chain tempers last; transformers and vLLM temper first)."""

    caught_by = ("sampling.kept_set",)

    def tempers_first(self, config):
        return config.order != "temperature_first"


class TemperatureDroppedAfterTruncation(ComposedSampler):
    """With truncation first, the kept tokens are sampled from p itself: the temperature that
    should follow the truncation is never applied (the kept set is right, q is not)."""

    caught_by = ("sampling.truncated_frequencies",)

    def final(self, logits, r, keep, config):
        if self.tempers_first(config):
            return super().final(logits, r, keep, config)
        return torch.where(keep, r, torch.zeros_like(r))


class TopKOffByOne(ComposedSampler):
    """Top-k keeps the tokens at least as probable as the (k+1)-th largest: one token (or tie
    group) too many, an index off by one."""

    caught_by = ("sampling.kept_set",)

    def top_k(self, r, k):
        return super().top_k(r, min(k + 1, r.shape[-1]))


class TopKCutsTies(ComposedSampler):
    """Top-k keeps exactly k tokens by sort index (torch.topk's indices), dropping tokens tied
    with the k-th largest that the spec keeps."""

    caught_by = ("sampling.kept_set",)

    def top_k(self, r, k):
        idx = torch.topk(r, k, dim=-1).indices
        return torch.zeros_like(r, dtype=torch.bool).scatter(-1, idx, True)


class SilentTop50(ComposedSampler):
    """A default top_k = 50 is applied whatever the caller asked for (transformers'
    GenerationConfig default top_k=50 reaching a sampler that was meant to be plain)."""

    caught_by = ("sampling.no_truncation", "sampling.kept_set")

    def k_of(self, config, N_V):
        return min(super().k_of(config, N_V), 50)
