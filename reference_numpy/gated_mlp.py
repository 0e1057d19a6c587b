"""Gated MLP (SwiGLU / GeGLU), forward (spec: Algorithm 28, spec/algorithms/28-gated-mlp.md).

Signature and layout (stable; the modern decoder builds on it)::

    gated_mlp(X, W_gate, W_up, W_down, activation, b_gate=None, b_up=None, b_down=None,
              cache=None) -> Y
        X: (d_e, l) float64 columns; W_gate, W_up: (d_mlp, d_e); W_down: (d_e, d_mlp);
        biases (d_mlp,), (d_mlp,), (d_e,) or None (zero); activation: 'silu' (SwiGLU),
        'gelu' (GeGLU, exact erf GELU) or 'gelu_tanh' (GeGLU, tanh approximation).
        Y: (d_e, l).

Literal float64 mirror of the pseudocode. The backward pass (Algorithm 31) is
gated_mlp_backward in reference_numpy/gated_mlp_backward.py.
"""

from __future__ import annotations

import numpy as np

from formal_transformers.validation import check_array
from reference_numpy.activations import gated_activation


def _bias(name: str, b: np.ndarray | None, n: int) -> np.ndarray:
    if b is None:
        return np.zeros(n)
    check_array(name, b, (n,))
    return b


def gated_mlp(X: np.ndarray, W_gate: np.ndarray, W_up: np.ndarray, W_down: np.ndarray,
              activation: str, b_gate: np.ndarray | None = None, b_up: np.ndarray | None = None,
              b_down: np.ndarray | None = None, cache: dict | None = None) -> np.ndarray:
    """Gated MLP (spec: Algorithm 28). Shapes in the module docstring. If ``cache`` is a
    dict, the backward pass's needs (X, G, U, weights, activation, which biases) are stored."""
    phi, _ = gated_activation(activation)
    check_array("X", X, ("d_e", "l"))
    d_e = X.shape[0]
    check_array("W_gate", W_gate, ("d_mlp", d_e))
    d_mlp = W_gate.shape[0]
    check_array("W_up", W_up, (d_mlp, d_e))
    check_array("W_down", W_down, (d_e, d_mlp))
    biases = {"b_gate": b_gate, "b_up": b_up, "b_down": b_down}
    bg, bu = _bias("b_gate", b_gate, d_mlp), _bias("b_up", b_up, d_mlp)
    bd = _bias("b_down", b_down, d_e)

    G = W_gate @ X + bg[:, None]  # Alg 28 L1, (d_mlp, l)
    U = W_up @ X + bu[:, None]  # Alg 28 L2, (d_mlp, l)
    M = phi(G) * U  # Alg 28 L3
    Y = W_down @ M + bd[:, None]  # Alg 28 L4, (d_e, l)
    if cache is not None:
        cache.update(X=X, G=G, U=U, M=M, W_gate=W_gate, W_up=W_up, W_down=W_down,
                     activation=activation, biases=[k for k, v in biases.items() if v is not None])
    return Y
