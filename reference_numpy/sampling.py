"""Sampling with temperature and truncation: top-k, top-p, min-p (spec: Algorithm 60,
spec/algorithms/60-sampling.md).

Literal mirror: every rule is a set comprehension over the vocabulary, written as the spec
writes it (a token's own value against a threshold, never its index in a sort), so ties at a
boundary are kept together. One categorical draw from the explicit generator per token.
"""

from __future__ import annotations

import numpy as np

from formal_transformers.errors import ConfigError
from formal_transformers.sampling_config import SamplingConfig
from formal_transformers.validation import check_array
from reference_numpy.inference import check_generator, tempered_distribution


def check_distribution(p: object) -> np.ndarray:
    """p: (N_V,) finite, non-negative, summing to 1 within 1e-6 (ConfigError otherwise)."""
    check_array("p", p, ("N_V",))
    p = np.asarray(p, dtype=np.float64)
    if np.any(p < 0) or abs(float(np.sum(p)) - 1.0) > 1e-6:
        raise ConfigError(f"p must be a probability distribution (entries >= 0, sum 1), got "
                          f"min {float(np.min(p)):.3g} and sum {float(np.sum(p)):.9g}")
    return p


def _renormalise(r: np.ndarray, K: set[int]) -> np.ndarray:
    total = sum(r[u] for u in K)
    return np.array([r[v] / total if v in K else 0.0 for v in range(len(r))])


def truncated_distribution(p, config: SamplingConfig) -> np.ndarray:
    """The distribution q that Algorithm 60 samples from (its lines 1-7).

    p: (N_V,) a distribution. Returns q: (N_V,), zero outside the kept set K.
    """
    p = check_distribution(p)
    if not isinstance(config, SamplingConfig):
        raise ConfigError(f"config must be a SamplingConfig, got {type(config).__name__}")
    tau, N_V, V = config.tau, len(p), range(len(p))
    k, pi, p_min = config.k_for(len(p)), config.top_p, config.min_p
    r = tempered_distribution(p, tau) if config.order == "temperature_first" else p  # Alg 60 L1
    # Alg 60 L2: top-k, ties with the k-th largest kept
    K = {v for v in V if sum(1 for u in V if r[u] > r[v]) < k} if k < N_V else set(V)
    r = _renormalise(r, K)  # Alg 60 L3
    if pi < 1:  # Alg 60 L4: top-p, the crossing token kept
        K = {v for v in K if sum(r[u] for u in K if r[u] > r[v]) < pi}
    r = _renormalise(r, K)  # Alg 60 L5
    K = {v for v in K if r[v] >= p_min * max(r)}  # Alg 60 L6: min-p
    if config.order == "truncation_first":  # Alg 60 L7
        return _renormalise(tempered_distribution(r, tau), K)
    return _renormalise(r, K)


def sample(p, config: SamplingConfig, rng: np.random.Generator) -> int:
    """Sample (spec: Algorithm 60): one token y ~ q, q = truncated_distribution(p, config)."""
    q = truncated_distribution(p, config)
    y = int(check_generator(rng).choice(len(q), p=q))  # Alg 60 L8
    return y  # Alg 60 L9
