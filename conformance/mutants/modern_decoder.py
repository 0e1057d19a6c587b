"""Mutants of the modern decoder (spec: Algorithm 65), each one convention broken the way real
code has broken it:

- the RoPE layout of the other convention run on the weights (transformers #25199, llama2.c
  #286: Meta-layout checkpoints run through ``rotate_half`` without the q/k row permutation);
- grouped-query heads tiled instead of repeat-interleaved (onnx #7274);
- the sliding window one key wider on the cached decode path only (transformers #29623,
  flash-attention #1133: ``window_size=(w, 0)`` admits w + 1 keys);
- scores scaled by 1/sqrt(d_e) instead of 1/sqrt(d_head).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from conformance.adapters.torch_adapter import TorchAdapter, _np, _t, _tensors
from torch_impl.modern_decoder import GQAttention, ModernDTransformer


class ModernTorch(TorchAdapter):
    """torch_impl's modern decoder through one ``build`` hook (the mutants override it)."""

    name = "modern decoder (torch, hookable)"
    algorithms = ("modern_d_transformer", "modern_d_transformer_cached")
    only = ("modern_d_transformer",)
    selections: dict = {}  # the fields a mutant pins so that its bug is reachable

    def constrain(self, algorithm, sizes):
        return sizes | self.selections if algorithm == "modern_d_transformer" else sizes

    def build(self, config, params) -> ModernDTransformer:
        return ModernDTransformer.from_canonical(config, _tensors(params))

    def modern_d_transformer(self, x, params, config):
        with torch.no_grad():
            return _np(torch.softmax(self.build(config, params)(_t(x)), dim=-1))

    def modern_d_transformer_cached(self, x, params, config, prefill):
        model = self.build(config, params)
        cache, tokens = model.new_cache(x.shape[0]), _t(x)
        with torch.no_grad():
            logits = [model(tokens[:, :prefill], cache)]
            logits += [model(tokens[:, t:t + 1], cache) for t in range(prefill, x.shape[1])]
        return _np(torch.softmax(torch.cat(logits, dim=1), dim=-1))


def _swap_attention(model: ModernDTransformer, cls: type) -> ModernDTransformer:
    for layer in model.layers:
        layer.mha.__class__ = cls
    return model


class RopeLayoutSwapped(ModernTorch):
    """RoPE rotates interleaved pairs where the config declares half_split (and vice versa)."""

    caught_by = ("reference.forward_agreement",)
    selections = {"positions": "rope"}

    def build(self, config, params):
        other = {"half_split": "interleaved", "interleaved": "half_split"}[config.rope.layout]
        model = ModernDTransformer.from_canonical(config, _tensors(params))
        for layer in model.layers:
            layer.mha.c = dataclasses.replace(
                config, rope=dataclasses.replace(config.rope, layout=other))
        return model


class _TiledGQA(GQAttention):
    def _attend(self, q, k, v, allowed, q_pos, k_pos):
        rep = self.c.H // self.c.G
        k, v = k.repeat(1, rep, 1, 1), v.repeat(1, rep, 1, 1)  # head h reads kv head h mod G
        c = dataclasses.replace(self.c, G=self.c.H)
        return GQAttention._attend(_with_config(self, c), q, k, v, allowed, q_pos, k_pos)


def _with_config(module: GQAttention, c) -> GQAttention:
    clone = object.__new__(GQAttention)
    clone.__dict__ = dict(module.__dict__, c=c)
    return clone


class GQATiled(ModernTorch):
    """Query head h reads kv head h mod G (tile) instead of floor(h G / H) (interleave)."""

    caught_by = ("reference.forward_agreement",)
    selections = {"H": 4, "G": 2}

    def build(self, config, params):
        return _swap_attention(super().build(config, params), _TiledGQA)


class _WiderCachedWindow(GQAttention):
    def visible(self, q_pos, k_pos, cache):
        allowed = k_pos[None, :] <= q_pos[:, None]
        if self.window is not None:
            w = self.window + (1 if cache is not None else 0)
            allowed = allowed & (k_pos[None, :] > q_pos[:, None] - w)
        return allowed


class RingWindowOffByOne(ModernTorch):
    """Decoding through the ring buffer, a windowed layer's query sees w + 1 keys."""

    caught_by = ("kv_cache.equivalence",)
    selections = {"windows": None, "l_max": 6}

    def constrain(self, algorithm, sizes):
        sizes = super().constrain(algorithm, sizes)
        return sizes | {"windows": (2,) * sizes["L"]}

    def build(self, config, params):
        return _swap_attention(super().build(config, params), _WiderCachedWindow)


class _ModelWidthScale(GQAttention):
    def _attend(self, q, k, v, allowed, q_pos, k_pos):
        if self.c.attn_scale is not None or self.c.attn_softcap is not None \
                or self.c.positions == "alibi":
            return super()._attend(q, k, v, allowed, q_pos, k_pos)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                              scale=self.c.d_e ** -0.5,
                                              enable_gqa=self.c.G != self.c.H)


class ScoresScaledByModelWidth(ModernTorch):
    """Scores scaled by 1/sqrt(d_e) instead of 1/sqrt(d_head) (Alg 65 L9)."""

    algorithms = ModernTorch.algorithms + ("d_transformer",)
    caught_by = ("structure.special_case",)

    def build(self, config, params):
        return _swap_attention(super().build(config, params), _ModelWidthScale)
