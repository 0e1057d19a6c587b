"""Mutants of the training algorithms (11-13), of the parameter count, and of the hand-written
gradients (17-23): each breaks one thing."""

from __future__ import annotations

import torch

from conformance.adapters.torch_adapter import TorchAdapter, _grads, _t, _tensors
from conformance.mutants.attention import masked, scores, weighted
from torch_impl import training
from torch_impl.backward import vjp


class MeanOverPositions(TorchAdapter):
    """The D training loss averages over positions instead of summing (Alg 13 L5)."""

    only = ("d_training",)
    caught_by = ("training.step_agreement",)

    def d_training(self, x, params, config, eta):
        def loss_fn(model, batch):
            return training.d_losses(model, batch) / (batch[0].shape[1] - 1)
        return self._epoch(config, params, eta, loss_fn,
                           [(_t(x[b:b + 1]),) for b in range(len(x))])


class GradientAscent(TorchAdapter):
    """The update adds the gradient: theta + eta * grad (Alg 13 L6 with the wrong sign)."""

    only = ("d_training",)
    caught_by = ("training.step_agreement",)

    def d_training(self, x, params, config, eta):
        return self._epoch(config, params, -eta, training.d_losses,
                           [(_t(x[b:b + 1]),) for b in range(len(x))])


class TiedUnembeddingCount(TorchAdapter):
    """The parameter count treats W_u as tied to W_e (GPT-2's habit; the spec keeps both)."""

    only = ("memory.parameter_count",)
    algorithms = ("count_parameters", "d_transformer", "e_transformer", "ed_transformer")
    caught_by = ("memory.parameter_count",)

    def count_parameters(self, algorithm, sizes):
        return super().count_parameters(algorithm, sizes) - sizes.N_V * sizes.d_e


class NoOutputBiasCount(TorchAdapter):
    """Multi-head attention without the output bias b_o (Alg 5 L4)."""

    only = ("memory.parameter_count",)
    algorithms = ("count_parameters", "mhattention")
    caught_by = ("memory.parameter_count",)

    def count_parameters(self, algorithm, sizes):
        return super().count_parameters(algorithm, sizes) - sizes["d_out"]


def _attention(X, Z, W_q, b_q, W_k, b_k, W_v, b_v, mask=None, normaliser=True):
    S, V = scores(X, Z, {"W_q": W_q, "b_q": b_q, "W_k": W_k, "b_k": b_k, "W_v": W_v,
                         "b_v": b_v})
    E = torch.exp(masked(S, mask) / W_q.shape[0] ** 0.5)
    total = E.sum(dim=-2, keepdim=True)
    return weighted(E / (total if normaliser else total.detach()), V)


class SoftmaxJacobianDropped(TorchAdapter):
    """attention_backward treats the softmax's normaliser as a constant, dropping the
    -A (1^T (A . dA)) term of the softmax Jacobian (Alg 19)."""

    only = ("attention_backward",)
    caught_by = ("reference.gradient_agreement", "gradient.finite_difference")

    def attention_backward(self, X, Z, params, dY, mask=None):
        inputs = {"X": _t(X), "Z": _t(Z)} | _tensors(params)
        return _grads(vjp(_attention, _t(dY), inputs, mask=_t(mask), normaliser=False))


def _leaky_attention(X, Z, W_q, b_q, W_k, b_k, W_v, b_v, mask=None):
    """Masked attention in value, unmasked in gradient."""
    free = _attention(X, Z, W_q, b_q, W_k, b_k, W_v, b_v)
    exact = _attention(X, Z, W_q, b_q, W_k, b_k, W_v, b_v, mask=mask)
    return free + (exact - free).detach()


class GradientIgnoresMask(TorchAdapter):
    """attention_backward differentiates the unmasked attention: gradients leak from the
    future under a causal mask (the Jacobian blocks the mask zeroes are not zero)."""

    only = ("attention_backward", "attention")
    caught_by = ("causal.zero_jacobian", "reference.gradient_agreement")

    def attention_backward(self, X, Z, params, dY, mask=None):
        inputs = {"X": _t(X), "Z": _t(Z)} | _tensors(params)
        return _grads(vjp(_leaky_attention, _t(dY), inputs, mask=_t(mask)))


def _layer_norm_constant_mean(X, gamma, beta, eps):
    m = X.mean(-1, keepdim=True).detach()
    v = ((X - m) ** 2).mean(-1, keepdim=True)
    return (X - m) / torch.sqrt(v + eps) * gamma + beta


class LayerNormGradientWithoutMean(TorchAdapter):
    """layer_norm_backward forgets that the mean depends on the input (Alg 21)."""

    only = ("layer_norm_backward",)
    caught_by = ("reference.gradient_agreement", "gradient.finite_difference")

    def layer_norm_backward(self, X, params, eps, dY):
        inputs = {"X": _t(X), "gamma": _t(params["gamma"]), "beta": _t(params["beta"])}
        return _grads(vjp(_layer_norm_constant_mean, _t(dY), inputs, eps=eps))
