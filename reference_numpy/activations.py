"""Elementwise activations of the MLP and their derivatives (spec: Algorithm 16,
spec/algorithms/16-mlp.md; definitions in spec/notation.md).

ReLU is used by the ED transformer (Vaswani et al.), GELU by the E and D transformers (BERT,
Phuong & Hutter), and GELU_tanh, the tanh approximation, by GPT-2 (a stated variant).
The derivatives serve the MLP backward pass (spec: Algorithm 22).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from formal_transformers.errors import ConfigError
from formal_transformers.hyperparameters import ACTIVATIONS, GATED_ACTIVATIONS

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_C = 0.044715
_erf = np.frompyfunc(math.erf, 1, 1)  # NumPy has no erf; math.erf is exact to float64


def _Phi(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF, elementwise."""
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def relu(x: np.ndarray) -> np.ndarray:
    """ReLU(x) = max(0, x)."""
    return np.maximum(x, 0.0)


def relu_grad(x: np.ndarray) -> np.ndarray:
    """ReLU'(x) = [x > 0]; at the kink x = 0 we take 0, as PyTorch does."""
    return (x > 0).astype(np.float64)


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU(x) = x Phi(x), Phi the standard normal CDF (exact, erf-based)."""
    return x * _Phi(x)


def gelu_grad(x: np.ndarray) -> np.ndarray:
    """GELU'(x) = Phi(x) + x phi(x), phi the standard normal density."""
    phi = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return _Phi(x) + x * phi


def _gelu_tanh_inner(x: np.ndarray) -> np.ndarray:
    return _SQRT_2_OVER_PI * (x + _GELU_TANH_C * x**3)


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """GELU_tanh(x) = x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2 (GPT-2's GELU)."""
    return 0.5 * x * (1.0 + np.tanh(_gelu_tanh_inner(x)))


def gelu_tanh_grad(x: np.ndarray) -> np.ndarray:
    """Derivative of GELU_tanh: (1 + tanh k)/2 + x (1 - tanh^2 k) k'(x) / 2."""
    th = np.tanh(_gelu_tanh_inner(x))
    dk = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_TANH_C * x * x)
    return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * dk


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + e^-x), without overflow


def silu(x: np.ndarray) -> np.ndarray:
    """SiLU(x) = x sigma(x), sigma the logistic function (the gate of SwiGLU, Algorithm 28)."""
    return x * _sigmoid(x)


def silu_grad(x: np.ndarray) -> np.ndarray:
    """SiLU'(x) = sigma(x) (1 + x (1 - sigma(x)))."""
    s = _sigmoid(x)
    return s * (1.0 + x * (1.0 - s))


Elementwise = Callable[[np.ndarray], np.ndarray]
_FUNCTIONS: dict[str, tuple[Elementwise, Elementwise]] = {
    "relu": (relu, relu_grad),
    "gelu": (gelu, gelu_grad),
    "gelu_tanh": (gelu_tanh, gelu_tanh_grad),
}


_GATED: dict[str, tuple[Elementwise, Elementwise]] = {
    "silu": (silu, silu_grad), "gelu": _FUNCTIONS["gelu"], "gelu_tanh": _FUNCTIONS["gelu_tanh"]}


def _lookup(activation: str) -> tuple[Elementwise, Elementwise]:
    if activation not in _FUNCTIONS:
        raise ConfigError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    return _FUNCTIONS[activation]


def gated_activation(activation: str) -> tuple[Elementwise, Elementwise]:
    """(phi, phi') of the gated MLP: 'silu' (SwiGLU), 'gelu' or 'gelu_tanh' (GeGLU)."""
    if activation not in _GATED:
        raise ConfigError(f"gated MLP activation must be one of {GATED_ACTIVATIONS}, got "
                          f"{activation!r}")
    return _GATED[activation]


def activation_function(activation: str) -> Elementwise:
    """phi for a config's ``activation`` name ('relu', 'gelu' or 'gelu_tanh')."""
    return _lookup(activation)[0]


def activation_derivative(activation: str) -> Elementwise:
    """phi' for a config's ``activation`` name, used by the MLP backward (Algorithm 22)."""
    return _lookup(activation)[1]
