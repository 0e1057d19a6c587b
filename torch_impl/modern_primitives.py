"""The norm module and the MLP activation as the modern decoder uses them (spec: Algorithm 65).

``Norm`` holds the gain (and offset) of one norm and calls the primitives' own functions:
torch_impl.layer_norm (Algorithm 6) or torch_impl.rmsnorm (Algorithm 27); ``mlp_activation``
picks phi from Algorithm 28's or Algorithm 16's table.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from torch_impl.gated_mlp import GATED_ACTIVATIONS
from torch_impl.layer_norm import layer_norm
from torch_impl.mlp import activation_function
from torch_impl.rmsnorm import rmsnorm


class Norm(nn.Module):
    """Layer norm (gamma, beta) or RMSNorm (gamma; gain 1 + gamma with ``offset``) over the
    last axis, eps inside the root."""

    def __init__(self, d: int, kind: str, eps: float, offset: bool = False):
        super().__init__()
        self.kind, self.eps, self.offset = kind, eps, offset
        self.gamma = nn.Parameter(torch.zeros(d) if offset else torch.ones(d))
        self.beta = nn.Parameter(torch.zeros(d)) if kind == "layer_norm" else None

    def canonical_views(self, prefix: str, get) -> dict[str, torch.Tensor]:
        views = {f"{prefix}.gamma": get(self.gamma)}
        if self.beta is not None:
            views[f"{prefix}.beta"] = get(self.beta)
        return views

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if self.beta is not None:
            return layer_norm(X, self.gamma, self.beta, self.eps)
        return rmsnorm(X, self.gamma, self.eps, self.offset)


def mlp_activation(name: str, gated: bool):
    """phi of the gated MLP (Algorithm 28) or of the plain one (Algorithm 16)."""
    return GATED_ACTIVATIONS[name] if gated else activation_function(name)
