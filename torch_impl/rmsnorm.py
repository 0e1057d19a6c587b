"""RMSNorm, batched (spec: Algorithm 27, spec/algorithms/27-rmsnorm.md).

Signature and layout (stable; the modern decoder builds on it)::

    rmsnorm(X, gamma, eps, offset=False) -> Y
        X: (..., d_e) float tensor, features last (e.g. (B, l, d_e)); gamma: (d_e,);
        eps >= 0 inside the square root; offset: the gain is 1 + gamma (Gemma).
        Y has the shape and dtype of X (computed in X's dtype).
    rmsnorm_backward(dY, X, gamma, eps, offset=False) -> {"X", "gamma"}, by autograd
        (Algorithm 30).
    RMSNorm(d_e, eps, offset): the nn.Module, parameter ``gamma``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from formal_transformers.errors import ConfigError
from torch_impl._checks import check_features, check_parameters
from torch_impl.backward import vjp


def rmsnorm(X: torch.Tensor, gamma: torch.Tensor, eps: float, offset: bool = False
            ) -> torch.Tensor:
    """X / sqrt(mean(X^2) + eps) * (gamma + offset), per feature vector (Algorithm 27)."""
    check_features("X", X)
    d_e = X.shape[-1]
    check_parameters([("gamma", gamma, (d_e,))], X.dtype)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) \
            or eps < 0:
        raise ConfigError(f"eps must be a finite number >= 0, got {eps!r}")
    if not isinstance(offset, bool):
        raise ConfigError(f"offset must be a bool (gain 1 + gamma if True), got {offset!r}")
    gain = gamma + 1.0 if offset else gamma
    return F.rms_norm(X, (d_e,), gain, float(eps))


def rmsnorm_backward(dY: torch.Tensor, X: torch.Tensor, gamma: torch.Tensor, eps: float,
                     offset: bool = False) -> dict[str, torch.Tensor]:
    """Gradients of RMSNorm by autograd (spec: Algorithm 30): {"X", "gamma"}."""
    return vjp(rmsnorm, dY, {"X": X, "gamma": gamma}, eps=eps, offset=offset)


class RMSNorm(torch.nn.Module):
    """RMSNorm as a module (spec: Algorithm 27): one parameter ``gamma`` (d_e,), initialised to
    the unit gain (ones, or zeros with offset)."""

    def __init__(self, d_e: int, eps: float = 1e-6, offset: bool = False):
        super().__init__()
        self.eps, self.offset = eps, offset
        self.gamma = torch.nn.Parameter(torch.zeros(d_e) if offset else torch.ones(d_e))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return rmsnorm(X, self.gamma, self.eps, self.offset)
