"""Mutants of RMSNorm and the gated MLP (spec: Algorithms 27-28), each modelled on a bug seen
in real code (spec/properties.md, rmsnorm.* and gated_mlp.*)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from conformance.adapters.torch_adapter import TorchAdapter, _np, _t, _tensors
from torch_impl.gated_mlp import GATED_ACTIVATIONS, gated_mlp


class RMSNormMutant(TorchAdapter):
    """Replaces ``rmsnorm`` by ``broken(X, gamma, eps, offset)`` on torch tensors."""

    only = ("rmsnorm",)

    def rmsnorm(self, X, params, eps, offset):
        return _np(self.broken(_t(X), _t(params["gamma"]), eps, offset))

    def broken(self, X, gamma, eps, offset):
        raise NotImplementedError


def _gain(gamma, offset):
    return gamma + 1.0 if offset else gamma


class RMSNormEpsilonOutsideRoot(RMSNormMutant):
    """e / (sqrt(mean(e^2)) + eps): the stabiliser added to the root mean square, not under
    the root (Alg 27 L1)."""

    caught_by = ("rmsnorm.scale_invariance", "reference.forward_agreement")

    def broken(self, X, gamma, eps, offset):
        return X / (X.pow(2).mean(-1, keepdim=True).sqrt() + eps) * _gain(gamma, offset)


class RMSNormSubtractsMean(RMSNormMutant):
    """The mean is subtracted first: layer norm without beta where RMSNorm is specified."""

    caught_by = ("rmsnorm.unit_gain", "reference.forward_agreement")

    def broken(self, X, gamma, eps, offset):
        C = X - X.mean(-1, keepdim=True)
        return C / torch.sqrt(C.pow(2).mean(-1, keepdim=True) + eps) * _gain(gamma, offset)


class RMSNormOffsetMissing(RMSNormMutant):
    """Gemma's gain 1 + gamma read as gamma (transformers #29402): the offset is dropped."""

    caught_by = ("rmsnorm.unit_gain", "reference.forward_agreement")

    def broken(self, X, gamma, eps, offset):
        return F.rms_norm(X, (X.shape[-1],), gamma, eps)


class RMSNormOverSequence(RMSNormMutant):
    """The mean square is taken over the whole sequence, not per position."""

    caught_by = ("structure.position_wise",)

    def broken(self, X, gamma, eps, offset):
        return X / torch.sqrt(X.pow(2).mean((-2, -1), keepdim=True) + eps) * _gain(gamma, offset)


class GatedMLPMutant(TorchAdapter):
    """Replaces ``gated_mlp`` by ``broken(X, params, phi)`` on torch tensors (biases -> 0)."""

    only = ("gated_mlp",)

    def gated_mlp(self, X, params, activation):
        p = _tensors(params)
        zero = {k: torch.zeros(p[w].shape[0], dtype=p[w].dtype)
                for k, w in (("b_gate", "W_gate"), ("b_up", "W_up"), ("b_down", "W_down"))}
        return _np(self.broken(_t(X), zero | p, GATED_ACTIVATIONS[activation]))

    def broken(self, X, p, phi):
        raise NotImplementedError


class GateUpSwapped(GatedMLPMutant):
    """A fused gate_up_proj split in the wrong order: phi(W_up X) * (W_gate X)."""

    caught_by = ("gated_mlp.linear_in_up", "reference.forward_agreement")

    def broken(self, X, p, phi):
        G = F.linear(X, p["W_gate"], p["b_gate"])
        U = F.linear(X, p["W_up"], p["b_up"])
        return F.linear(phi(U) * G, p["W_down"], p["b_down"])


class ActivationOnBothBranches(GatedMLPMutant):
    """phi(G) * phi(U): the activation applied to the up branch as well (Alg 28 L3)."""

    caught_by = ("gated_mlp.linear_in_up", "reference.forward_agreement")

    def broken(self, X, p, phi):
        G = F.linear(X, p["W_gate"], p["b_gate"])
        U = F.linear(X, p["W_up"], p["b_up"])
        return F.linear(phi(G) * phi(U), p["W_down"], p["b_down"])


class GeGLUTanhForExact(TorchAdapter):
    """GeGLU with the tanh GELU where the exact (erf) one is declared."""

    only = ("gated_mlp",)
    caught_by = ("reference.forward_agreement",)

    def gated_mlp(self, X, params, activation):
        name = "gelu_tanh" if activation == "gelu" else activation
        return _np(gated_mlp(_t(X), **_tensors(params), activation=name))


class GatedMLPOverSequence(GatedMLPMutant):
    """The hidden layer is normalised by its mean over the sequence (a stray reduction over
    the wrong axis), so positions influence each other."""

    caught_by = ("structure.position_wise",)

    def broken(self, X, p, phi):
        M = phi(F.linear(X, p["W_gate"], p["b_gate"])) * F.linear(X, p["W_up"], p["b_up"])
        return F.linear(M - M.mean(-2, keepdim=True), p["W_down"], p["b_down"])


class GatedMLPAlwaysBiased(TorchAdapter):
    """The module always builds biases (nn.Linear's default bias=True), so a bias-free gated
    MLP (Llama's) holds 2 d_mlp + d_e parameters too many."""

    only = ("gated_mlp",)
    caught_by = ("memory.parameter_count",)

    def count_parameters(self, algorithm, sizes):
        if algorithm == "gated_mlp":
            sizes = dict(sizes) | {"bias": True}
        return super().count_parameters(algorithm, sizes)
