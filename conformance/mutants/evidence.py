"""Mutants that once passed for want of evidence (issue 12): non-finite outputs and gradients
that compared equal to themselves, a window hidden by short examples, an adapter that
declares nothing.

NaN against NaN used to count as agreement wherever a law compares two outputs of the adapter
(mask, permutation, batch, causal checks); a NaN directional derivative failed no ``>`` test;
architecture examples never exceeded 6 tokens; an empty declaration exited 0.
"""

from __future__ import annotations

import numpy as np
import torch

from conformance.adapters.torch_adapter import TorchAdapter
from conformance.mutants.attention import AttentionMutant
from conformance.mutants.decoder import ComposedDecoder
from torch_impl.attention import causal_mask

# Every law of Algorithm 4 that compares the adapter with the reference or with itself.
ATTENTION_LAWS = ("reference.forward_agreement", "mask.no_influence",
                  "mask.all_ones_equals_none", "permutation.equivariance",
                  "permutation.cross_invariance", "batch.independence", "causal.non_leakage",
                  "softmax.normalised", "softmax.shift_invariance")


class AttentionAllNaN(AttentionMutant):
    """Attention returns NaN everywhere (as a softmax over a row of -inf scores does, e.g.
    fp16 overflow turning every score to -inf); NaN vs NaN must not count as agreement."""

    caught_by = ATTENTION_LAWS

    def broken(self, X, Z, p, mask):
        return torch.full(X.shape[:2] + p["W_v"].shape[:1], float("nan"), dtype=X.dtype)


class AttentionAllInf(AttentionMutant):
    """Attention returns +Inf everywhere (an overflowing exp without the max subtracted);
    Inf - Inf is NaN, and Inf vs Inf must not count as agreement."""

    caught_by = ATTENTION_LAWS

    def broken(self, X, Z, p, mask):
        return torch.full(X.shape[:2] + p["W_v"].shape[:1], float("inf"), dtype=X.dtype)


class NaNGradientEntry(TorchAdapter):
    """attention_backward returns one NaN entry in dW_q (0 * inf from a masked -inf score in
    the softmax's backward, a bug torch's own masked attention once had)."""

    only = ("attention_backward",)
    caught_by = ("reference.gradient_agreement", "gradient.finite_difference")

    def attention_backward(self, X, Z, params, dY, mask=None):
        grads = dict(super().attention_backward(X, Z, params, dY, mask))
        grads["W_q"] = grads["W_q"].copy()
        grads["W_q"].flat[0] = np.nan
        return grads


class CausalMaskWithWindow(ComposedDecoder):
    """The causal mask also cuts keys more than 5 positions back (a sliding window of 6 that
    nobody declared: Mistral-style windowing applied to a model trained with full causal
    attention); invisible on sequences of at most 6 tokens."""

    only = ("d_transformer",)
    caught_by = ("reference.forward_agreement",)
    WINDOW = 6

    def mask(self, l_z, l_x, offset):
        full = causal_mask(l_z, l_x, offset=offset)
        t_z = torch.arange(l_z)[:, None]
        t_x = torch.arange(l_x)[None, :] + offset
        return full & (t_x - t_z < self.WINDOW)


class NothingDeclared(TorchAdapter):
    """Declares no algorithm at all: a run checks nothing and must not pass (exit status 3)."""

    name = "declares nothing"
    algorithms = ()
    only = ("attention", "d_transformer")
    caught_by = ()
    exit_status = 3
