"""Sampling from the reference transformers (spec: Algorithms 14-15,
spec/algorithms/14-d-inference.md, 15-ed-inference.md): seeds reproduce samples, temperature
behaves as q proportional to p^(1/tau), ED inference stops at eos_token or at the length limit,
and bad input raises typed errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from formal_transformers.errors import ConfigError, SequenceLengthError, TokenRangeError
from formal_transformers.hyperparameters import DTransformerConfig, EDTransformerConfig
from reference_numpy.architectures import d_transformer, ed_transformer
from reference_numpy.inference import (
    d_inference,
    ed_inference,
    sample_token,
    tempered_distribution,
)

from .arch_strategies import random_parameters
from .assertions import assert_allclose

D = DTransformerConfig(N_V=10, l_max=8, d_e=4, d_mlp=6, L=1, H=2)
ED = EDTransformerConfig(N_V=10, l_max=6, d_e=4, d_mlp=6, L_enc=1, L_dec=1, H=2)
BOS, EOS = 0, 1


@pytest.fixture(scope="module")
def d_params():
    return random_parameters(D, np.random.default_rng(0), scale=0.3)


@pytest.fixture(scope="module")
def ed_params():
    return random_parameters(ED, np.random.default_rng(0), scale=0.3)


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_d_inference_is_reproducible_by_seed_and_varies_across_seeds(d_params):
    """sampling.seed_reproducible for Algorithm 14."""
    x = [3, 7]
    y = d_inference(x, d_params, D, l_gen=6, tau=1.0, rng=rng(42))
    assert y.shape == (6,) and y.dtype == np.int64
    assert np.all((y >= 0) & (y < D.N_V))
    assert np.array_equal(y, d_inference(x, d_params, D, l_gen=6, tau=1.0, rng=rng(42)))
    others = {tuple(d_inference(x, d_params, D, l_gen=6, tau=1.0, rng=rng(s))) for s in range(4)}
    assert len(others | {tuple(y)}) > 1, "five seeds gave the same sample"


def test_ed_inference_is_reproducible_by_seed_and_varies_across_seeds(ed_params):
    """sampling.seed_reproducible for Algorithm 15."""
    z = [4, 2, 9]
    args = dict(tau=1.0, bos_token=BOS, eos_token=EOS, l_max_gen=5)
    x_hat = ed_inference(z, ed_params, ED, rng=rng(42), **args)
    assert x_hat[0] == BOS and x_hat.dtype == np.int64
    assert np.array_equal(x_hat, ed_inference(z, ed_params, ED, rng=rng(42), **args))
    others = {tuple(ed_inference(z, ed_params, ED, rng=rng(s), **args)) for s in range(4)}
    assert len(others | {tuple(x_hat)}) > 1, "five seeds gave the same sample"


def test_d_inference_at_tiny_temperature_is_greedy(d_params):
    """sampling.greedy_limit: each token is the argmax of the last column of P."""
    x = np.array([5])
    y = d_inference(x, d_params, D, l_gen=5, tau=1e-6, rng=rng(0))
    for i in range(5):
        P = d_transformer(np.concatenate([x, y[:i]]), d_params, D)
        assert y[i] == np.argmax(P[:, -1]), f"token {i} is not greedy (spec: Algorithm 14 L5)"


def test_ed_inference_at_tiny_temperature_is_greedy(ed_params):
    """sampling.greedy_limit for Algorithm 15 (until eos or the limit)."""
    z = [4, 2, 9]
    x_hat = ed_inference(z, ed_params, ED, 1e-6, rng(0), BOS, EOS, l_max_gen=5)
    for i in range(1, len(x_hat)):
        P = ed_transformer(z, x_hat[:i], ed_params, ED)
        assert x_hat[i] == np.argmax(P[:, -1]), f"token {i} is not greedy (Algorithm 15 L6)"


def test_sampling_frequencies_follow_the_tempered_distribution():
    """sampling.frequencies: draws of sample_token match q proportional to p^(1/tau)."""
    p = np.array([0.5, 0.25, 0.15, 0.1])
    for tau in (0.5, 1.0, 2.0):
        q = p ** (1 / tau) / np.sum(p ** (1 / tau))
        assert_allclose(tempered_distribution(p, tau), q, f"q at tau={tau}",
                        "spec: Algorithm 14 L5")
        g, n = rng(int(tau * 10)), 20000
        counts = np.bincount([sample_token(p, tau, g) for _ in range(n)], minlength=4)
        chi2 = float(np.sum((counts - n * q) ** 2 / (n * q)))
        assert chi2 < 16.27, f"chi-square {chi2:.2f} (3 dof, p = 1e-3) at tau={tau}: {counts}"


def test_tempered_distribution_is_stable_for_extreme_temperatures():
    """No overflow at tiny tau; zero-probability tokens stay impossible."""
    p = np.array([0.0, 0.3, 0.7])
    assert_allclose(tempered_distribution(p, 1e-9), [0.0, 0.0, 1.0], "q at tau=1e-9",
                    "spec: Algorithm 14, edge cases")
    assert tempered_distribution(p, 1e6)[0] == 0.0
    assert_allclose(tempered_distribution(p, 1e6)[1:], [0.5, 0.5], "q at tau=1e6",
                    "spec: Algorithm 14", rtol=1e-5)


def _steered(params, config, row: np.ndarray) -> dict[str, np.ndarray]:
    """Parameters whose every P column is softmax(row): the last layer norm outputs beta = 1."""
    last = f"dec.layers.{config.L_dec - 1}.ln5"
    W_u = np.tile(row[:, None], (1, config.d_e)) / config.d_e
    return {**params, f"{last}.gamma": np.zeros(config.d_e),
            f"{last}.beta": np.ones(config.d_e), "W_u": W_u}


def test_ed_inference_stops_at_eos(ed_params):
    """Algorithm 15 L3: a model that puts almost all mass on eos_token stops after one step."""
    logits = np.zeros(ED.N_V)
    logits[EOS] = 60.0
    x_hat = ed_inference([2, 3], _steered(ed_params, ED, logits), ED, 1.0, rng(0), BOS, EOS, 6)
    assert x_hat.tolist() == [BOS, EOS]


def test_ed_inference_stops_at_the_length_limit_without_eos(ed_params):
    """Algorithm 15 L3: if eos_token is never sampled, x_hat has 1 + l_max_gen tokens."""
    logits = np.zeros(ED.N_V)
    logits[EOS] = -60.0
    steered = _steered(ed_params, ED, logits)
    for l_max_gen in (1, 3, ED.l_max):
        x_hat = ed_inference([2, 3], steered, ED, 1.0, rng(1), BOS, EOS, l_max_gen)
        assert len(x_hat) == 1 + l_max_gen and EOS not in x_hat.tolist()


def test_ed_inference_output_ends_at_first_eos_or_limit(ed_params):
    """Either eos_token is the last token and appears nowhere else, or the limit was hit."""
    for seed in range(6):
        x_hat = ed_inference([5, 6, 7], ed_params, ED, 1.5, rng(seed), BOS, 7, l_max_gen=4)
        body = x_hat[1:].tolist()
        assert (body[-1] == 7 and 7 not in body[:-1]) or (len(body) == 4 and 7 not in body)


def test_bos_equal_to_eos_still_generates(ed_params):
    """y starts as 'nothing sampled' (Algorithm 15 L2), not as bos_token."""
    x_hat = ed_inference([2], ed_params, ED, 1.0, rng(3), 4, 4, l_max_gen=3)
    assert len(x_hat) >= 2


# ---------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("tau", [0.0, -1.0, float("nan"), float("inf"), "1"])
def test_bad_temperature_raises_config_error(d_params, ed_params, tau):
    with pytest.raises(ConfigError, match="tau"):
        d_inference([1], d_params, D, 2, tau, rng(0))
    with pytest.raises(ConfigError, match="tau"):
        ed_inference([1], ed_params, ED, tau, rng(0), BOS, EOS, 3)


def test_d_inference_rejects_prompts_that_cannot_fit(d_params):
    with pytest.raises(SequenceLengthError, match=r"l_x \+ l_gen - 1 = 9 .* l_max = 8"):
        d_inference([1, 2, 3], d_params, D, l_gen=7, tau=1.0, rng=rng(0))
    assert len(d_inference([1, 2, 3], d_params, D, l_gen=6, tau=1.0, rng=rng(0))) == 6
    with pytest.raises(SequenceLengthError, match="x must hold at least one token"):
        d_inference([], d_params, D, l_gen=1, tau=1.0, rng=rng(0))
    with pytest.raises(TokenRangeError, match="x must hold token ids"):
        d_inference([10], d_params, D, l_gen=1, tau=1.0, rng=rng(0))
    with pytest.raises(ConfigError, match="l_gen must be an integer >= 1, got 0"):
        d_inference([1], d_params, D, l_gen=0, tau=1.0, rng=rng(0))
    with pytest.raises(ConfigError, match="rng must be a numpy.random.Generator"):
        d_inference([1], d_params, D, l_gen=1, tau=1.0, rng=0)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(bos_token=10), TokenRangeError, "bos_token"),
    (dict(eos_token=-1), TokenRangeError, "eos_token"),
    (dict(l_max_gen=0), ConfigError, r"l_max_gen must be an integer in \[1, 6\], got 0"),
    (dict(l_max_gen=7), ConfigError, "l_max_gen"),
    (dict(z=[]), SequenceLengthError, "z must hold at least one token"),
    (dict(z=[0] * 7), SequenceLengthError, "z has length 7"),
    (dict(rng=np.random.RandomState(0)), ConfigError, "rng"),
])
def test_ed_inference_bad_input_raises_typed_errors(ed_params, kwargs, error, match):
    args = dict(z=[1, 2], tau=1.0, rng=rng(0), bos_token=BOS, eos_token=EOS, l_max_gen=3)
    args |= kwargs
    with pytest.raises(error, match=match):
        ed_inference(params=ed_params, config=ED, **args)
