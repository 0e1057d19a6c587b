"""Gated MLP (SwiGLU / GeGLU), forward (spec: Algorithm 28, spec/algorithms/28-gated-mlp.md).

Signature and layout (stable; the modern decoder builds on it)::

    gated_mlp(X, W_gate, W_up, W_down, activation, b_gate=None, b_up=None, b_down=None,
              cache=None) -> Y
        X: (d_e, l) float64 columns; W_gate, W_up: (d_mlp, d_e); W_down: (d_e, d_mlp);
        biases (d_mlp,), (d_mlp,), (d_e,) or None (zero); activation: 'silu' (SwiGLU),
        'gelu' (GeGLU, exact erf GELU) or 'gelu_tanh' (GeGLU, tanh approximation).
        Y: (d_e, l).
    gated_mlp_backward(dY, cache) -> {"X", "W_gate", "W_up", "W_down"} and the gradients of
        the biases the forward was given, Algorithm 31.

Literal float64 mirror of the pseudocode; the hand-written backward follows the forward.
"""

from __future__ import annotations

import numpy as np

from formal_transformers.validation import check_array
from reference_numpy.activations import gated_activation
from reference_numpy.backward import need


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
        cache.update(X=X, G=G, U=U, W_gate=W_gate, W_up=W_up, W_down=W_down,
                     activation=activation, biases=[k for k, v in biases.items() if v is not None])
    return Y


def gated_mlp_backward(d_out: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Gradient of Algorithm 28 (spec: Algorithm 31, 31-gated-mlp-backward.md).

    d_out: dY (d_e, l). Returns the gradients of X, W_gate, W_up, W_down and of each bias
    the forward had (b_gate, b_up, b_down).
    """
    need(cache, "gated_mlp", "X", "G", "U", "W_gate", "W_up", "W_down", "activation", "biases")
    X, G, U = cache["X"], cache["G"], cache["U"]
    W_gate, W_up, W_down = cache["W_gate"], cache["W_up"], cache["W_down"]
    phi, phi_prime = gated_activation(cache["activation"])
    check_array("dY", d_out, X.shape)

    M = phi(G) * U  # Alg 31 L1
    dW_down, db_down = d_out @ M.T, d_out.sum(axis=1)  # Alg 31 L2
    dM = W_down.T @ d_out  # Alg 31 L3, (d_mlp, l)
    dG = dM * U * phi_prime(G)  # Alg 31 L4
    dU = dM * phi(G)  # Alg 31 L5
    dW_gate, db_gate = dG @ X.T, dG.sum(axis=1)  # Alg 31 L6
    dW_up, db_up = dU @ X.T, dU.sum(axis=1)  # Alg 31 L7
    dX = W_gate.T @ dG + W_up.T @ dU  # Alg 31 L8
    grads = {"X": dX, "W_gate": dW_gate, "W_up": dW_up, "W_down": dW_down,  # Alg 31 L9
             "b_gate": db_gate, "b_up": db_up, "b_down": db_down}
    return {k: v for k, v in grads.items() if not k.startswith("b_") or k in cache["biases"]}
