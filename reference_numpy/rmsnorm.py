"""RMSNorm, forward (spec: Algorithm 27, spec/algorithms/27-rmsnorm.md).

Signature and layout (stable; the modern decoder builds on it)::

    rmsnorm(e, gamma, eps, offset=False, cache=None) -> e_hat
        e, gamma: (d_e,) float64, ONE column (the architectures apply it column by column);
        eps >= 0 inside the square root; offset: the gain is 1 + gamma (Gemma) instead of gamma.
        e_hat: (d_e,).
    rmsnorm_backward(de_hat, cache) -> {"e": de, "gamma": dgamma}, Algorithm 30.

Literal float64 mirror of the pseudocode; the hand-written backward follows the forward.
"""

from __future__ import annotations

import numpy as np

from formal_transformers.errors import ConfigError, NonFiniteError
from formal_transformers.validation import check_array
from reference_numpy.backward import need
from reference_numpy.layer_norm import check_layer_norm_eps


def check_offset(offset: object) -> bool:
    """The offset hyperparameter: a bool (ConfigError otherwise)."""
    if not isinstance(offset, (bool, np.bool_)):
        raise ConfigError(f"offset must be a bool (gain 1 + gamma if True), got {offset!r}")
    return bool(offset)


def rmsnorm(e: np.ndarray, gamma: np.ndarray, eps: float, offset: bool = False,
            cache: dict | None = None) -> np.ndarray:
    """RMSNorm of one column (spec: Algorithm 27, spec/algorithms/27-rmsnorm.md).

    e, gamma: (d_e,); eps >= 0; offset: bool. Returns e_hat: (d_e,). If ``cache`` is a dict,
    the backward pass's needs (e, r, g) are stored in it.
    """
    check_array("e", e, ("d_e",))
    d_e = e.shape[0]
    check_array("gamma", gamma, (d_e,))
    eps, o = check_layer_norm_eps(eps), float(check_offset(offset))
    if d_e < 1:
        raise ConfigError("RMSNorm needs d_e >= 1 entries, got an empty vector e")

    r = np.sqrt(sum(e[i] ** 2 for i in range(d_e)) / d_e + eps)  # Alg 27 L1
    if r == 0.0:
        raise NonFiniteError("rmsnorm of the zero vector with eps = 0 divides by zero (r = 0); "
                             "use eps > 0 (spec: Algorithm 27, edge cases)")
    g = gamma + o * np.ones(d_e)  # Alg 27 L2
    e_hat = (e / r) * g  # Alg 27 L3
    if cache is not None:
        cache.update(e=e, r=r, g=g)
    return e_hat


def rmsnorm_backward(d_out: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Gradient of Algorithm 27 (spec: Algorithm 30, 30-rmsnorm-backward.md).

    d_out: de_hat (d_e,). Returns {"e": de, "gamma": dgamma}, each (d_e,).
    """
    need(cache, "rmsnorm", "e", "r", "g")
    e, r, g = cache["e"], cache["r"], cache["g"]
    d_e = e.shape[0]
    check_array("de_hat", d_out, (d_e,))

    x_hat = e / r  # Alg 30 L1
    dgamma = d_out * x_hat  # Alg 30 L2
    dx_hat = d_out * g  # Alg 30 L3
    de = (dx_hat - x_hat * (x_hat @ dx_hat) / d_e) / r  # Alg 30 L4
    return {"e": de, "gamma": dgamma}  # Alg 30 L5
