"""Position-wise MLP, forward (spec: Algorithm 16, spec/algorithms/16-mlp.md).

Literal float64 mirror of the pseudocode on a whole sequence X (d_e, l); the same weights act on
every column. The backward pass (Algorithm 22) is in reference_numpy/backward.py.
"""

from __future__ import annotations

import numpy as np

from formal_transformers.validation import check_array
from reference_numpy.activations import activation_function


def mlp(X: np.ndarray, W_mlp1: np.ndarray, b_mlp1: np.ndarray, W_mlp2: np.ndarray,
        b_mlp2: np.ndarray, activation: str, cache: dict | None = None) -> np.ndarray:
    """Position-wise MLP (spec: Algorithm 16, spec/algorithms/16-mlp.md).

    X: (d_e, l); W_mlp1: (d_mlp, d_e); b_mlp1: (d_mlp,); W_mlp2: (d_e, d_mlp); b_mlp2: (d_e,);
    activation: 'relu', 'gelu' or 'gelu_tanh'. Returns Y: (d_e, l). If ``cache`` is a dict,
    the backward pass's needs (X, U, G, W_mlp1, W_mlp2, activation) are stored in it.
    """
    phi = activation_function(activation)
    check_array("X", X, ("d_e", "l"))
    d_e = X.shape[0]
    check_array("W_mlp1", W_mlp1, ("d_mlp", d_e))
    d_mlp = W_mlp1.shape[0]
    check_array("b_mlp1", b_mlp1, (d_mlp,))
    check_array("W_mlp2", W_mlp2, (d_e, d_mlp))
    check_array("b_mlp2", b_mlp2, (d_e,))

    U = W_mlp1 @ X + b_mlp1[:, None]  # Alg 16 L1, (d_mlp, l)
    G = phi(U)  # Alg 16 L2
    Y = W_mlp2 @ G + b_mlp2[:, None]  # Alg 16 L3, (d_e, l)
    if cache is not None:
        cache.update(X=X, U=U, G=G, W_mlp1=W_mlp1, W_mlp2=W_mlp2, activation=activation)
    return Y
