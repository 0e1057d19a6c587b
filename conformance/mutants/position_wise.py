"""Mutants of the position-wise maps, the embeddings and the unembedding (Algorithms 1, 2, 6,
7, 16): each breaks one line of the spec."""

from __future__ import annotations

import numpy as np
import torch

from conformance.adapters.torch_adapter import TorchAdapter, _np, _t
from torch_impl.unembedding import unembedding_logits


class LayerNormMutant(TorchAdapter):
    """Replaces ``layer_norm`` by ``broken(X, gamma, beta, eps)`` on torch tensors."""

    only = ("layer_norm",)

    def layer_norm(self, X, params, eps):
        return _np(self.broken(_t(X), _t(params["gamma"]), _t(params["beta"]), eps))

    def broken(self, X, gamma, beta, eps):
        raise NotImplementedError


class UnbiasedVariance(LayerNormMutant):
    """The variance divides by d_e - 1 instead of d_e (Alg 6 L2)."""

    caught_by = ("layer_norm.standardised", "reference.forward_agreement")

    def broken(self, X, gamma, beta, eps):
        m = X.mean(-1, keepdim=True)
        v = ((X - m) ** 2).sum(-1, keepdim=True) / max(X.shape[-1] - 1, 1)
        return (X - m) / torch.sqrt(v + eps) * gamma + beta


class EpsilonOutsideSquareRoot(LayerNormMutant):
    """eps is added to the standard deviation, not under the square root (Alg 6 L3)."""

    caught_by = ("reference.forward_agreement",)

    def broken(self, X, gamma, beta, eps):
        m, v = X.mean(-1, keepdim=True), X.var(-1, keepdim=True, unbiased=False)
        return (X - m) / (torch.sqrt(v) + eps) * gamma + beta


class NoCentering(LayerNormMutant):
    """The mean is not subtracted (RMS norm where layer norm is specified, Alg 6 L1)."""

    caught_by = ("layer_norm.affine_invariance", "layer_norm.standardised")

    def broken(self, X, gamma, beta, eps):
        return X / torch.sqrt((X * X).mean(-1, keepdim=True) + eps) * gamma + beta


class StatisticsOverPositions(LayerNormMutant):
    """Mean and variance are taken over the whole sequence, not per column."""

    caught_by = ("structure.position_wise",)

    def broken(self, X, gamma, beta, eps):
        m = X.mean((-2, -1), keepdim=True)
        v = X.var((-2, -1), keepdim=True, unbiased=False)
        return (X - m) / torch.sqrt(v + eps) * gamma + beta


class StatisticsOverBatch(LayerNormMutant):
    """Mean and variance are pooled over the batch rows (batch norm in disguise)."""

    caught_by = ("batch.independence",)

    def broken(self, X, gamma, beta, eps):
        m = X.mean((0, -1), keepdim=True)
        v = X.var((0, -1), keepdim=True, unbiased=False)
        return (X - m) / torch.sqrt(v + eps) * gamma + beta


class MlpAlwaysRelu(TorchAdapter):
    """The MLP ignores its activation hyperparameter and always applies ReLU (Alg 16 L2)."""

    only = ("mlp",)
    caught_by = ("reference.forward_agreement",)

    def mlp(self, X, params, activation):
        return super().mlp(X, params, "relu")


class UnembeddingOverPositions(TorchAdapter):
    """The unembedding's softmax runs over the positions instead of the vocabulary."""

    only = ("unembedding",)
    caught_by = ("structure.distribution", "softmax.normalised")

    def unembedding(self, X, params):
        logits = unembedding_logits(_t(X), _t(params["W_u"]))
        return _np(torch.softmax(logits, dim=1))


class UnembeddingReturnsLogits(TorchAdapter):
    """The unembedding returns the logits W_u e, without the softmax (Alg 7 L1)."""

    only = ("unembedding",)
    caught_by = ("structure.distribution", "softmax.shift_invariance")

    def unembedding(self, X, params):
        return _np(unembedding_logits(_t(X), _t(params["W_u"])))


class TokenEmbeddingOffByOne(TorchAdapter):
    """Token v is embedded as column v + 1 (mod N_V) of W_e (Alg 1 L1)."""

    only = ("token_embedding",)
    caught_by = ("structure.embedding_lookup", "reference.forward_agreement")

    def token_embedding(self, x, params):
        return super().token_embedding((x + 1) % params["W_e"].shape[1], params)


class PositionsFromOne(TorchAdapter):
    """Position t is embedded as column t + 1 (mod l_max) of W_p: 1-based positions."""

    only = ("positional_embedding",)
    caught_by = ("structure.embedding_lookup",)

    def positional_embedding(self, l, params):
        return super().positional_embedding(l, {"W_p": np.roll(params["W_p"], -1, axis=1)})


class SinusoidalPositionsInEncoder(TorchAdapter):
    """The E transformer adds fixed sinusoidal positions of its own to W_p (ignoring the
    spec's statement that W_p is the positional embedding)."""

    only = ("e_transformer",)
    caught_by = ("permutation.equivariance", "reference.forward_agreement")

    def e_transformer(self, x, params, config):
        d_e, l_max = params["W_p"].shape
        t = np.arange(l_max)[None, :] / 10000 ** (np.arange(d_e)[:, None] / d_e)
        table = np.where(np.arange(d_e)[:, None] % 2 == 0, np.sin(t), np.cos(t))
        return super().e_transformer(x, dict(params) | {"W_p": params["W_p"] + table.astype(
            params["W_p"].dtype)}, config)
