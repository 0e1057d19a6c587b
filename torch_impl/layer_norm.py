"""Layer normalisation, batched (spec: Algorithm 6, spec/algorithms/06-layer-norm.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from formal_transformers.errors import NonFiniteError
from formal_transformers.validation import check_layer_norm_eps
from torch_impl._checks import check_features, check_parameters


def layer_norm(X: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float
               ) -> torch.Tensor:
    """Normalise every feature vector to mean 0 and variance 1, then scale and shift.

    X: (..., d_e); gamma, beta: (d_e,). The variance is the biased one (divide by d_e) and
    eps is added under the square root, as in the spec (eps = 0 is the paper's layer norm).
    Returns the same shape as X. Like the reference: eps must be finite and >= 0
    (ConfigError), and eps = 0 on a constant feature vector (variance 0) is a NonFiniteError
    instead of a NaN.
    """
    check_features("X", X)
    d_e = X.shape[-1]
    check_parameters([("gamma", gamma, (d_e,)), ("beta", beta, (d_e,))], X.dtype)
    eps = check_layer_norm_eps(eps)
    if eps == 0.0 and not torch.compiler.is_compiling() \
            and bool((X.var(dim=-1, unbiased=False) == 0).any()):
        raise NonFiniteError("layer_norm of a constant vector e with eps = 0 divides by zero "
                             "(variance v = 0); use layer_norm_eps > 0 (spec: Algorithm 6, "
                             "edge cases)")
    return F.layer_norm(X, (d_e,), gamma, beta, eps)
