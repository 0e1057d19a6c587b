"""A decoder-only transformer composed step by step, and its mutants (Algorithms 10, 14).

``ComposedDecoder`` builds Algorithm 10 from torch_impl's functional primitives with one hook
per step (embedding, mask, layer norm, residual, block, cache, sampling) and decodes with a
cache of each layer's attention inputs. Unmutated it passes the suite on what it declares
(tests/conformance checks that), so each mutant below differs from a conforming
implementation in exactly the one hook it overrides.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from conformance.adapters.torch_adapter import TorchAdapter, _np, _t, _tensors
from reference_numpy.architectures import group
from torch_impl.attention import causal_mask, mh_attention
from torch_impl.embeddings import positional_embedding, token_embedding
from torch_impl.layer_norm import layer_norm
from torch_impl.mlp import mlp
from torch_impl.unembedding import unembedding_logits


class ComposedDecoder(TorchAdapter):
    """Algorithm 10 (and 14 with a cache) from torch_impl's functional API, hook by hook."""

    name = "composed decoder"
    algorithms = ("d_transformer", "d_transformer_backward", "d_inference")
    only = algorithms

    # -- hooks ----------------------------------------------------------------------------
    def embed(self, x, p, offset):  # Alg 10 L2
        return token_embedding(x, p["W_e"]) + positional_embedding(x.shape[1], p["W_p"], offset)

    def mask(self, l_z, l_x, offset):  # Alg 10 L6: Mask[t_z, t_x] = [t_z <= t_x]
        return causal_mask(l_z, l_x, offset=offset)

    def norm(self, X, p, prefix, eps):  # Alg 10 L5, L7, L9
        return layer_norm(X, p[f"{prefix}.gamma"], p[f"{prefix}.beta"], eps)

    def residual(self, X, Y):  # Alg 10 L6, L8: X + f(X)
        return X + Y

    def remember(self, cache, layer, X_tilde):
        """The attention context of ``layer``: every earlier input and the new ones."""
        if cache is None:
            return X_tilde
        cache[layer] = X_tilde if cache[layer] is None else torch.cat([cache[layer], X_tilde], 1)
        return cache[layer]

    def position(self, offset):
        """Position of the first new token when ``offset`` tokens are cached."""
        return offset

    def block(self, X, p, prefix, config, cache, layer, offset):  # Alg 10 L5-8 (pre-LN)
        eps = config.layer_norm_eps
        X_tilde = self.norm(X, p, f"{prefix}.ln1", eps)
        Z = self.remember(cache, layer, X_tilde)
        attn = mh_attention(X_tilde, Z, **group(p, f"{prefix}.mha"),
                            mask=self.mask(Z.shape[1], X.shape[1], offset))
        X = self.residual(X, attn)
        X_tilde = self.norm(X, p, f"{prefix}.ln2", eps)
        return self.residual(X, mlp(X_tilde, **group(p, f"{prefix}.mlp"),
                                    activation=config.activation))

    def sample(self, logits, tau, generator):  # Alg 14 L5: q proportional to p^(1/tau)
        return torch.multinomial(torch.softmax(logits / tau, dim=-1), 1, generator=generator)

    # -- Algorithm 10 and 14 from the hooks ---------------------------------------------------
    def logits(self, x, p, config, cache=None, offset=0):
        X = self.embed(x, p, self.position(offset))
        for l in range(config.L):
            X = self.block(X, p, f"layers.{l}", config, cache, l, offset)
        return unembedding_logits(self.norm(X, p, "ln_f", config.layer_norm_eps), p["W_u"])

    def d_transformer(self, x, params, config):
        return _np(torch.softmax(self.logits(_t(x), _tensors(params), config), dim=-1))

    def d_transformer_backward(self, x, params, config, dP):
        p = {k: v.detach().clone().requires_grad_(True) for k, v in _tensors(params).items()}
        torch.softmax(self.logits(_t(x), p, config), dim=-1).backward(_t(dP))
        return {k: _np(v.grad) for k, v in p.items()}

    def d_inference(self, prompt, params, config, l_gen, tau, seed):
        p, generator = _tensors(params), self.generator(seed)
        x, cache = _t(prompt), [None] * config.L
        with torch.no_grad():
            logits = self.logits(x, p, config, cache)[:, -1]
            new = []
            for i in range(l_gen):
                new.append(self.sample(logits, tau, generator))  # (B, 1)
                if i + 1 < l_gen:
                    logits = self.logits(new[-1], p, config, cache, x.shape[1] + i)[:, -1]
        return np.concatenate([prompt, _np(torch.cat(new, dim=1))], axis=1)

    def generator(self, seed):
        return torch.Generator().manual_seed(seed)


class MissingResidual(ComposedDecoder):
    """The residual connections are dropped: X <- f(X) instead of X + f(X) (Alg 10 L6, L8)."""

    only = ("d_transformer",)
    caught_by = ("reference.forward_agreement",)

    def residual(self, X, Y):
        return Y


class PostLayerNorm(ComposedDecoder):
    """Post-LN where Algorithm 10 specifies pre-LN: X <- LN(X + f(X))."""

    only = ("d_transformer",)
    caught_by = ("reference.forward_agreement",)

    def block(self, X, p, prefix, config, cache, layer, offset):
        eps = config.layer_norm_eps
        Z = self.remember(cache, layer, X)
        X = self.norm(X + mh_attention(X, Z, **group(p, f"{prefix}.mha"),
                                       mask=self.mask(Z.shape[1], X.shape[1], offset)),
                      p, f"{prefix}.ln1", eps)
        return self.norm(X + mlp(X, **group(p, f"{prefix}.mlp"), activation=config.activation),
                         p, f"{prefix}.ln2", eps)


class PositionsAddedTwice(ComposedDecoder):
    """The positional embedding is added twice (Alg 10 L2)."""

    only = ("d_transformer",)
    caught_by = ("reference.forward_agreement",)

    def embed(self, x, p, offset):
        return super().embed(x, p, offset) + positional_embedding(x.shape[1], p["W_p"], offset)


class CausalMaskOffByOne(ComposedDecoder):
    """The causal mask lets each token see the next one: [t_z <= t_x + 1] (Alg 10 L6)."""

    only = ("d_transformer",)
    caught_by = ("causal.non_leakage", "causal.zero_jacobian")

    def mask(self, l_z, l_x, offset):
        return causal_mask(l_z, l_x, offset=offset + 1)


class StaleCachePosition(ComposedDecoder):
    """With a cache, each new token gets the position of the previous one (a stale offset)."""

    only = ("d_inference",)
    caught_by = ("kv_cache.equivalence",)

    def position(self, offset):
        return max(offset - 1, 0)


class CacheMissesNewest(ComposedDecoder):
    """The cache hands attention the earlier tokens only: a new token does not see itself."""

    only = ("d_inference",)
    caught_by = ("kv_cache.equivalence",)

    def remember(self, cache, layer, X_tilde):
        if cache is None or cache[layer] is None:
            return super().remember(cache, layer, X_tilde)
        old = cache[layer]
        super().remember(cache, layer, X_tilde)
        return old

    def mask(self, l_z, l_x, offset):
        return causal_mask(l_z, l_x, offset=offset) if offset == 0 else None


class TemperatureMultiplied(ComposedDecoder):
    """Sampling from softmax(logits * tau) instead of softmax(logits / tau) (Alg 14 L5)."""

    only = ("d_inference",)
    caught_by = ("sampling.frequencies", "sampling.greedy_limit")

    def sample(self, logits, tau, generator):
        return super().sample(logits, 1 / tau, generator)


class TemperatureIgnored(ComposedDecoder):
    """Sampling from p itself whatever tau is, so tau -> 0 is not greedy."""

    only = ("d_inference",)
    caught_by = ("sampling.greedy_limit",)

    def sample(self, logits, tau, generator):
        return super().sample(logits, 1.0, generator)


class SamplerKeepsTop50(ComposedDecoder):
    """The sampler silently keeps only the 50 most probable tokens (a default top_k = 50, as in
    transformers' GenerationConfig), invisible below N_V = 51 (issue 12's blind spot)."""

    only = ("d_inference",)
    caught_by = ("sampling.frequencies",)

    def sample(self, logits, tau, generator):
        if logits.shape[-1] > 50:
            kth = torch.topk(logits, 50, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, -torch.inf)
        return super().sample(logits, tau, generator)


class UnseededSampling(ComposedDecoder):
    """The seed is ignored: every run draws from a generator seeded by the operating system."""

    only = ("d_inference",)
    caught_by = ("sampling.seed_reproducible",)

    def generator(self, seed):
        return torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))


class PromptOverwritten(ComposedDecoder):
    """The output buffer is used as a ring: the last new token is written over the prompt's
    first token (every generated token is right; only the returned prompt is corrupted)."""

    only = ("d_inference",)
    caught_by = ("kv_cache.equivalence", "sampling.greedy_limit")

    def d_inference(self, prompt, params, config, l_gen, tau, seed):
        y = super().d_inference(prompt, params, config, l_gen, tau, seed)
        y[:, 0] = y[:, -1]
        return y


class BosNotReturned(TorchAdapter):
    """Algorithm 15's output starts with the id after bos_token (an off-by-one special-token
    id) instead of bos_token itself; the sampled tokens are right."""

    only = ("ed_inference",)
    caught_by = ("kv_cache.equivalence", "sampling.greedy_limit")

    def ed_inference(self, z, params, config, tau, seed, bos_token, eos_token, l_max_gen):
        rows = super().ed_inference(z, params, config, tau, seed, bos_token, eos_token,
                                    l_max_gen)
        for row in rows:
            row[0] = (bos_token + 1) % config.N_V
        return rows
