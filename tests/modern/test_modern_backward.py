"""The hand-written backward of the modern decoder (spec: Algorithm 66,
spec/algorithms/66-modern-d-transformer-backward.md): entry-by-entry central finite
differences of the float64 reference for a grid of configurations that covers every selection
of Algorithm 65, agreement with torch autograd of torch_impl's modern decoder (the grid and
drawn configs), and Algorithm 13's loss gradient and step on it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.modern_cases import modern_fields
from formal_transformers.canonical import parameter_shapes, random_parameters
from formal_transformers.errors import BackwardCacheError
from formal_transformers.hyperparameters import ModernDTransformerConfig
from formal_transformers.rope import Rope, RopeScaling
from reference_numpy.modern_decoder import modern_d_transformer
from reference_numpy.modern_decoder_backward import modern_d_transformer_backward
from reference_numpy.training import d_loss, d_loss_and_grad, d_training_step
from tests.modern.test_modern_decoder_gradient import CONFIGS, TINY
from tests.reference.assertions import assert_gradients_close, finite_difference_gradients
from torch_impl.modern_decoder import ModernDTransformer

SPEC = "spec/algorithms/66-modern-d-transformer-backward.md"
# Besides the forward-gradient test's configs: no positions, linear RoPE scaling, groups of
# two query heads per kv head, a gated MLP with biases, tying with a plain MLP and post-norms
# with layer norm.
GRID = CONFIGS | {
    "no-positions-gated-bias-gqa": ModernDTransformerConfig(
        **(TINY | {"H": 4, "G": 2, "d_e": 4, "d_head": 2}), positions="none", mlp_bias=True,
        attention_bias="all", qk_norm="per_head"),
    "linear-rope-tied-plain": ModernDTransformerConfig(
        **(TINY | {"L": 2}), rope=Rope(theta=10.0, scaling=RopeScaling("linear", factor=2.0)),
        mlp="plain", activation="gelu_tanh", tie_embeddings=True, embedding_scale=True,
        windows=(None, 1)),
    "layer-norm-post-norms-capped": ModernDTransformerConfig(
        **TINY, norm="layer_norm", post_norms=True, attn_softcap=0.8, final_softcap=1.5,
        qk_norm="projection", rope=Rope(layout="interleaved", theta=10.0)),
}


def _case(config: ModernDTransformerConfig, seed: int = 7, l: int | None = None):
    rng = np.random.default_rng(seed)
    params = random_parameters(config, rng, scale=0.6)
    x = rng.integers(0, config.N_V, l or config.l_max)
    dP = rng.standard_normal((config.N_V, len(x)))
    return params, x, dP


def reference_vjp(x, params, config, dP) -> dict[str, np.ndarray]:
    cache: dict = {}
    modern_d_transformer(x, params, config, cache)
    return modern_d_transformer_backward(dP, cache, config)


def autograd_vjp(x, params, config, dP) -> dict[str, np.ndarray]:
    """Gradients of sum(P * dP) by torch autograd through torch_impl's modern decoder."""
    model = ModernDTransformer.from_canonical(config, params, dtype=torch.float64)
    P = torch.softmax(model(torch.as_tensor(x)[None]), dim=-1)[0]  # (l, N_V)
    (P * torch.as_tensor(dP.T)).sum().backward()
    return {k: v.detach().numpy().copy() for k, v in model.canonical_views(
        lambda p: p.grad if p.grad is not None else torch.zeros_like(p)).items()}


@pytest.mark.parametrize("name", GRID)
def test_backward_equals_central_differences_of_the_forward(name):
    config = GRID[name]
    params, x, dP = _case(config)
    grads = reference_vjp(x, params, config, dP)
    assert list(grads) == list(parameter_shapes(config))
    expected = finite_difference_gradients(
        lambda: float(np.sum(modern_d_transformer(x, params, config) * dP)), params)
    assert_gradients_close(grads, expected, f"Algorithm 66 ({name})", SPEC, rtol=1e-6)


@pytest.mark.parametrize("name", GRID)
def test_backward_equals_torch_autograd(name):
    config = GRID[name]
    params, x, dP = _case(config, seed=3)
    assert_gradients_close(reference_vjp(x, params, config, dP),
                           autograd_vjp(x, params, config, dP), f"Algorithm 66 ({name})", SPEC,
                           rtol=1e-10)


@settings(max_examples=20, deadline=None)
@given(fields=modern_fields(), seed=st.integers(0, 2**16), l=st.integers(1, 7))
def test_backward_equals_torch_autograd_for_drawn_selections(fields, seed, l):
    config = ModernDTransformerConfig(**fields)
    params, x, dP = _case(config, seed, min(l, config.l_max))
    assert_gradients_close(reference_vjp(x, params, config, dP),
                           autograd_vjp(x, params, config, dP), f"Algorithm 66 ({config})",
                           SPEC, rtol=1e-9)


def test_a_kv_head_gets_the_sum_of_its_query_heads_gradients():
    """H = 4 query heads on G = 2 kv heads is the G = H model whose kv heads 2g and 2g + 1
    both carry kv head g's weights; so kv head g's gradient is the sum of those two heads'
    gradients (Algorithm 66 line 15), not either one alone."""
    grouped = ModernDTransformerConfig(**(TINY | {"H": 4, "G": 2, "d_e": 4}),
                                       attention_bias="qkv", qk_norm="per_head")
    params, x, dP = _case(grouped)
    full = dataclasses.replace(grouped, G=4)
    repeated = dict(params)
    for s in ("W_k", "W_v", "b_k", "b_v"):
        repeated[f"layers.0.mha.{s}"] = np.repeat(params[f"layers.0.mha.{s}"], 2, axis=0)
    g, g_full = reference_vjp(x, params, grouped, dP), reference_vjp(x, repeated, full, dP)
    for s in ("W_k", "W_v", "b_k", "b_v"):
        pairs = g_full[f"layers.0.mha.{s}"].reshape((2, 2) + g[f"layers.0.mha.{s}"].shape[1:])
        np.testing.assert_allclose(g[f"layers.0.mha.{s}"], pairs.sum(axis=1), rtol=1e-10,
                                   atol=1e-13)
        assert not np.allclose(g[f"layers.0.mha.{s}"], pairs[:, 0])


def test_tied_embedding_gets_both_uses():
    """With tie_embeddings, dW_e = lookup share + unembedding share; either alone is wrong."""
    tied = GRID["qwen2-bias-tied"]
    params, x, dP = _case(tied)
    g_tied = reference_vjp(x, params, tied, dP)["W_e"]
    untied = dataclasses.replace(tied, tie_embeddings=False)
    g = reference_vjp(x, params | {"W_u": params["W_e"].T.copy()}, untied, dP)
    np.testing.assert_allclose(g_tied, g["W_e"] + g["W_u"].T, rtol=1e-12, atol=1e-14)
    assert np.max(np.abs(g["W_u"])) > 1e-3


def test_backward_without_the_forward_cache_is_a_typed_error():
    config = GRID["llama"]
    params, x, dP = _case(config)
    with pytest.raises(BackwardCacheError, match="cache"):
        modern_d_transformer_backward(dP, {}, config)


def test_forward_with_a_cache_gives_the_same_distributions():
    config = GRID["gemma2"]
    params, x, _ = _case(config)
    np.testing.assert_array_equal(modern_d_transformer(x, params, config, {}),
                                  modern_d_transformer(x, params, config))


@pytest.mark.parametrize("name", ["gemma2", "qk-norm-interleaved-llama3"])
def test_algorithm_13_loss_gradient_on_the_modern_decoder(name):
    """d_loss_and_grad dispatches on the config: Algorithm 13's loss on Algorithm 65, its
    gradient by Algorithm 66, equal to central differences of d_loss; a step descends it."""
    config = GRID[name]
    params, x, _ = _case(config)
    loss, grads = d_loss_and_grad(x, params, config)
    assert loss == pytest.approx(d_loss(x, params, config), rel=1e-13)
    expected = finite_difference_gradients(lambda: d_loss(x, params, config), params)
    assert_gradients_close(grads, expected, f"Algorithm 13 on Algorithm 65 ({name})", SPEC,
                           rtol=1e-6)
    before, theta = d_training_step(x, params, config, 1e-4)
    assert before == pytest.approx(loss, rel=1e-13)
    assert d_loss(x, theta, config) < loss
