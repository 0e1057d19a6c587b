"""Layer normalisation, batched (spec: Algorithm 6, spec/algorithms/06-layer-norm.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from formal_transformers.errors import ConfigError
from torch_impl._checks import check_features, check_parameters


def layer_norm(X: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float
               ) -> torch.Tensor:
    """Normalise every feature vector to mean 0 and variance 1, then scale and shift.

    X: (..., d_e); gamma, beta: (d_e,). The variance is the biased one (divide by d_e) and
    eps is added under the square root, as in the spec (eps = 0 is the paper's layer norm).
    Returns the same shape as X.
    """
    check_features("X", X)
    d_e = X.shape[-1]
    check_parameters([("gamma", gamma, (d_e,)), ("beta", beta, (d_e,))], X.dtype)
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 <= eps < 1:
        raise ConfigError(f"eps must be a float in [0, 1), got {eps!r}")
    return F.layer_norm(X, (d_e,), gamma, beta, float(eps))
