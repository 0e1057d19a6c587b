"""Speculative decoding (spec: Algorithm 61, spec/algorithms/61-speculative-decoding.md).

Literal mirror, generic over the two models: ``target`` and ``draft`` are next-token
distribution functions, a token sequence x (l,) -> P (N_V, l) whose column t is the
distribution of token t + 1 given x[:t + 1] (DTransformer's P, Algorithm 10, or any other
causal model's). Both are recomputed on the whole sequence at every call, as in Algorithm 14.
``d_transformer_model`` makes one from canonical parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from formal_transformers.errors import ConfigError, SequenceLengthError
from formal_transformers.sampling_config import SamplingConfig, check_draft_length
from reference_numpy.architectures import d_transformer
from reference_numpy.inference import check_generator
from reference_numpy.sampling import truncated_distribution

NextToken = Callable[[np.ndarray], np.ndarray]  # x (l,) -> P (N_V, l)


def d_transformer_model(params: Mapping[str, np.ndarray], config) -> NextToken:
    """The next-token distribution function of a DTransformer (Algorithm 10)."""
    return lambda x: d_transformer(x, params, config)


def memoised(fn: NextToken) -> NextToken:
    """The same pure next-token function, evaluated once per distinct sequence (the suite
    calls the reference on the same short sequences thousands of times)."""
    seen: dict[tuple[int, ...], np.ndarray] = {}

    def f(x: np.ndarray) -> np.ndarray:
        key = tuple(int(v) for v in x)
        if key not in seen:
            seen[key] = fn(np.array(key, dtype=np.int64))
        return seen[key]
    return f


def sampling_distribution(p: np.ndarray, sampling: SamplingConfig | None) -> np.ndarray:
    """D_S(p) of Algorithm 61: Algorithm 60's q, or the one-hot argmax when greedy (None)."""
    if sampling is None:
        q = np.zeros_like(p, dtype=np.float64)
        q[int(np.argmax(p))] = 1.0  # the smallest id among tied maxima
        return q
    return truncated_distribution(p, sampling)


def residual(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """max(0, p - q) normalised; p itself if rounding left it no mass (spec: edge cases)."""
    r = np.maximum(0.0, p - q)
    total = float(np.sum(r))
    return r / total if total > 0 else p


def _check(x, l_gen, k, sampling, l_max: int) -> tuple[np.ndarray, int, int]:
    x = np.asarray(x)
    if x.ndim != 1 or x.size < 1 or not np.issubdtype(x.dtype, np.integer):
        raise SequenceLengthError(f"prompt must be a non-empty 1-D integer array, got shape "
                                  f"{x.shape} and dtype {x.dtype}")
    if isinstance(l_gen, bool) or not isinstance(l_gen, (int, np.integer)) or l_gen < 1:
        raise ConfigError(f"l_gen must be an integer >= 1, got {l_gen!r}")
    if sampling is not None and not isinstance(sampling, SamplingConfig):
        raise ConfigError(f"sampling must be a SamplingConfig or None (greedy), got "
                          f"{type(sampling).__name__}")
    if len(x) + l_gen - 1 > l_max:
        raise SequenceLengthError(f"prompt length {len(x)} + l_gen {l_gen} - 1 exceeds the "
                                  f"context size l_max = {l_max} (spec: Algorithm 61 L1)")
    return x.astype(np.int64), int(l_gen), check_draft_length(k)


def speculative_decoding(x, target: NextToken, draft: NextToken, l_gen: int, k: int,
                         sampling: SamplingConfig | None, rng: np.random.Generator,
                         l_max: int) -> tuple[np.ndarray, np.ndarray]:
    """SpeculativeDecoding (spec: Algorithm 61).

    x: (l_x,) prompt ids; l_max: the smaller context size of the two models; sampling: Alg 60
    conventions, or None for greedy. Returns (y (l_gen,) int64, A: the accepted count of each
    verification step, int64).
    """
    x, l_gen, k = _check(x, l_gen, k, sampling, l_max)  # Alg 61 L1
    rng = check_generator(rng)
    l_x, A = len(x), []  # Alg 61 L1
    while len(x) < l_x + l_gen:  # Alg 61 L2
        l = len(x)  # Alg 61 L3
        kappa = min(k, l_x + l_gen - l - 1)  # Alg 61 L3
        proposal, q = [], []
        for j in range(1, kappa + 1):  # Alg 61 L4: the draft proposes
            Q = draft(np.append(x, proposal).astype(np.int64))  # (N_V, l + j - 1)
            q_j = sampling_distribution(Q[:, l + j - 2], sampling)
            q.append(q_j)
            proposal.append(int(rng.choice(len(q_j), p=q_j)))
        P = target(np.append(x, proposal).astype(np.int64))  # Alg 61 L5: one target pass
        p = [sampling_distribution(P[:, l + j - 2], sampling) for j in range(1, kappa + 2)]
        n = 0  # Alg 61 L6
        while n < kappa:  # Alg 61 L6: accept with probability min(1, p/q)
            v = proposal[n]
            if rng.random() < p[n][v] / q[n][v]:
                n += 1
            else:
                break
        if n < kappa:  # Alg 61 L7: the normalised residual at the rejected position
            t = int(rng.choice(len(p[n]), p=residual(p[n], q[n])))
        else:  # Alg 61 L8: the bonus token
            t = int(rng.choice(len(p[kappa]), p=p[kappa]))
        x = np.concatenate([x, np.array(proposal[:n] + [t], dtype=np.int64)])  # Alg 61 L9
        A.append(n)  # Alg 61 L9
    return x[l_x:l_x + l_gen], np.array(A, dtype=np.int64)  # Alg 61 L10
