"""Position-wise MLP and its activations, batched (spec: Algorithm 16, 16-mlp.md)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from formal_transformers.errors import ConfigError
from formal_transformers.hyperparameters import ACTIVATIONS
from torch_impl._checks import check_features, check_parameters

ACTIVATION_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,  # x Phi(x), exact (erf)
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's stated variant
}


def activation_function(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The elementwise nonlinearity phi named by a config's ``activation`` field."""
    if name not in ACTIVATION_FUNCTIONS:
        raise ConfigError(f"activation must be one of {ACTIVATIONS}, got {name!r}")
    return ACTIVATION_FUNCTIONS[name]


def mlp(X: torch.Tensor, W_mlp1: torch.Tensor, b_mlp1: torch.Tensor, W_mlp2: torch.Tensor,
        b_mlp2: torch.Tensor, activation: str) -> torch.Tensor:
    """W_mlp2 phi(W_mlp1 X + b_mlp1 1^T) + b_mlp2 1^T, applied to every position.

    X: (..., d_e); W_mlp1: (d_mlp, d_e); W_mlp2: (d_e, d_mlp). Returns (..., d_e).
    """
    phi = activation_function(activation)
    check_features("X", X)
    d_e, d_mlp = X.shape[-1], W_mlp1.shape[0]
    check_parameters([("W_mlp1", W_mlp1, (d_mlp, d_e)), ("b_mlp1", b_mlp1, (d_mlp,)),
                      ("W_mlp2", W_mlp2, (d_e, d_mlp)), ("b_mlp2", b_mlp2, (d_e,))], X.dtype)
    return F.linear(phi(F.linear(X, W_mlp1, b_mlp1)), W_mlp2, b_mlp2)  # (..., d_e)
