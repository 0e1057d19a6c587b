"""Layer normalisation, forward (spec: Algorithm 6, spec/algorithms/06-layer-norm.md).

Literal float64 mirror of the pseudocode on one column e; the architectures apply it column by
column. The backward pass (Algorithm 21) is in reference_numpy/backward.py.
"""

from __future__ import annotations

import numpy as np

from formal_transformers.errors import ConfigError, NonFiniteError
from formal_transformers.validation import check_array, check_layer_norm_eps

__all__ = ["check_layer_norm_eps", "layer_norm"]


def layer_norm(e: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float,
               cache: dict | None = None) -> np.ndarray:
    """Layer normalisation of one column (spec: Algorithm 6, spec/algorithms/06-layer-norm.md).

    e, gamma, beta: (d_e,); eps >= 0 (0 is Phuong & Hutter's algorithm). Returns e_hat: (d_e,).
    If ``cache`` is a dict, the backward pass's needs (e, m, v, gamma, eps) are stored in it.
    """
    check_array("e", e, ("d_e",))
    d_e = e.shape[0]
    check_array("gamma", gamma, (d_e,))
    check_array("beta", beta, (d_e,))
    eps = check_layer_norm_eps(eps)
    if d_e < 1:
        raise ConfigError("layer norm needs d_e >= 1 entries, got an empty vector e")

    m = sum(e[i] for i in range(d_e)) / d_e  # Alg 6 L1
    v = sum((e[i] - m) ** 2 for i in range(d_e)) / d_e  # Alg 6 L2
    if v + eps == 0.0:
        raise NonFiniteError("layer_norm of a constant vector e with eps = 0 divides by zero "
                             "(variance v = 0); use layer_norm_eps > 0 (spec: Algorithm 6, "
                             "edge cases)")
    e_hat = (e - m) / np.sqrt(v + eps) * gamma + beta  # Alg 6 L3
    if cache is not None:
        cache.update(e=e, m=m, v=v, gamma=gamma, eps=eps)
    return e_hat
