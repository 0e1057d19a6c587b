"""Mutants of rotary position embedding (spec: Algorithm 25), each modelled on a bug seen in
real rotary code (references in the docstrings; spec/properties.md, rope.*)."""

from __future__ import annotations

import dataclasses

import torch

from conformance.adapters.torch_adapter import TorchAdapter, _np, _t
from formal_transformers.rope import RopeScaling
from torch_impl.rope import cos_sin, rope, rope_frequencies, rotate


class RopeMutant(TorchAdapter):
    """Replaces ``rope`` by ``broken(X, positions, config)`` on torch tensors."""

    only = ("rope",)

    def rope(self, X, positions, config):
        return _np(self.broken(_t(X), _t(positions), config))

    def broken(self, X, positions, config):
        raise NotImplementedError


class WrongLayout(RopeMutant):
    """Rotates the pairs of the other layout: half_split weights run by interleaved (Meta
    complex) code or the reverse, the bug of loading a checkpoint without permuting W_q, W_k
    (transformers #25199, llama2.c #286)."""

    caught_by = ("rope.layout_permutation", "reference.forward_agreement")

    def broken(self, X, positions, config):
        other = "interleaved" if config.layout == "half_split" else "half_split"
        return rope(X, positions, dataclasses.replace(config, layout=other))


class CacheStepOffByOne(RopeMutant):
    """A single-column call (a decode step) is rotated by position p + 1: the position read
    from the cache length after the new key was appended instead of before."""

    caught_by = ("rope.cache_step",)

    def broken(self, X, positions, config):
        return rope(X, positions + 1 if X.shape[-2] == 1 else positions, config)


class PositionsFromZero(RopeMutant):
    """The positions are ignored and taken as 0..l-1 (`rotary_emb(x, seq_len=q_len)` without
    the cache offset): every chunk or decode step restarts at position 0."""

    caught_by = ("rope.cache_step", "reference.forward_agreement")

    def broken(self, X, positions, config):
        return rope(X, torch.arange(X.shape[-2]), config)


class ThetaPerHeadIndex(RopeMutant):
    """The frequencies run over the features of all heads (theta^(-2j / (H d_r)), rope applied
    before the head split), so head h gets frequencies j = h d_r/2, ..., instead of the same
    ones for every head."""

    caught_by = ("rope.heads_alike", "reference.forward_agreement")

    def broken(self, X, positions, config):
        H, d_r = X.shape[1], config.rotated_features(X.shape[-1])
        omega = rope_frequencies(H * d_r, config)  # (H d_r / 2,)
        heads = []
        for h in range(H):
            cos, sin = cos_sin(positions, omega[h * d_r // 2:(h + 1) * d_r // 2], X[:, h])
            heads.append(torch.cat((rotate(X[:, h, :, :d_r], cos, sin, config.layout),
                                    X[:, h, :, d_r:]), dim=-1))
        return torch.stack(heads, dim=1)  # (B, H, l, d)


class CosForSin(RopeMutant):
    """`x * cos + rotate_half(x) * cos`: a typo that makes each 2x2 block [[c, -c], [c, c]],
    no longer a rotation."""

    caught_by = ("rope.norm_preserving", "rope.relative")

    def broken(self, X, positions, config):
        d_r = config.rotated_features(X.shape[-1])
        cos, _ = cos_sin(positions, rope_frequencies(d_r, config), X)
        return torch.cat((rotate(X[..., :d_r], cos, cos, config.layout), X[..., d_r:]), dim=-1)


class DynamicBase(RopeMutant):
    """Dynamic NTK scaling where none is declared: the base grows with the largest position of
    the call (`transformers`' dynamic rope: theta ((k l / L) - (k - 1))^(d_r / (d_r - 2)) once
    l > L, here k = 2, L = 16), so scores change when the same offsets sit later in the
    sequence -- the cache inconsistency reported for dynamic scaling."""

    caught_by = ("rope.relative",)

    def broken(self, X, positions, config):
        d_r, length = config.rotated_features(X.shape[-1]), int(positions.max()) + 1
        theta = config.theta
        if length > 16:
            theta *= (2 * length / 16 - 1) ** (d_r / (d_r - 2) if d_r > 2 else 1.0)
        return rope(X, positions, dataclasses.replace(config, theta=theta))


class NoneBecomesLlama3Defaults(RopeMutant):
    """Scaling "none" is replaced by Llama 3.1's defaults (factor 8, low 1, high 4, context
    8192): a config loader that fills a missing rope_scaling from the model family."""

    caught_by = ("rope.scaling_identity",)

    def broken(self, X, positions, config):
        if config.scaling.kind == "none":
            config = dataclasses.replace(config, scaling=RopeScaling(
                "llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                original_max_position=8192))
        return rope(X, positions, config)


