"""Mutants of the attention family (Algorithms 3-5): each breaks one line of the spec.

``attend`` below is a plain, correct single-head attention in torch; every mutant changes one
step of it (or of the multi-head split/merge) and says which property must catch it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange

import torch_impl
from conformance.adapters.torch_adapter import TorchAdapter, _np, _t, _tensors


def scores(X, Z, p):
    """S = K^T Q as (B, l_z, l_x), and the values V as (B, l_z, d_out) (Alg 4 L1-4); an
    absent bias (the declared variant bias = False) is none."""
    q, k = F.linear(X, p["W_q"], p.get("b_q")), F.linear(Z, p["W_k"], p.get("b_k"))
    return k @ q.transpose(-1, -2), F.linear(Z, p["W_v"], p.get("b_v"))


def masked(S, mask):
    """Alg 4 L5-6: -inf where Mask[t_z, t_x] = 0."""
    return S if mask is None else S.masked_fill(~mask, float("-inf"))


def weighted(A, V):
    """V softmax(...) in (B, l_x, d_out) layout (Alg 4 L7)."""
    return A.transpose(-1, -2) @ V


class AttentionMutant(TorchAdapter):
    """Replaces ``attention`` by ``broken(X, Z, params, mask)`` on torch tensors."""

    only = ("attention",)

    def attention(self, X, Z, params, mask=None):
        return _np(self.broken(_t(X), _t(Z), _tensors(params), _t(mask)))

    def broken(self, X, Z, p, mask):
        raise NotImplementedError


class MissingScale(AttentionMutant):
    """The scores are not divided by sqrt(d_attn) (Alg 4 L7)."""

    caught_by = ("reference.forward_agreement",)

    def broken(self, X, Z, p, mask):
        S, V = scores(X, Z, p)
        return weighted(torch.softmax(masked(S, mask), dim=-2), V)


class SoftmaxOverQueries(AttentionMutant):
    """The softmax normalises over the queries t_x instead of the context t_z (row-wise)."""

    caught_by = ("softmax.normalised", "softmax.shift_invariance", "reference.forward_agreement")

    def broken(self, X, Z, p, mask):
        S, V = scores(X, Z, p)
        A = torch.softmax(masked(S, mask) / math.sqrt(p["W_q"].shape[0]), dim=-1)
        return weighted(torch.nan_to_num(A), V)


class MaskAfterSoftmax(AttentionMutant):
    """Masked weights are zeroed after the softmax, so the others are not renormalised."""

    caught_by = ("mask.no_influence", "softmax.normalised")

    def broken(self, X, Z, p, mask):
        S, V = scores(X, Z, p)
        A = torch.softmax(S / math.sqrt(p["W_q"].shape[0]), dim=-2)
        return weighted(A if mask is None else A * mask, V)


class MaskIgnored(AttentionMutant):
    """The mask is accepted and ignored (Alg 4 L5-6 missing)."""

    caught_by = ("mask.no_influence",)

    def broken(self, X, Z, p, mask):
        return torch_impl.attention(X, Z, **p)


class NoMaskMeansCausal(AttentionMutant):
    """mask=None is read as the causal mask whenever l_z = l_x (a common default bug)."""

    caught_by = ("mask.all_ones_equals_none",)

    def broken(self, X, Z, p, mask):
        causal = mask is None and X.shape[1] == Z.shape[1]
        return torch_impl.attention(X, Z, **p, mask=mask, causal=causal)


class PositionBiasedScores(AttentionMutant):
    """An ALiBi-like bias -|t_z - t_x| is added to the scores: attention sees positions."""

    caught_by = ("permutation.equivariance", "permutation.cross_invariance")

    def broken(self, X, Z, p, mask):
        S, V = scores(X, Z, p)
        t_z = torch.arange(Z.shape[1], dtype=S.dtype)[:, None]
        t_x = torch.arange(X.shape[1], dtype=S.dtype)[None, :]
        S = S / math.sqrt(p["W_q"].shape[0]) - (t_z - t_x).abs()
        return weighted(torch.softmax(masked(S, mask), dim=-2), V)


class BatchRowsMix(AttentionMutant):
    """Every query attends to the context of every row of the batch (flattened batch)."""

    caught_by = ("batch.independence",)

    def broken(self, X, Z, p, mask):
        B, l_z = Z.shape[:2]
        Z_all = Z.reshape(1, B * l_z, -1).expand(B, -1, -1)  # (B, B*l_z, d_z)
        mask_all = None if mask is None else mask.repeat(B, 1)  # (B*l_z, l_x)
        return torch_impl.attention(X, Z_all, **p, mask=mask_all)


class MultiHeadMutant(TorchAdapter):
    """Replaces ``mhattention`` by per-head ``torch_impl.attention`` and a broken merge."""

    only = ("mhattention",)

    def mhattention(self, X, Z, params, mask=None):
        p = _tensors(params)
        heads = [self.head(_t(X), _t(Z), {k: p[k][h] for k in ("W_q", "b_q", "W_k", "b_k",
                                                                "W_v", "b_v")}, _t(mask))
                 for h in range(p["W_q"].shape[0])]
        Y = self.merge(torch.stack(heads, dim=2))  # from (B, l_x, H, d_mid)
        return _np(F.linear(Y, p["W_o"], p["b_o"]))

    def head(self, X, Z, p, mask):
        return torch_impl.attention(X, Z, **p, mask=mask)

    def merge(self, Y):
        return rearrange(Y, "b l h d -> b l (h d)")


class HeadsMergedWrongly(MultiHeadMutant):
    """The heads' outputs are interleaved feature by feature instead of stacked (Alg 5 L3)."""

    caught_by = ("reference.forward_agreement",)

    def merge(self, Y):
        return rearrange(Y, "b l h d -> b l (d h)")


class HeadScaledByValueSize(MultiHeadMutant):
    """Each head divides its scores by sqrt(d_mid) instead of sqrt(d_attn)."""

    caught_by = ("structure.single_head", "reference.forward_agreement")

    def head(self, X, Z, p, mask):
        S, V = scores(X, Z, p)
        return weighted(torch.softmax(masked(S, mask) / math.sqrt(p["W_v"].shape[0]), dim=-2), V)


class BasicAttentionWithoutScale(TorchAdapter):
    """Basic single-query attention forgets the 1/sqrt(d_attn) (Alg 3 L5)."""

    only = ("basic_attention",)
    caught_by = ("structure.basic_attention", "reference.forward_agreement")

    def basic_attention(self, e, E_ctx, params):
        S, V = scores(_t(e)[:, None, :], _t(E_ctx), _tensors(params))
        return _np(weighted(torch.softmax(S, dim=-2), V)[:, 0])
