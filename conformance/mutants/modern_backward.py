"""Mutants of the modern decoder's backward (spec: Algorithm 66): torch_impl's modern decoder
with one hand-written gradient rule broken the way real backward passes have broken it; the
forward stays correct, so only the gradient laws can see them.

- the expanded kv heads' gradient "un-broadcast" by keeping the first query head of each group
  instead of summing the group (levanter #449: a flash-attention backward that could not undo
  the broadcast of K, V over the query heads per group; ffpa-attn #301 and FlagGems #898 reduce
  the expanded dK/dV back to the kv heads) -- Algorithm 66 line 15;
- RoPE's backward applying the forward rotation again instead of its transpose, the sin sign
  not flipped (candle #3612 and tt-mlir #9363: "the backward is RoPE with sin negated"; Paddle
  #74716: a fused rotary backward with the wrong formula) -- line 16;
- a tied W_e whose gradient lacks the unembedding's share (entrenar #314: the LM head's and the
  embedding's gradients applied separately instead of summed; Megatron-LM #656: tied weights
  drifting apart in training) -- line 3.
"""

from __future__ import annotations

import dataclasses

import torch

from conformance.adapters.torch_adapter import _grads, _t
from conformance.mutants.modern_decoder import ModernTorch, _swap_attention, _with_config
from formal_transformers.hyperparameters import ModernDTransformerConfig
from torch_impl.modern_decoder import GQAttention, ModernDTransformer, probability_vjp
from torch_impl.rope import rope


class ModernBackwardTorch(ModernTorch):
    """ModernTorch with its gradient (Algorithm 66) and its training step (Algorithm 13)
    through the same ``build`` hook, so that a broken model breaks both."""

    name = "modern decoder backward (torch, hookable)"
    algorithms = ModernTorch.algorithms + ("modern_d_transformer_backward", "d_training")
    only = ("modern_d_transformer_backward",)

    def modern_d_transformer_backward(self, x, params, config, dP):
        return _grads(probability_vjp(self.build(config, params), _t(x), _t(dP)))

    def model_for(self, config, params):
        if isinstance(config, ModernDTransformerConfig):
            return self.build(config, params)
        return super().model_for(config, params)


class _RepeatKVFirstHeadGradient(torch.autograd.Function):
    """k (B, G, n, d) -> (B, H, n, d), query head h reading kv head h // (H / G); the backward
    keeps the first query head's gradient of each group instead of the group's sum."""

    @staticmethod
    def forward(ctx, kv, rep):
        ctx.rep = rep
        return kv.repeat_interleave(rep, dim=1)

    @staticmethod
    def backward(ctx, grad):
        return grad[:, ::ctx.rep].contiguous(), None  # correct: grad.unflatten(1, (-1, rep)).sum(2)


class _FirstHeadKVGradient(GQAttention):
    def _attend(self, q, k, v, allowed, q_pos, k_pos):
        rep = self.c.H // self.c.G
        k = _RepeatKVFirstHeadGradient.apply(k, rep)
        v = _RepeatKVFirstHeadGradient.apply(v, rep)
        c = dataclasses.replace(self.c, G=self.c.H)
        return GQAttention._attend(_with_config(self, c), q, k, v, allowed, q_pos, k_pos)


class GQAKVGradientFromFirstHead(ModernBackwardTorch):
    """A kv head's gradient is its first query head's share, not the sum over the H / G query
    heads that read it (Alg 66 L15)."""

    caught_by = ("gradient.finite_difference", "reference.gradient_agreement",
                 "training.step_agreement")
    selections = {"H": 4, "G": 2}

    def build(self, config, params):
        return _swap_attention(super().build(config, params), _FirstHeadKVGradient)


class _RopeRotatedForwardInBackward(torch.autograd.Function):
    """RoPE whose backward rotates the gradient by +t omega_i (R_t) instead of -t omega_i
    (R_t^T, Algorithm 29)."""

    @staticmethod
    def forward(ctx, x, positions, config):
        ctx.save_for_backward(positions)
        ctx.config = config
        return rope(x, positions, config)

    @staticmethod
    def backward(ctx, grad):
        (positions,) = ctx.saved_tensors
        return rope(grad, positions, ctx.config), None, None  # correct: rope(grad, -positions)


class _UntransposedRope(GQAttention):
    def rotate(self, q, k, q_pos):
        return (_RopeRotatedForwardInBackward.apply(q, q_pos, self.c.rope),
                _RopeRotatedForwardInBackward.apply(k, q_pos, self.c.rope))


class RopeBackwardNotTransposed(ModernBackwardTorch):
    """RoPE's backward applies the forward rotation R_t again instead of R_t^T (the sin sign
    not flipped, Alg 66 L16)."""

    caught_by = ("gradient.finite_difference", "reference.gradient_agreement",
                 "training.step_agreement")
    selections = {"positions": "rope"}

    def build(self, config, params):
        return _swap_attention(super().build(config, params), _UntransposedRope)


class _UnembeddingWithoutGradient(ModernDTransformer):
    def unembed(self, X):
        if self.lm_head is not None:
            return self.lm_head(X)
        return X @ self.wte.weight.detach().T  # the unembedding's share never reaches W_e


class TiedEmbeddingMissesUnembeddingGradient(ModernBackwardTorch):
    """With tie_embeddings, W_e's gradient holds the lookup's share only, not the sum with the
    unembedding's (Alg 66 L3): the step trains a different model from the reference's."""

    caught_by = ("gradient.finite_difference", "reference.gradient_agreement",
                 "training.step_agreement")
    selections = {"tie_embeddings": True}

    def build(self, config, params):
        model = super().build(config, params)
        model.__class__ = _UnembeddingWithoutGradient
        return model

