"""Gated MLP (SwiGLU / GeGLU), batched (spec: Algorithm 28, spec/algorithms/28-gated-mlp.md).

Signature and layout (stable; the modern decoder builds on it)::

    gated_mlp(X, W_gate, W_up, W_down, activation, b_gate=None, b_up=None, b_down=None) -> Y
        X: (..., d_e) float tensor, features last; W_gate, W_up: (d_mlp, d_e) and W_down:
        (d_e, d_mlp) in torch.nn.Linear.weight orientation; biases optional (None = 0);
        activation: 'silu' (SwiGLU), 'gelu' (GeGLU, exact) or 'gelu_tanh' (GeGLU, tanh).
        Y: (..., d_e).
    gated_mlp_backward(dY, X, W_gate, W_up, W_down, activation, b_gate=None, ...) ->
        {"X", "W_gate", "W_up", "W_down"} and the given biases, by autograd (Algorithm 31).
    GatedMLP(d_e, d_mlp, activation, bias=False): the nn.Module, parameters named as above.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from formal_transformers.errors import ConfigError
from torch_impl._checks import check_features, check_parameters
from torch_impl.backward import vjp

GATED_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "silu": F.silu,
    "gelu": F.gelu,  # exact (erf)
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
}


def gated_mlp(X: torch.Tensor, W_gate: torch.Tensor, W_up: torch.Tensor, W_down: torch.Tensor,
              activation: str, b_gate: torch.Tensor | None = None,
              b_up: torch.Tensor | None = None, b_down: torch.Tensor | None = None
              ) -> torch.Tensor:
    """W_down (phi(W_gate X + b_gate) * (W_up X + b_up)) + b_down at every position."""
    if activation not in GATED_ACTIVATIONS:
        raise ConfigError(f"gated MLP activation must be one of {tuple(GATED_ACTIVATIONS)}, "
                          f"got {activation!r}")
    check_features("X", X)
    d_e, d_mlp = X.shape[-1], W_gate.shape[0]
    specs = [("W_gate", W_gate, (d_mlp, d_e)), ("W_up", W_up, (d_mlp, d_e)),
             ("W_down", W_down, (d_e, d_mlp))]
    specs += [(n, b, (k,)) for n, b, k in (("b_gate", b_gate, d_mlp), ("b_up", b_up, d_mlp),
                                           ("b_down", b_down, d_e)) if b is not None]
    check_parameters(specs, X.dtype)
    phi = GATED_ACTIVATIONS[activation]
    hidden = phi(F.linear(X, W_gate, b_gate)) * F.linear(X, W_up, b_up)  # (..., d_mlp)
    return F.linear(hidden, W_down, b_down)  # (..., d_e)


def gated_mlp_backward(dY: torch.Tensor, X: torch.Tensor, W_gate: torch.Tensor,
                       W_up: torch.Tensor, W_down: torch.Tensor, activation: str,
                       b_gate: torch.Tensor | None = None, b_up: torch.Tensor | None = None,
                       b_down: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Gradients of the gated MLP by autograd (spec: Algorithm 31), for every given tensor."""
    inputs = {"X": X, "W_gate": W_gate, "W_up": W_up, "W_down": W_down, "b_gate": b_gate,
              "b_up": b_up, "b_down": b_down}
    return vjp(gated_mlp, dY, {k: v for k, v in inputs.items() if v is not None},
               activation=activation)


class GatedMLP(torch.nn.Module):
    """The gated MLP as a module (spec: Algorithm 28): parameters W_gate, W_up (d_mlp, d_e),
    W_down (d_e, d_mlp) and, with ``bias``, b_gate, b_up, b_down; random init as nn.Linear."""

    def __init__(self, d_e: int, d_mlp: int, activation: str = "silu", bias: bool = False):
        super().__init__()
        self.activation = activation
        gate, up = torch.nn.Linear(d_e, d_mlp, bias), torch.nn.Linear(d_e, d_mlp, bias)
        down = torch.nn.Linear(d_mlp, d_e, bias)
        self.W_gate, self.W_up, self.W_down = gate.weight, up.weight, down.weight
        self.b_gate, self.b_up, self.b_down = gate.bias, up.bias, down.bias

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return gated_mlp(X, self.W_gate, self.W_up, self.W_down, self.activation, self.b_gate,
                         self.b_up, self.b_down)
