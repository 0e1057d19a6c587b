"""Mutants of the declared variants (tied_unembedding, bias, loss_reduction, padding_idx):
each declares a variant and gets its formula wrong in one place, the way real code does."""

from __future__ import annotations

import dataclasses

import torch

import torch_impl
from conformance.adapters.torch_adapter import TorchAdapter, _grads, _t
from conformance.mutants.attention import SoftmaxOverQueries
from formal_transformers.canonical import full_parameters, parameter_shapes, without_variants
from torch_impl import training
from torch_impl.models import MODEL_CLASSES


class TieLostOnLoad(TorchAdapter):
    """Declares a tied unembedding but loads W_e into two separate matrices (the head is a
    copy, not the same tensor: ``tie_weights()`` never ran), so W_e's gradient misses the
    unembedding's use."""

    variants = {"tied_unembedding": True}
    only = ("d_transformer_backward",)
    caught_by = ("reference.gradient_agreement", "gradient.finite_difference")

    def _vjp(self, config, params, dP, *tokens):
        untied = dataclasses.replace(config, tied_unembedding=False)
        full = full_parameters(config, params)
        model = MODEL_CLASSES[type(config)].from_canonical(
            untied, {k: full[k].copy() for k in parameter_shapes(untied)})
        grads = super()._vjp(untied, {k: v.copy() for k, v in model.to_canonical().items()},
                             dP, *tokens)
        return {k: grads[k] for k in parameter_shapes(config)}


class MeanCountsEveryPosition(TorchAdapter):
    """Declares loss_reduction = "mean" but divides by l_x, the number of positions, instead
    of the l_x - 1 predicted tokens (the last position predicts nothing)."""

    variants = {"loss_reduction": "mean"}
    only = ("d_training",)
    caught_by = ("training.step_agreement",)

    def d_training(self, x, params, config, eta):
        def loss_fn(model, batch):
            l = batch[0].shape[1]
            return training.d_losses(model, batch) * (l - 1) / l
        return self._epoch(config, params, eta, loss_fn,
                           [(_t(x[b:b + 1]),) for b in range(len(x))])


class PaddingRowTrained(TorchAdapter):
    """Declares padding_idx = 0 but builds its embedding without it (``nn.Embedding(N_V,
    d_e)``): the padding column receives the lookup's gradient."""

    variants = {"padding_idx": 0}
    only = ("d_transformer_backward",)
    caught_by = ("reference.gradient_agreement",)

    def _vjp(self, config, params, dP, *tokens):
        return super()._vjp(dataclasses.replace(config, padding_idx=None), params, dP, *tokens)


class BiasDeclaredButKept(TorchAdapter):
    """Declares bias = False but its layer norms keep a learned offset initialised to 1
    instead of having none (a stale ``beta``)."""

    variants = {"bias": False}
    only = ("d_transformer",)
    caught_by = ("reference.forward_agreement",)

    def d_transformer(self, x, params, config):
        plain = without_variants(config)
        full = {k: v.copy() for k, v in full_parameters(config, params).items()}
        for name in full:
            if name.endswith(".beta"):
                full[name][:] = 1.0
        return super().d_transformer(x, full, plain)


class LayerNormKeepsBeta(TorchAdapter):
    """Declares bias = False for its primitives but builds its layer norm as ``nn.LayerNorm(
    d_e)``, which has a beta (PyTorch could not drop it before pytorch#101683; bias-free
    models then carried an offset nobody declared, cf. llm-foundry#502, whose no-bias flag
    never reached a fused LayerNorm-MLP): it holds d_e parameters too many."""

    variants = {"bias": False}
    only = ("layer_norm",)
    caught_by = ("memory.parameter_count",)

    def count_parameters(self, algorithm, sizes):
        if algorithm == "layer_norm":
            return sum(p.numel() for p in torch.nn.LayerNorm(sizes["d_e"]).parameters())
        return super().count_parameters(algorithm, sizes)


class BiasFreeSoftmaxOverQueries(SoftmaxOverQueries):
    """Llama-style bias-free attention (declares bias = False) whose softmax runs over the
    queries: the scores are laid out (l_z, l_x) and ``dim=-1`` normalises the wrong axis.
    The suite's bias-free cases have no b_v or b_k to build its laws on."""

    variants = {"bias": False}
    only = ("attention",)
    caught_by = ("softmax.normalised", "softmax.shift_invariance",
                 "reference.forward_agreement")


class EmbeddingLookupTrainsPadding(TorchAdapter):
    """Declares padding_idx = 0 for its token embedding but backpropagates the plain lookup
    (``F.embedding(x, W)`` without ``padding_idx``): the padding column gets every gradient
    of the padding token's occurrences."""

    variants = {"padding_idx": 0}
    only = ("token_embedding_backward",)
    caught_by = ("reference.gradient_agreement",)

    def token_embedding_backward(self, x, params, dY):
        return _grads(torch_impl.token_embedding_backward(_t(dY), _t(x), _t(params["W_e"])))
