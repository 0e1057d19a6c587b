"""Forward laws of the reference primitives (spec: Algorithms 1-7, 16; property ids of
spec/properties.md in each docstring). Bad input is in test_primitive_errors.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

from formal_transformers.hyperparameters import ACTIVATIONS
from reference_numpy import REGISTRY
from reference_numpy.activations import activation_function, gelu, gelu_tanh
from reference_numpy.attention import attention, basic_attention, mh_attention
from reference_numpy.embeddings import positional_embedding, token_embedding
from reference_numpy.layer_norm import layer_norm
from reference_numpy.mlp import mlp
from reference_numpy.unembedding import unembedding, unembedding_loss

from .assertions import assert_allclose
from .strategies import (
    REFERENCE_SETTINGS,
    Case,
    attention_cases,
    layer_norm_cases,
    mh_attention_cases,
    mlp_cases,
    positional_embedding_cases,
    token_embedding_cases,
    unembedding_cases,
)

QKV = ("W_q", "b_q", "W_k", "b_k", "W_v", "b_v")


def _qkv(case: Case) -> dict[str, np.ndarray]:
    return {k: case.arrays[k] for k in QKV}


# ---- Algorithms 1-2: embeddings ----------------------------------------------------------

@REFERENCE_SETTINGS
@given(case=token_embedding_cases())
def test_token_embedding_is_W_e_times_the_one_hot_vector(case: Case):
    """structure.embedding_lookup (Algorithm 1): e = W_e e_v."""
    W_e, v = case.arrays["W_e"], case.options["v"]
    one_hot = np.eye(W_e.shape[1])[:, v]
    assert_allclose(token_embedding(v, W_e), W_e @ one_hot, "e", "spec: Algorithm 1 L1")


@REFERENCE_SETTINGS
@given(case=positional_embedding_cases())
def test_positional_embedding_is_W_p_times_the_one_hot_vector(case: Case):
    """structure.embedding_lookup (Algorithm 2): e_p = W_p e_t."""
    W_p, t = case.arrays["W_p"], case.options["t"]
    one_hot = np.eye(W_p.shape[1])[:, t]
    assert_allclose(positional_embedding(t, W_p), W_p @ one_hot, "e_p", "spec: Algorithm 2 L1")


def test_embedding_returns_a_copy_not_a_view_of_the_parameters():
    """Writing into the returned vector must not change W_e (no aliasing of parameters)."""
    W_e = np.arange(6.0).reshape(2, 3)
    e = token_embedding(1, W_e)
    e[:] = -1.0
    assert W_e[0, 1] == 1.0


def test_numpy_integer_ids_are_accepted():
    W = np.arange(6.0).reshape(2, 3)
    assert_allclose(token_embedding(np.int64(2), W), W[:, 2], "e", "spec: Algorithm 1")
    assert_allclose(positional_embedding(np.int32(0), W), W[:, 0], "e_p", "spec: Algorithm 2")


# ---- Algorithms 3-5: attention -----------------------------------------------------------

@REFERENCE_SETTINGS
@given(case=attention_cases(mask_kinds=("random", "causal")))
def test_attention_weights_sum_to_one_per_query(case: Case):
    """softmax.normalised (Algorithm 4): A >= 0, every column sums to one, and A is exactly
    zero where the mask is 0."""
    cache: dict = {}
    attention(**case.kwargs(), cache=cache)
    A, Mask = cache["A"], cache["Mask"]
    assert np.all(A >= 0)
    assert_allclose(A.sum(axis=0), np.ones(A.shape[1]), "column sums of A", "spec: Alg 4 L7")
    assert np.all(A[~Mask] == 0.0), "a masked entry of A is not exactly zero (Alg 4 L6)"


@REFERENCE_SETTINGS
@given(case=attention_cases())
def test_attention_to_constant_values_returns_that_value(case: Case):
    """softmax.normalised, second form: with W_v = 0 every value is b_v, so every output
    column is b_v whatever the weights."""
    a = dict(case.arrays, W_v=np.zeros_like(case.arrays["W_v"]))
    out = attention(**a, Mask=case.options["Mask"])
    b_v = a["b_v"]
    assert_allclose(out, np.repeat(b_v[:, None], out.shape[1], axis=1), "V_tilde",
                    "softmax.normalised", rtol=1e-12, atol=1e-12 * np.abs(b_v).max())


@REFERENCE_SETTINGS
@given(case=attention_cases(mask_kinds=("none",), l_x=1))
def test_basic_attention_equals_attention_with_one_query(case: Case):
    """structure.basic_attention: Algorithm 4 with l_x = 1 and no mask is Algorithm 3."""
    X, Z = case.arrays["X"], case.arrays["Z"]
    expected = attention(X, Z, **_qkv(case))[:, 0]
    assert_allclose(basic_attention(X[:, 0], Z, **_qkv(case)), expected, "v_tilde",
                    "spec: Algorithm 3", rtol=1e-12, atol=1e-12)


@REFERENCE_SETTINGS
@given(case=attention_cases(mask_kinds=("none",), l_x=1), seed=st.integers(0, 2**32 - 1))
def test_basic_attention_is_invariant_to_permuting_the_context(case: Case, seed: int):
    """permutation.cross_invariance (Algorithm 3): the order of the context tokens is ignored."""
    e, E_ctx = case.arrays["X"][:, 0], case.arrays["Z"]
    perm = np.random.default_rng(seed).permutation(E_ctx.shape[1])
    assert_allclose(basic_attention(e, E_ctx[:, perm], **_qkv(case)),
                    basic_attention(e, E_ctx, **_qkv(case)), "v_tilde",
                    "permutation.cross_invariance", rtol=1e-12, atol=1e-12)


@REFERENCE_SETTINGS
@given(case=mh_attention_cases(H=1))
def test_single_head_with_identity_projection_is_attention(case: Case):
    """structure.single_head: Algorithm 5 with H = 1, W_o = I, b_o = 0 is Algorithm 4."""
    a = case.arrays
    d_mid = a["W_v"].shape[1]
    out = mh_attention(**dict(a, W_o=np.eye(d_mid), b_o=np.zeros(d_mid)), **case.options)
    head = {k: a[k][0] for k in QKV}
    expected = attention(a["X"], a["Z"], **head, **case.options)
    assert_allclose(out, expected, "V_tilde", "structure.single_head", rtol=1e-12, atol=1e-12)


@REFERENCE_SETTINGS
@given(case=mh_attention_cases(), h=st.integers(0, 2))
def test_column_block_h_of_W_o_reads_head_h_only(case: Case, h: int):
    """Algorithm 5 L3-4 storage order: with W_o zero outside column block h, the output is
    W_o[:, block h] Attention(X, Z | W^h_qkv) + b_o."""
    a = case.arrays
    H, d_mid = a["W_v"].shape[:2]
    h = h % H
    block = slice(h * d_mid, (h + 1) * d_mid)
    W_o = np.zeros_like(a["W_o"])
    W_o[:, block] = a["W_o"][:, block]
    out = mh_attention(**dict(a, W_o=W_o), **case.options)
    head = attention(a["X"], a["Z"], **{k: a[k][h] for k in QKV}, **case.options)
    assert_allclose(out, a["W_o"][:, block] @ head + a["b_o"][:, None], "V_tilde",
                    "spec: Algorithm 5 L3-4", rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fn,cases", [(attention, attention_cases),
                                      (mh_attention, mh_attention_cases)],
                         ids=["attention", "mhattention"])
@REFERENCE_SETTINGS
@given(data=st.data())
def test_self_attention_is_permutation_equivariant_without_positions(fn, cases, data):
    """permutation.equivariance: f(X Pi, X Pi) = f(X, X) Pi with the all-ones mask."""
    case = data.draw(cases(mask_kinds=("none",), self_attention=True), label="case")
    params = {k: v for k, v in case.arrays.items() if k not in ("X", "Z")}
    X = case.arrays["X"]
    perm = np.random.default_rng(case.seed).permutation(X.shape[1])
    assert_allclose(fn(X[:, perm], X[:, perm], **params), fn(X, X, **params)[:, perm],
                    "V_tilde", "permutation.equivariance", rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fn,cases", [(attention, attention_cases),
                                      (mh_attention, mh_attention_cases)],
                         ids=["attention", "mhattention"])
@REFERENCE_SETTINGS
@given(data=st.data())
def test_cross_attention_is_invariant_to_permuting_the_context(fn, cases, data):
    """permutation.cross_invariance: f(X, Z Pi) = f(X, Z) with the all-ones mask."""
    case = data.draw(cases(mask_kinds=("none",)), label="case")
    a = case.arrays
    perm = np.random.default_rng(case.seed).permutation(a["Z"].shape[1])
    assert_allclose(fn(**dict(a, Z=a["Z"][:, perm])), fn(**a), "V_tilde",
                    "permutation.cross_invariance", rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fn,cases", [(attention, attention_cases),
                                      (mh_attention, mh_attention_cases)],
                         ids=["attention", "mhattention"])
@REFERENCE_SETTINGS
@given(data=st.data())
def test_masked_context_token_has_no_influence_on_the_query(fn, cases, data):
    """mask.no_influence: if Mask[t_z, t_x] = 0, changing column t_z of Z leaves output column
    t_x exactly unchanged."""
    case = data.draw(cases(mask_kinds=("random", "causal")), label="case")
    a, Mask = case.arrays, case.options["Mask"]
    assume((~Mask).any())  # the law speaks about masked entries only
    masked = [(int(i), int(j)) for i, j in zip(*np.nonzero(~Mask), strict=True)]
    t_z, t_x = data.draw(st.sampled_from(masked), label="masked entry (t_z, t_x)")
    Z2 = a["Z"].copy()
    Z2[:, t_z] += np.random.default_rng(case.seed).normal(size=Z2.shape[0]) * 10
    before = fn(**a, Mask=Mask)[:, t_x]
    after = fn(**dict(a, Z=Z2), Mask=Mask)[:, t_x]
    assert np.array_equal(before, after), f"column {t_x} changed when masked token {t_z} did"


@pytest.mark.parametrize("fn,cases", [(attention, attention_cases),
                                      (mh_attention, mh_attention_cases)],
                         ids=["attention", "mhattention"])
@REFERENCE_SETTINGS
@given(data=st.data())
def test_all_ones_mask_equals_no_mask(fn, cases, data):
    """mask.all_ones_equals_none."""
    case = data.draw(cases(mask_kinds=("none",)), label="case")
    a = case.arrays
    ones = np.ones((a["Z"].shape[1], a["X"].shape[1]), dtype=bool)
    assert np.array_equal(fn(**a, Mask=ones), fn(**a))


def test_attention_scores_are_scaled_by_sqrt_d_attn():
    """Algorithm 4 L7: with one-hot keys the weights are softmax(q / sqrt(d_attn)); a known
    two-token example computed by hand."""
    d_attn = 4
    W_q = np.zeros((d_attn, 1))
    W_q[0, 0] = 2.0  # q = (2, 0, 0, 0) for X = [[1]]
    W_k = np.eye(d_attn, 2)  # k_0 = e_0, k_1 = e_1 for Z = I_2
    W_v = np.array([[1.0, 0.0]])
    out = attention(np.ones((1, 1)), np.eye(2), W_q, np.zeros(d_attn), W_k, np.zeros(d_attn),
                    W_v, np.zeros(1))
    alpha_0 = np.exp(1.0) / (np.exp(1.0) + 1.0)  # scores (2, 0) / sqrt(4) = (1, 0)
    assert_allclose(out, np.array([[alpha_0]]), "V_tilde", "spec: Algorithm 4 L7")


def test_attention_does_not_overflow_for_large_scores():
    """Algorithm 4 edge cases: huge scores give a finite one-hot softmax, not NaN."""
    W_q = np.array([[1e4]])
    out = attention(np.ones((1, 1)), np.array([[1.0, -1.0]]), W_q, np.zeros(1), np.eye(1),
                    np.zeros(1), np.array([[1.0]]), np.zeros(1))
    assert_allclose(out, np.array([[1.0]]), "V_tilde", "spec: Algorithm 4, edge cases")


# ---- Algorithm 6: layer norm -------------------------------------------------------------

@REFERENCE_SETTINGS
@given(case=layer_norm_cases(eps_values=(0.0,)))
def test_layer_norm_standardises_with_unit_scale_and_zero_offset(case: Case):
    """layer_norm.standardised: gamma = 1, beta = 0, eps = 0 give mean 0 and variance 1."""
    e = case.arrays["e"]
    e_hat = layer_norm(e, np.ones_like(e), np.zeros_like(e), 0.0)
    assert abs(e_hat.mean()) < 1e-12
    assert abs(e_hat.var() - 1.0) < 1e-12


@REFERENCE_SETTINGS
@given(case=layer_norm_cases(eps_values=(0.0,)), a=st.floats(0.01, 100.0),
       c=st.floats(-100.0, 100.0))
def test_layer_norm_ignores_positive_rescaling_and_shift_of_its_input(case: Case, a, c):
    """layer_norm.affine_invariance (eps = 0): layer_norm(a e + c 1) = layer_norm(e)."""
    e, gamma, beta = (case.arrays[k] for k in ("e", "gamma", "beta"))
    assert_allclose(layer_norm(a * e + c, gamma, beta, 0.0), layer_norm(e, gamma, beta, 0.0),
                    "e_hat", "layer_norm.affine_invariance", rtol=1e-8, atol=1e-8)


@REFERENCE_SETTINGS
@given(case=layer_norm_cases())
def test_layer_norm_equals_torch_layer_norm_with_the_same_eps(case: Case):
    """Algorithm 6 with eps inside the square root and the biased variance is exactly
    torch.nn.functional.layer_norm (stated difference from the paper: eps)."""
    e, gamma, beta = (case.arrays[k] for k in ("e", "gamma", "beta"))
    eps = case.options["eps"]
    expected = F.layer_norm(torch.tensor(e), (e.shape[0],), torch.tensor(gamma),
                            torch.tensor(beta), eps=eps).numpy()
    assert_allclose(layer_norm(e, gamma, beta, eps), expected, "e_hat", "spec: Algorithm 6",
                    rtol=1e-11, atol=1e-11)


def test_layer_norm_eps_regularises_a_constant_input():
    """Algorithm 6 edge cases: with eps > 0 a constant vector maps to beta."""
    beta = np.array([0.5, -1.0, 2.0])
    out = layer_norm(np.full(3, 7.0), np.ones(3), beta, 1e-5)
    assert_allclose(out, beta, "e_hat", "spec: Algorithm 6 L3")


# ---- Algorithm 7: unembedding ------------------------------------------------------------

@REFERENCE_SETTINGS
@given(case=unembedding_cases(with_target=False), scale=st.sampled_from([1.0, 1e3]))
def test_unembedding_is_a_probability_distribution(case: Case, scale: float):
    """structure.distribution: p >= 0 and sums to one, also for huge logits (no overflow)."""
    p = unembedding(case.arrays["e"] * scale, case.arrays["W_u"])
    assert np.all(p >= 0) and np.all(np.isfinite(p))
    assert abs(p.sum() - 1.0) < 1e-12


@REFERENCE_SETTINGS
@given(case=unembedding_cases(with_target=False), seed=st.integers(0, 2**32 - 1))
def test_unembedding_ignores_a_common_shift_of_the_logits(case: Case, seed: int):
    """softmax.shift_invariance: W_u + 1 w^T adds w^T e to every logit; p is unchanged."""
    e, W_u = case.arrays["e"], case.arrays["W_u"]
    w = np.random.default_rng(seed).normal(size=e.shape)
    assert_allclose(unembedding(e, W_u + w[None, :]), unembedding(e, W_u), "p",
                    "softmax.shift_invariance", rtol=1e-10, atol=1e-14)


@REFERENCE_SETTINGS
@given(case=unembedding_cases())
def test_unembedding_loss_is_minus_log_p_of_the_target(case: Case):
    """The forward of Algorithm 23: loss = -log p[y], p = Unembedding(e | W_u)."""
    e, W_u, y = case.arrays["e"], case.arrays["W_u"], case.options["y"]
    assert_allclose(unembedding_loss(e, W_u, y), -np.log(unembedding(e, W_u)[y]), "loss",
                    "spec: Algorithm 23", rtol=1e-12, atol=1e-12)


def test_unembedding_loss_stays_finite_when_p_of_the_target_underflows():
    """-log p[y] is computed as logsumexp(z) - z[y], so p[y] = exp(-2000) gives 2000."""
    W_u = np.array([[1.0], [0.0]])
    assert_allclose(unembedding_loss(np.array([2000.0]), W_u, 1), 2000.0, "loss",
                    "spec: Algorithm 23")


# ---- Algorithm 16: MLP -------------------------------------------------------------------

@REFERENCE_SETTINGS
@given(case=mlp_cases())
def test_mlp_acts_on_each_column_alone(case: Case):
    """structure.position_wise: column t of MLP(X) is MLP of column t alone, and permuting the
    columns of X permutes the output the same way."""
    a, act = case.arrays, case.options["activation"]
    X = a["X"]
    Y = mlp(**a, activation=act)
    for t in range(X.shape[1]):
        assert_allclose(Y[:, [t]], mlp(**dict(a, X=X[:, [t]]), activation=act), f"Y[:, {t}]",
                        "structure.position_wise", rtol=1e-12, atol=1e-12)
    perm = np.random.default_rng(case.seed).permutation(X.shape[1])
    assert_allclose(mlp(**dict(a, X=X[:, perm]), activation=act), Y[:, perm], "Y",
                    "structure.position_wise", rtol=1e-12, atol=1e-12)


@REFERENCE_SETTINGS
@given(case=layer_norm_cases(), l=st.integers(1, 4))
def test_layer_norm_column_by_column_is_position_wise(case: Case, l: int):
    """structure.position_wise for Algorithm 6: normalising a column ignores the others."""
    e, gamma, beta = (case.arrays[k] for k in ("e", "gamma", "beta"))
    X = np.random.default_rng(case.seed).normal(size=(e.shape[0], l))
    X[:, 0] = e
    out = np.stack([layer_norm(X[:, t], gamma, beta, case.options["eps"]) for t in range(l)], 1)
    assert_allclose(out[:, 0], layer_norm(e, gamma, beta, case.options["eps"]), "e_hat",
                    "structure.position_wise")


@pytest.mark.parametrize("activation,torch_fn", [
    ("relu", torch.relu), ("gelu", F.gelu), ("gelu_tanh", lambda u: F.gelu(u, approximate="tanh"))])
def test_activations_equal_torch_definitions(activation, torch_fn):
    """spec/notation.md: ReLU, GELU = x Phi(x) (erf) and GPT-2's tanh approximation."""
    x = np.linspace(-8.0, 8.0, 1601)
    assert_allclose(activation_function(activation)(x), torch_fn(torch.tensor(x)).numpy(),
                    activation, "spec: Algorithm 16, which non-linearity", rtol=1e-14,
                    atol=1e-15)


def test_gelu_tanh_is_a_different_function_within_1e_3_of_gelu():
    """Algorithm 16 prose: GELU_tanh differs from GELU by less than 1e-3, but does differ."""
    x = np.linspace(-10.0, 10.0, 20001)
    gap = np.abs(gelu(x) - gelu_tanh(x)).max()
    assert 1e-5 < gap < 1e-3, gap


def test_every_config_activation_has_a_reference_function():
    """hyperparameters.ACTIVATIONS and reference_numpy.activations name the same functions."""
    for name in ACTIVATIONS:
        assert callable(activation_function(name))


def test_registry_maps_the_primitive_ids_to_their_reference_functions():
    """reference_numpy.REGISTRY (traceability): the ids of Algorithms 1-7, 16 and 17-23."""
    expected = {"token_embedding": token_embedding, "positional_embedding": positional_embedding,
                "basic_attention": basic_attention, "attention": attention,
                "mhattention": mh_attention, "layer_norm": layer_norm,
                "unembedding": unembedding, "mlp": mlp}
    for alg_id, fn in expected.items():
        assert REGISTRY[alg_id] is fn, alg_id
    for alg_id in ("token_embedding", "positional_embedding", "attention", "mhattention",
                   "layer_norm", "mlp", "unembedding"):
        assert callable(REGISTRY[f"{alg_id}_backward"]), alg_id
