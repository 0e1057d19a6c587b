"""Inference: sampling from the decoder-only and the encoder-decoder transformer (spec:
Algorithms 14-15, spec/algorithms/14-d-inference.md, 15-ed-inference.md).

Literal mirror: the whole transformer is recomputed on the whole prefix at every step (no
key/value cache). Randomness comes only from the ``numpy.random.Generator`` passed in; each
generated token costs exactly one categorical draw, so a seed reproduces a sample.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from formal_transformers.errors import ConfigError, SequenceLengthError
from formal_transformers.hyperparameters import DTransformerConfig, EDTransformerConfig
from formal_transformers.validation import check_token_id
from reference_numpy.architectures import (
    check_model_parameters,
    check_token_sequence,
    d_transformer,
    ed_transformer,
)

Params = Mapping[str, np.ndarray]


def tempered_distribution(p: np.ndarray, tau: float) -> np.ndarray:
    """q proportional to p^(1/tau), i.e. softmax(log p / tau), computed without overflow.

    p: (N_V,) a distribution; tau > 0. Entries with p = 0 keep q = 0.
    """
    with np.errstate(divide="ignore"):
        log_q = np.log(p) / tau
    log_q = log_q - np.max(log_q)  # the maximum entry becomes exp(0) = 1: no overflow
    q = np.exp(log_q)
    return q / np.sum(q)


def sample_token(p: np.ndarray, tau: float, rng: np.random.Generator) -> int:
    """One token y ~ q, q proportional to p^(1/tau) (Algorithm 14 line 5, Algorithm 15 line 6)."""
    q = tempered_distribution(p, tau)
    return int(rng.choice(q.shape[0], p=q))


def check_temperature(tau: object) -> float:
    """tau: a finite real number > 0 (ConfigError otherwise; greedy is the limit tau -> 0)."""
    if isinstance(tau, bool) or not isinstance(tau, (int, float, np.integer, np.floating)) \
            or not math.isfinite(tau) or tau <= 0:
        raise ConfigError(f"tau (temperature) must be a finite number > 0, got {tau!r}")
    return float(tau)


def check_generator(rng: object) -> np.random.Generator:
    """rng: a numpy.random.Generator, the one source of randomness (ConfigError otherwise)."""
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator (e.g. "
                          f"numpy.random.default_rng(seed)), got {type(rng).__name__}")
    return rng


def _check_count(name: str, value: object, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo \
            or (hi is not None and value > hi):
        bound = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ConfigError(f"{name} must be an integer {bound}, got {value!r}")
    return int(value)


def d_inference(x, params: Params, config: DTransformerConfig, l_gen: int, tau: float,
                rng: np.random.Generator) -> np.ndarray:
    """DInference (spec: Algorithm 14, spec/algorithms/14-d-inference.md).

    x: (l_x,) prompt ids with l_x + l_gen - 1 <= l_max. Returns y: (l_gen,) int64, the
    sampled continuation (without the prompt).
    """
    params = check_model_parameters(config, params)
    x = check_token_sequence("x", x, config)
    l_gen = _check_count("l_gen", l_gen, 1)
    tau, rng = check_temperature(tau), check_generator(rng)
    l_x = len(x)  # Alg 14 L1
    if l_x + l_gen - 1 > config.l_max:  # Alg 14 L1: the last pass reads l_x + l_gen - 1 tokens
        raise SequenceLengthError(
            f"x has length {l_x} and l_gen = {l_gen}: the last step would read "
            f"l_x + l_gen - 1 = {l_x + l_gen - 1} tokens, more than the context size "
            f"l_max = {config.l_max} (spec: Algorithm 14, edge cases)")
    for i in range(l_gen):  # Alg 14 L2
        P = d_transformer(x, params, config)  # Alg 14 L3
        p = P[:, l_x + i - 1]  # Alg 14 L4
        y = sample_token(p, tau, rng)  # Alg 14 L5
        x = np.append(x, y)  # Alg 14 L6
    return x[l_x:l_x + l_gen]  # Alg 14 L7


def ed_inference(z, params: Params, config: EDTransformerConfig, tau: float,
                 rng: np.random.Generator, bos_token: int, eos_token: int, l_max_gen: int
                 ) -> np.ndarray:
    """EDInference (spec: Algorithm 15, spec/algorithms/15-ed-inference.md).

    z: (l_z,) context ids. Returns x_hat: int64, starting with bos_token; it ends with
    eos_token if that was sampled, and holds at most 1 + l_max_gen tokens (the length limit,
    1 <= l_max_gen <= l_max, is our addition to the paper's loop).
    """
    params = check_model_parameters(config, params)
    z = check_token_sequence("z", z, config)
    tau, rng = check_temperature(tau), check_generator(rng)
    check_token_id("bos_token", bos_token, config.N_V)
    check_token_id("eos_token", eos_token, config.N_V)
    l_max_gen = _check_count("l_max_gen", l_max_gen, 1, config.l_max)  # Alg 15 L1
    x_hat = [int(bos_token)]  # Alg 15 L1
    y = None  # Alg 15 L2: nothing sampled yet
    while y != eos_token and len(x_hat) <= l_max_gen:  # Alg 15 L3
        P = ed_transformer(z, x_hat, params, config)  # Alg 15 L4
        p = P[:, len(x_hat) - 1]  # Alg 15 L5
        y = sample_token(p, tau, rng)  # Alg 15 L6
        x_hat.append(y)  # Alg 15 L7
    return np.array(x_hat, dtype=np.int64)  # Alg 15 L8
