"""Mutants of the decode path (Algorithm 14 through a KV cache, ``d_decode``): each breaks
one piece of torch_impl's cached decoding the way real decoders have, and is caught by the
kv_cache law meant for it."""

from __future__ import annotations

import torch

from conformance.adapters.torch_adapter import TorchAdapter, _np, _t
from torch_impl import padding
from torch_impl.attention import sdpa
from torch_impl.blocks import MultiHeadAttention
from torch_impl.inference import DecodeState, decode_steps, ed_decode_steps
from torch_impl.kv_cache import KVCache
from torch_impl.models import DTransformer, EDTransformer


class DecodeMutant(TorchAdapter):
    """torch_impl's d_decode with the model class (and its layers) of the mutant."""

    algorithms = ("d_inference", "d_decode")

    def model(self, config, params):
        model = type("MutatedDTransformer", (DTransformer,), self.overrides())
        return self.patch(model.from_canonical(config, params))

    def overrides(self) -> dict:
        return {}

    def patch(self, model):
        return model

    def d_decode(self, prompt, params, config, l_gen, real=None, chunk=None, state=None):
        if state is None:
            model = self.model(config, params)
            y, log_p, st = decode_steps(model, _t(prompt), l_gen, _t(real), chunk)
        else:
            model, previous = state
            y, log_p, st = decode_steps(model, None, l_gen, state=previous)
        return _np(y), _np(log_p), (model, st)


class RoundingCache(KVCache):
    def update(self, layer, k, v):
        return super().update(layer, k.half().to(k.dtype), v.half().to(v.dtype))


class CacheInHalfPrecision(DecodeMutant):
    """The KV cache stores keys and values in float16 whatever the model's dtype (a cache
    dtype fixed at allocation): every step's distribution is off by ~1e-3, while the greedy
    tokens are almost always right."""

    only = ("kv_cache.equivalence",)
    caught_by = ("kv_cache.equivalence",)

    def overrides(self):
        def new_cache(model, B, capacity=None):
            c, w = model.config, model.lm_head.weight
            return RoundingCache(c.L, B, c.H, capacity or c.l_max, c.d_e // c.H, w.dtype,
                                 w.device)
        return {"new_cache": new_cache}


class TopLeftCausalMHA(MultiHeadAttention):
    @staticmethod
    def _self_attend(q, k, v, causal, cache, layer):
        if cache is None:
            return sdpa(q, k, v, causal=causal)
        k, v, offset = cache.update(layer, k, v)
        if q.shape[2] == 1:  # one new token sees every cached one
            return sdpa(q, k, v)
        return sdpa(q, k, v, causal=causal)  # is_causal on (T, offset + T): top-left aligned


class ChunkMaskTopLeft(DecodeMutant):
    """A chunk of T > 1 new tokens after a filled cache uses ``is_causal=True``, whose mask is
    aligned to the top left of the (T, offset + T) score matrix: chunk token t sees the
    first t + 1 keys instead of the first offset + t + 1 (correct for one prefill and for
    one-token steps only)."""

    only = ("kv_cache.chunked_prefill",)
    caught_by = ("kv_cache.chunked_prefill",)

    def patch(self, model):
        for layer in model.layers:
            layer.mha.__class__ = TopLeftCausalMHA
        return model


class ResumeRefeedsLastToken(DecodeMutant):
    """Resuming from a returned state feeds the last token already in the cache again
    before the pending one (the tail passed back with the cache): the cache holds a
    duplicated token."""

    only = ("kv_cache.continuation",)
    caught_by = ("kv_cache.continuation",)

    def d_decode(self, prompt, params, config, l_gen, real=None, chunk=None, state=None):
        if state is None:
            model = self.model(config, params)
            y, log_p, st = decode_steps(model, _t(prompt), l_gen, _t(real), chunk)
            history = torch.cat([_t(prompt), y], dim=1)
        else:
            model, st, history = state
            again = DecodeState(st.cache, torch.cat([history[:, -2:-1], st.pending], dim=1))
            y, log_p, st = decode_steps(model, None, l_gen, state=again)
            history = torch.cat([history, y], dim=1)
        return _np(y), _np(log_p), (model, st, history)


class PaddedPositionsFromCacheLength(DecodeMutant):
    """With a padded cache, every new token's position is its slot in the cache (padding
    counted), not the number of real tokens before it (unsloth#3795: one cache_position
    shared by the whole batch)."""

    only = ("kv_cache.left_padding",)
    caught_by = ("kv_cache.left_padding",)

    def overrides(self):
        def _cached_padding(model, x, cache, attention_mask):
            offset, T = cache.length, x.shape[1]
            if attention_mask is not None:
                cache.real[:, offset:offset + T] = attention_mask
                cache.padded = True
            keys = cache.real[:, :offset + T]
            slots = torch.arange(offset, offset + T, device=x.device).expand(x.shape[0], T)
            return slots, padding.cached_mask(keys, T, offset)
        return {"_cached_padding": _cached_padding}


class EDCacheInHalfPrecision(TorchAdapter):
    """The encoder-decoder's self-attention cache stores keys and values in float16 (a cache
    dtype fixed at allocation): Algorithm 15's distributions drift, its greedy tokens rarely."""

    algorithms = ("ed_inference", "ed_decode")
    only = ("kv_cache.equivalence",)
    caught_by = ("kv_cache.equivalence",)

    def ed_decode(self, z, params, config, l_gen, bos_token, z_real=None):
        def new_cache(model, B, capacity=None):
            c, w = model.config, model.lm_head.weight
            return RoundingCache(c.L_dec, B, c.H, capacity or c.l_max, c.d_e // c.H, w.dtype,
                                 w.device)
        model_class = type("MutatedEDTransformer", (EDTransformer,), {"new_cache": new_cache})
        y, log_p = ed_decode_steps(model_class.from_canonical(config, params), _t(z), l_gen,
                                   bos_token, _t(z_real))
        return _np(y), _np(log_p)


class DecodeStepsForgetContextMask(TorchAdapter):
    """Greedy seq2seq decoding that encodes the padded contexts with their mask but calls
    the decoder without it (the encoder-attention mask is not passed to the step: a home-made
    generate loop, cf. the ``encoder_attention_mask`` every step must forward): from the first
    step on, the cross-attention attends to the context's padding."""

    algorithms = ("ed_inference", "ed_decode")
    only = ("kv_cache.left_padding",)
    caught_by = ("kv_cache.left_padding",)

    @torch.inference_mode()
    def ed_decode(self, z, params, config, l_gen, bos_token, z_real=None):
        model = EDTransformer.from_canonical(config, params)
        zb = _t(z)
        kv = model.context(model.encode(zb, _t(z_real)))
        cache, x_in, ys, log_p = model.new_cache(len(z), l_gen), None, [], []
        x_in = torch.full((len(z), 1), bos_token, dtype=torch.long)
        for _ in range(l_gen):
            logits = model.lm_head(model.decode(x_in, kv, cache)[:, -1])  # no context mask
            log_p.append(torch.log_softmax(logits, dim=-1))
            x_in = logits.argmax(dim=-1, keepdim=True)
            ys.append(x_in)
        return _np(torch.cat(ys, dim=1)), _np(torch.stack(log_p, dim=1))
