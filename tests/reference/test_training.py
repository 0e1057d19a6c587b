"""Training losses, their chained gradients and the training algorithms of reference_numpy
(spec: Algorithms 11-13, spec/algorithms/11-ed-training.md, 12-e-training.md,
13-d-training.md).

The hand-written gradient of each architecture's loss with respect to every canonical
parameter is checked against central finite differences (property gradient.finite_difference,
relative error < 1e-6); the training algorithms must lower the loss of the data they fit.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from formal_transformers.canonical import init_parameters, parameter_shapes
from formal_transformers.errors import ConfigError, SequenceLengthError, TokenRangeError
from formal_transformers.hyperparameters import (
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
)
from reference_numpy.architectures import d_transformer, e_transformer, ed_transformer
from reference_numpy.training import (
    d_loss,
    d_loss_and_grad,
    d_training,
    d_training_step,
    e_loss,
    e_loss_and_grad,
    e_training,
    e_training_step,
    ed_loss,
    ed_loss_and_grad,
    ed_training,
    gradient_step,
)

from .arch_strategies import GRADIENT_SETTINGS, d_cases, e_cases, ed_cases, random_parameters
from .assertions import assert_allclose, assert_gradients_close

FD_RTOL = 1e-6


def central_differences(f, arrays: dict[str, np.ndarray], h: float = 1e-5
                        ) -> dict[str, np.ndarray]:
    """Fourth-order central differences of the scalar ``f()`` in every entry of every array,
    [8 (f(a + h) - f(a - h)) - (f(a + 2h) - f(a - 2h))] / 12h; arrays restored in place.

    The second-order stencil's error h^2 f^(3) / 6 reaches 1e-6 of the gradient where an
    attention softmax or a layer norm is sharply curved; this one's, h^4 f^(5) / 30, stays
    far below."""
    grads = {}
    for name, a in arrays.items():
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            old = a[i]
            f_at = {}
            for k in (-2, -1, 1, 2):
                a[i] = old + k * h
                f_at[k] = f()
            a[i] = old
            g[i] = (8 * (f_at[1] - f_at[-1]) - (f_at[2] - f_at[-2])) / (12 * h)
        grads[name] = g
    return grads


def check_against_finite_differences(loss, grads, params, what: str, spec: str) -> None:
    """Every canonical gradient entry against central differences of the loss.

    Two criteria: every entry within 1e-6 of the largest gradient entry (one scale for all
    arrays), and per tensor ||g - fd|| <= 1e-6 ||fd|| + 1e-8, the absolute term allowing for
    the differences' rounding noise (~1e-11 per entry) on gradients that are zero in theory
    (b_k: the softmax ignores a constant per query) or tiny (a near-zero loss)."""
    assert list(grads) == list(params), "gradient keys must be the canonical names, in order"
    for name, g in grads.items():
        assert g.shape == params[name].shape, f"gradient of {name} has shape {g.shape}"
    work = {k: v.copy() for k, v in params.items()}
    fd = central_differences(lambda: loss(work), work)
    assert_gradients_close(grads, fd, what, spec, rtol=FD_RTOL)
    for name, g in fd.items():
        err, norm = np.linalg.norm(grads[name] - g), np.linalg.norm(g)
        assert err <= FD_RTOL * norm + 1e-8, (
            f"{what}: gradient of {name} has error {err:.2e}, relative {err / norm:.2e} ({spec})")


def assume_away_from_relu_kinks(config, forward, *args) -> None:
    """ReLU is not differentiable at 0: finite differences whose stencil (+-2h, h = 1e-5)
    straddles a kink measure neither one-sided slope. Discard such draws (the hand-written
    gradient takes ReLU'(0) = 0 there; the primitives' tests cover relu_grad itself)."""
    if config.activation != "relu":
        return
    cache: dict = {}
    forward(*args, cache)
    pre = [c["U"] for k, c in cache.items() if k.endswith(".mlp")]
    pre += [cache["final_dense"]["A"]] if "final_dense" in cache else []
    assume(min(np.abs(U).min() for U in pre) > 1e-3)


@GRADIENT_SETTINGS
@given(case=d_cases(), data=st.data())
def test_d_loss_gradient_matches_finite_differences(case, data):
    """gradient.finite_difference for the loss of Algorithm 13 (through Algorithm 10)."""
    x = case.tokens(data.draw(st.integers(2, case.config.l_max)))
    assume_away_from_relu_kinks(case.config, d_transformer, x, case.params, case.config)
    loss, grads = d_loss_and_grad(x, case.params, case.config)
    assert loss == pytest.approx(d_loss(x, case.params, case.config), rel=1e-13)
    check_against_finite_differences(lambda p: d_loss(x, p, case.config), grads, case.params,
                                     "d_loss_and_grad", "spec: Algorithm 13 L5-6")


@GRADIENT_SETTINGS
@given(case=e_cases(), data=st.data())
def test_e_loss_gradient_matches_finite_differences(case, data):
    """gradient.finite_difference for the masked loss of Algorithm 12 (through Algorithm 9)."""
    l_x = data.draw(st.integers(1, case.config.l_max))
    x = case.tokens(l_x)
    masked = case.rng(5).random(l_x) < 0.5
    masked[case.rng(6).integers(l_x)] = True  # at least one target
    mask_token = case.config.N_V - 1
    assume_away_from_relu_kinks(case.config, e_transformer, np.where(masked, mask_token, x),
                                case.params, case.config)
    loss, grads = e_loss_and_grad(x, masked, case.params, case.config, mask_token)
    assert loss == pytest.approx(e_loss(x, masked, case.params, case.config, mask_token),
                                 rel=1e-13)
    check_against_finite_differences(
        lambda p: e_loss(x, masked, p, case.config, mask_token), grads, case.params,
        "e_loss_and_grad", "spec: Algorithm 12 L7-8")


@GRADIENT_SETTINGS
@given(case=ed_cases(), data=st.data())
def test_ed_loss_gradient_matches_finite_differences(case, data):
    """gradient.finite_difference for the loss of Algorithm 11 (through Algorithm 8),
    including the encoder, reached only through the cross-attention."""
    z = case.tokens(data.draw(st.integers(1, case.config.l_max)), offset=2)
    x = case.tokens(data.draw(st.integers(2, case.config.l_max)))
    assume_away_from_relu_kinks(case.config, ed_transformer, z, x, case.params, case.config)
    loss, grads = ed_loss_and_grad(z, x, case.params, case.config)
    assert loss == pytest.approx(ed_loss(z, x, case.params, case.config), rel=1e-13)
    check_against_finite_differences(lambda p: ed_loss(z, x, p, case.config), grads,
                                     case.params, "ed_loss_and_grad", "spec: Algorithm 11 L5-6")


# ---------------------------------------------------------------------------------------------
# The losses are the spec's sums of -log P over positions


SMALL_D = DTransformerConfig(N_V=6, l_max=5, d_e=4, d_mlp=5, L=1, H=2)
SMALL_E = ETransformerConfig(N_V=6, l_max=5, d_e=4, d_mlp=5, L=1, H=2)
SMALL_ED = EDTransformerConfig(N_V=6, l_max=5, d_e=4, d_mlp=5, L_enc=1, L_dec=1, H=2)


def test_losses_are_sums_of_negative_log_probabilities_of_the_targets():
    """loss = -sum_t log P[target_t, t] with P from the forward (Algs 11 L5, 12 L7, 13 L5)."""
    rng = np.random.default_rng(0)
    x, z = np.array([1, 4, 0, 2, 5]), np.array([3, 3, 1])
    p_d, p_e, p_ed = (random_parameters(c, rng) for c in (SMALL_D, SMALL_E, SMALL_ED))
    P = d_transformer(x, p_d, SMALL_D)
    assert d_loss(x, p_d, SMALL_D) == pytest.approx(-sum(np.log(P[x[t + 1], t])
                                                         for t in range(4)), rel=1e-12)
    P = ed_transformer(z, x, p_ed, SMALL_ED)
    assert ed_loss(z, x, p_ed, SMALL_ED) == pytest.approx(
        -sum(np.log(P[x[t + 1], t]) for t in range(4)), rel=1e-12)
    masked = np.array([True, False, False, True, False])
    P = e_transformer(np.where(masked, 5, x), p_e, SMALL_E)
    assert e_loss(x, masked, p_e, SMALL_E, 5) == pytest.approx(
        -np.log(P[x[0], 0]) - np.log(P[x[3], 3]), rel=1e-12)


def test_length_one_sequence_and_unmasked_sequence_have_zero_loss_and_gradient():
    """The empty sums of Algorithm 13 L5 and Algorithm 12 L7: the step leaves theta as is."""
    params = random_parameters(SMALL_D, np.random.default_rng(1))
    loss, theta = d_training_step([3], params, SMALL_D, eta=0.5)
    assert loss == 0.0
    assert all(np.array_equal(theta[k], params[k]) for k in params)
    params = random_parameters(SMALL_E, np.random.default_rng(1))
    loss, theta = e_training_step([1, 2, 3], np.zeros(3, bool), params, SMALL_E, 0.5, 5)
    assert loss == 0.0
    assert all(np.array_equal(theta[k], params[k]) for k in params)


def test_gradient_step_is_theta_minus_eta_grad_and_keeps_the_input():
    """Algorithm 13 L6: theta <- theta - eta * grad, for every canonical entry."""
    params = random_parameters(SMALL_D, np.random.default_rng(2))
    before = {k: v.copy() for k, v in params.items()}
    x = [0, 3, 1, 4]
    _, grads = d_loss_and_grad(x, params, SMALL_D)
    loss, theta = d_training_step(x, params, SMALL_D, eta=0.1)
    assert list(theta) == list(parameter_shapes(SMALL_D))
    for k in params:
        assert_allclose(theta[k], before[k] - 0.1 * grads[k], k, "spec: Algorithm 13 L6")
        assert np.array_equal(params[k], before[k]), f"the step modified its input {k}"
    assert gradient_step(params, grads, 0.1).keys() == theta.keys()


# ---------------------------------------------------------------------------------------------
# Training lowers the loss


def test_d_training_lowers_the_loss_of_a_fixed_batch_substantially():
    """Algorithm 13 on a DTransformer with L=2, H=2, d_e=32: 20 epochs over 4 sequences."""
    config = DTransformerConfig(N_V=8, l_max=8, d_e=32, d_mlp=64, L=2, H=2)
    rng = np.random.default_rng(0)
    params = init_parameters(config, rng, std=0.1)
    data = [rng.integers(0, config.N_V, size=8) for _ in range(4)]
    losses: list[float] = []
    theta = d_training(data, params, config, eta=0.05, N_epochs=20,
                       on_step=lambda i, n, loss: losses.append(loss))
    assert len(losses) == 20 * 4
    before = np.mean([d_loss(x, params, config) for x in data])
    after = np.mean([d_loss(x, theta, config) for x in data])
    assert before > 0.9 * 7 * np.log(8), f"initial loss {before} should be near uniform"
    assert after < 0.25 * before, f"loss fell only from {before:.3f} to {after:.3f}"


def test_ed_training_learns_to_copy_the_context():
    """Algorithm 11 on a copy task (target = bos + context): the loss falls substantially."""
    config = EDTransformerConfig(N_V=6, l_max=5, d_e=16, d_mlp=32, L_enc=1, L_dec=1, H=2)
    rng = np.random.default_rng(1)
    params = init_parameters(config, rng, std=0.1)
    data = [(z, np.concatenate([[0], z])) for z in (rng.integers(1, 6, size=4)
                                                    for _ in range(4))]
    theta = ed_training(data, params, config, eta=0.05, N_epochs=15)
    before = np.mean([ed_loss(z, x, params, config) for z, x in data])
    after = np.mean([ed_loss(z, x, theta, config) for z, x in data])
    assert after < 0.3 * before, f"loss fell only from {before:.3f} to {after:.3f}"


def test_e_training_lowers_the_masked_loss_and_is_reproducible_by_seed():
    """Algorithm 12: the masked loss falls; the same seed gives the same theta_hat."""
    config = ETransformerConfig(N_V=6, l_max=6, d_e=16, d_mlp=32, L=1, H=2)
    rng = np.random.default_rng(2)
    params = init_parameters(config, rng, std=0.1)
    data = [np.array([1, 2, 3, 4, 1, 2]), np.array([2, 3, 4, 1, 2, 3])]
    kw = dict(eta=0.05, N_epochs=60, p_mask=0.5, mask_token=5)
    theta = e_training(data, params, config, rng=np.random.default_rng(7), **kw)
    again = e_training(data, params, config, rng=np.random.default_rng(7), **kw)
    assert all(np.array_equal(theta[k], again[k]) for k in theta), "same seed, different theta"

    def one_masked_loss(q) -> float:  # mean loss of recovering one masked position
        return float(np.mean([e_loss(x, np.arange(6) == t, q, config, 5)
                              for x in data for t in range(6)]))

    before, after = one_masked_loss(params), one_masked_loss(theta)
    assert before > 0.9 * np.log(6), f"initial loss {before} should be near uniform"
    assert after < 0.6 * before, f"masked loss fell only from {before:.3f} to {after:.3f}"


# ---------------------------------------------------------------------------------------------
# Bad input: typed errors naming the argument


@pytest.fixture
def d_params():
    return random_parameters(SMALL_D, np.random.default_rng(3))


@pytest.mark.parametrize("kwargs,match", [
    (dict(eta=0.0), r"eta \(learning rate\) must be a finite number > 0, got 0.0"),
    (dict(eta=-1.0), "eta"),
    (dict(eta=float("nan")), "eta"),
    (dict(N_epochs=0), "N_epochs must be a positive integer, got 0"),
    (dict(N_epochs=1.5), "N_epochs"),
])
def test_bad_training_hyperparameters_raise_config_error(d_params, kwargs, match):
    args = dict(eta=0.1, N_epochs=1) | kwargs
    with pytest.raises(ConfigError, match=match):
        d_training([[0, 1]], d_params, SMALL_D, **args)


def test_bad_data_raises_naming_the_example(d_params):
    with pytest.raises(ConfigError, match="at least one training example"):
        d_training([], d_params, SMALL_D, eta=0.1, N_epochs=1)
    with pytest.raises(TokenRangeError, match=r"data\[1\] must hold token ids"):
        d_training([[0, 1], [0, 6]], d_params, SMALL_D, eta=0.1, N_epochs=1)
    with pytest.raises(SequenceLengthError, match=r"data\[0\] must hold at least one token"):
        d_training([[]], d_params, SMALL_D, eta=0.1, N_epochs=1)
    p_ed = random_parameters(SMALL_ED, np.random.default_rng(3))
    with pytest.raises(ConfigError, match=r"data\[0\] must be a pair \(z, x\)"):
        ed_training([[0, 1, 2]], p_ed, SMALL_ED, eta=0.1, N_epochs=1)
    with pytest.raises(SequenceLengthError, match=r"data\[0\].z has length 6"):
        ed_training([([0] * 6, [0, 1])], p_ed, SMALL_ED, eta=0.1, N_epochs=1)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(p_mask=0.0), ConfigError, r"p_mask must be a probability in the open interval"),
    (dict(p_mask=1.0), ConfigError, "p_mask"),
    (dict(mask_token=6), TokenRangeError, "mask_token must hold token ids"),
    (dict(rng=np.random.RandomState(0)), ConfigError, "rng must be a numpy.random.Generator"),
])
def test_bad_masking_hyperparameters_raise_typed_errors(kwargs, error, match):
    params = random_parameters(SMALL_E, np.random.default_rng(3))
    args = dict(eta=0.1, N_epochs=1, p_mask=0.2, mask_token=5,
                rng=np.random.default_rng(0)) | kwargs
    with pytest.raises(error, match=match):
        e_training([[0, 1]], params, SMALL_E, **args)


def test_bad_masking_decisions_raise_config_error():
    params = random_parameters(SMALL_E, np.random.default_rng(3))
    with pytest.raises(ConfigError, match=r"masked must be a boolean array of shape \(l_x,\)"):
        e_loss_and_grad([0, 1, 2], [1, 0, 1], params, SMALL_E, 5)
    with pytest.raises(ConfigError, match=r"= \(3,\)"):
        e_loss_and_grad([0, 1, 2], np.ones(2, bool), params, SMALL_E, 5)
