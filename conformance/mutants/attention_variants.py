"""Mutants of the modern attention primitives (Algorithms 40-46): each one is a convention
gotten wrong the way real code has gotten it wrong (notes: shared/notes/modern-conventions.md).

Each subclasses the bundled TorchAdapter and replaces one method; everything else is correct.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange

import torch_impl
from conformance.adapters.torch_adapter import TorchAdapter, _np, _t, _tensors
from torch_impl.attention import sdpa


def _gq_heads(X, Z, p):
    """q (B, H, l_x, d_attn), k, v (B, G, l_z, d) of Algorithm 40."""
    H, G = p["W_q"].shape[0], p["W_k"].shape[0]
    q = torch.einsum("bld,hed->bhle", X, p["W_q"]) + p["b_q"][None, :, None]
    k = torch.einsum("bld,ged->bgle", Z, p["W_k"]) + p["b_k"][None, :, None]
    v = torch.einsum("bld,ged->bgle", Z, p["W_v"]) + p["b_v"][None, :, None]
    return q, k, v, H, G


class GQAMutant(TorchAdapter):
    """Replaces ``gq_attention`` by ``broken`` on torch tensors (mask in spec orientation)."""

    only = ("gq_attention",)

    def gq_attention(self, X, Z, params, mask=None):
        p = _tensors(params)
        q, k, v, H, G = _gq_heads(_t(X), _t(Z), p)
        Y = self.broken(q, k, v, H, G, _t(mask))  # (B, H, l_x, d_mid)
        return _np(F.linear(self.merge(Y), p["W_o"], p["b_o"]))

    def broken(self, q, k, v, H, G, mask):
        return sdpa(q, k, v, mask, enable_gqa=True)

    def merge(self, Y):
        return rearrange(Y, "b h l d -> b l (h d)")


class TiledKVHeads(GQAMutant):
    """kv heads tiled (k.repeat: 0, 1, .., G-1, 0, 1, ..) instead of repeat-interleaved, as the
    function body of ONNX's Attention operator did (onnx/onnx#7274 replaces its Tile)."""

    caught_by = ("gqa.duplicated_kv_is_mha", "gqa.group_permutation",
                 "reference.forward_agreement")

    def broken(self, q, k, v, H, G, mask):
        return sdpa(q, k.repeat(1, H // G, 1, 1), v.repeat(1, H // G, 1, 1), mask)


class GroupByModulo(GQAMutant):
    """A per-head loop that picks kv head h mod G (the index form of tiling)."""

    caught_by = ("gqa.duplicated_kv_is_mha", "gqa.group_permutation",
                 "reference.forward_agreement")

    def broken(self, q, k, v, H, G, mask):
        heads = [sdpa(q[:, h:h + 1], k[:, h % G:h % G + 1], v[:, h % G:h % G + 1], mask)
                 for h in range(H)]
        return torch.cat(heads, dim=1)


class GQAHeadsMergedWrongly(GQAMutant):
    """The query heads' outputs are interleaved feature by feature before W_o."""

    caught_by = ("gqa.full_groups_is_mha", "gqa.duplicated_kv_is_mha",
                 "reference.forward_agreement")

    def merge(self, Y):
        return rearrange(Y, "b h l d -> b l (d h)")


# -- masks -----------------------------------------------------------------------------------
def _positions(l):
    t = torch.arange(l)
    return t[:, None], t[None, :]


class WindowFarEdgeInclusive(TorchAdapter):
    """The window keeps w + 1 keys (t_x - w <= t_z): the band ``triu(causal, diagonal=-w)``
    that Hugging Face's Mistral mask had before transformers #26792."""

    only = ("sliding_window_mask",)
    caught_by = ("window.edges", "window.no_influence", "reference.forward_agreement")

    def sliding_window_mask(self, l, w):
        t_z, t_x = _positions(l)
        return _np((t_x - w <= t_z) & (t_z <= t_x))


class WindowDropsTheQuery(TorchAdapter):
    """The near edge is exclusive (t_z < t_x): the query does not see itself."""

    only = ("sliding_window_mask",)
    caught_by = ("window.edges", "reference.forward_agreement")

    def sliding_window_mask(self, l, w):
        t_z, t_x = _positions(l)
        return _np((t_x - w < t_z) & (t_z < t_x) | ((t_z == 0) & (t_x == 0)))


class WideWindowDropsCausality(TorchAdapter):
    """A window at least as long as the sequence is read as "no mask" and the causal part is
    forgotten with it."""

    only = ("sliding_window_mask",)
    caught_by = ("window.wide_is_causal",)

    def sliding_window_mask(self, l, w):
        if w >= l:
            return _np(torch.ones(l, l, dtype=torch.bool))
        return _np(torch_impl.sliding_window_mask(l, w))


class SummaryAtBlockStart(TorchAdapter):
    """The summary positions are the first c of each block instead of the last c."""

    only = ("block_sparse_mask",)
    caught_by = ("block_sparse.pattern", "reference.forward_agreement")

    def block_sparse_mask(self, l, b, c):
        t_z, t_x = _positions(l)
        return _np((t_z <= t_x) & ((t_z // b == t_x // b) | (t_z % b < c)))


class LocalBlockNotCausal(TorchAdapter):
    """The local block is not causal: a query sees the later keys of its own block."""

    only = ("block_sparse_mask",)
    caught_by = ("block_sparse.pattern", "block_sparse.dense_limit",
                 "block_sparse.no_influence")

    def block_sparse_mask(self, l, b, c):
        t_z, t_x = _positions(l)
        return _np((t_z // b == t_x // b) | ((t_z <= t_x) & (t_z % b >= b - c)))


# -- QK-norm ---------------------------------------------------------------------------------
class QKNormOtherAxis(TorchAdapter):
    """The statistics are taken over the other axis than declared (per head vs the whole
    projection), with the gain stretched to fit: the confusion behind gpt-neox #1367 (QK norm
    over the head dimension only) and lablup/mlxcel #317 (OLMoE's norm moved back before the
    head split)."""

    only = ("qk_norm",)
    caught_by = ("qk_norm.scores_bounded", "qk_norm.scale_invariance",
                 "reference.forward_agreement")

    def qk_norm(self, X, params, H, axis, eps):
        x, gamma = _t(X), _t(params["gamma"])
        n = x.shape[-1]
        if axis == "per_head":  # computes "projection"
            r = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
            return _np(gamma.repeat(H) * x / r)
        xh = rearrange(x, "b l (h d) -> b l h d", h=H)  # computes "per_head"
        r = torch.sqrt(xh.pow(2).mean(dim=-1, keepdim=True) + eps)
        return _np(gamma * rearrange(xh / r, "b l h d -> b l (h d)", d=n // H))


# -- soft-capping ----------------------------------------------------------------------------
def _scaled_scores(X, Z, p):
    q, k = F.linear(X, p["W_q"], p["b_q"]), F.linear(Z, p["W_k"], p["b_k"])
    return q @ k.transpose(-1, -2) / math.sqrt(p["W_q"].shape[0]), F.linear(Z, p["W_v"],
                                                                            p["b_v"])


class SoftcapMutant(TorchAdapter):
    """Replaces ``softcap`` by ``logits(S, c, allowed)`` then softmax; S is (B, l_x, l_z)."""

    only = ("softcap",)

    def softcap(self, X, Z, params, c, mask=None):
        S, V = _scaled_scores(_t(X), _t(Z), _tensors(params))
        allowed = None if mask is None else _t(mask).T  # (l_x, l_z)
        return _np(torch.softmax(self.logits(S, c, allowed), dim=-1) @ V)

    @staticmethod
    def masked(S, allowed):
        return S if allowed is None else S.masked_fill(~allowed, float("-inf"))


class CapAfterMask(SoftcapMutant):
    """The cap is applied after the mask: -inf becomes -c, masked keys get weight e^-c."""

    caught_by = ("mask.no_influence", "reference.forward_agreement")

    def logits(self, S, c, allowed):
        return c * torch.tanh(self.masked(S, allowed) / c)


class CapForgotten(SoftcapMutant):
    """One path forgets the cap and computes Algorithm 4 (keras-hub #1712: capped in generate,
    not in score)."""

    caught_by = ("softcap.bounded_logits", "reference.forward_agreement")

    def logits(self, S, c, allowed):
        return self.masked(S, allowed)


class CapWithoutOuterFactor(SoftcapMutant):
    """tanh(S / c) without the factor c: logits squashed into (-1, 1) whatever c is."""

    caught_by = ("softcap.infinite_cap", "reference.forward_agreement")

    def logits(self, S, c, allowed):
        return self.masked(torch.tanh(S / c), allowed)


# -- the online softmax ----------------------------------------------------------------------
class OnlineSoftmaxMutant(TorchAdapter):
    """Replaces ``online_softmax_attention`` by a recurrence with one step broken."""

    only = ("online_softmax_attention",)

    def online_softmax_attention(self, X, Z, params, block, mask=None):
        S_all, V = _scaled_scores(_t(X), _t(Z), _tensors(params))  # (B, l_x, l_z)
        if mask is not None:
            S_all = S_all.masked_fill(~_t(mask).T, float("-inf"))
        B, l_x, l_z = S_all.shape
        m = torch.full((B, l_x, 1), float("-inf"), dtype=S_all.dtype)
        s = torch.zeros((B, l_x, 1), dtype=S_all.dtype)
        O = torch.zeros((B, l_x, V.shape[-1]), dtype=S_all.dtype)
        for start in self.starts(l_z, block):
            J = slice(start, min(start + block, l_z))
            S = S_all[..., J]
            m_new = torch.maximum(m, S.amax(dim=-1, keepdim=True))
            alpha, P = self.weights(m, m_new, S)
            s, O = self.update(s, O, alpha, P, V[:, J])
            m = m_new
        return _np(O / s)

    def starts(self, l_z, block):
        return range(0, l_z, block)

    def weights(self, m, m_new, S):
        seen = torch.isfinite(m_new)
        m_seen = torch.where(seen, m_new, 0.0)
        alpha = torch.where(seen, torch.exp(torch.where(seen, m, m_seen) - m_seen), 0.0)
        return alpha, torch.where(seen, torch.exp(S - m_seen), 0.0)

    def update(self, s, O, alpha, P, V_J):
        return alpha * s + P.sum(dim=-1, keepdim=True), O * alpha + P @ V_J


class OutputNotRescaled(OnlineSoftmaxMutant):
    """When the running max grows, the accumulated output is not rescaled by exp(m - m')."""

    caught_by = ("online_softmax.equals_attention", "online_softmax.partition_invariance",
                 "reference.forward_agreement")

    def update(self, s, O, alpha, P, V_J):
        return alpha * s + P.sum(dim=-1, keepdim=True), O + P @ V_J


class LastPartialBlockDropped(OnlineSoftmaxMutant):
    """The loop runs over l_z // B_c full blocks: the keys of a shorter last block are lost."""

    caught_by = ("online_softmax.equals_attention", "online_softmax.partition_invariance",
                 "reference.forward_agreement")

    def starts(self, l_z, block):
        return range(0, (l_z // block) * block, block)


class MaskedBlockGivesNaN(OnlineSoftmaxMutant):
    """exp(m - m') evaluated as exp(-inf - (-inf)) = NaN for a query whose keys so far were all
    masked: the classic NaN of tiled kernels with padding."""

    caught_by = ("online_softmax.equals_attention", "reference.forward_agreement")

    def weights(self, m, m_new, S):
        return torch.exp(m - m_new), torch.exp(S - m_new)
