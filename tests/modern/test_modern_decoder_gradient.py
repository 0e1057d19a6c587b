"""The loss gradient of the modern decoder (spec: Algorithm 65 under Algorithm 13's loss):
torch_impl's autograd gradient of -sum_t log P[x[t+1], t] equals central finite differences
of reference_numpy's forward, entry by entry, for every selection (relative 1e-6, as the
primitives' backward tests). The hand-written backward (Algorithm 66) is checked against both
in tests/modern/test_modern_backward.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from formal_transformers.canonical import random_parameters
from formal_transformers.hyperparameters import ModernDTransformerConfig
from formal_transformers.rope import Rope, RopeScaling
from reference_numpy.modern_decoder import modern_d_transformer
from tests.reference.assertions import assert_gradients_close, finite_difference_gradients
from torch_impl.modern_decoder import ModernDTransformer
from torch_impl.training import d_losses

TINY = dict(N_V=5, l_max=5, d_e=4, d_mlp=3, L=1, H=2, G=1, d_head=2)
CONFIGS = {
    "llama": ModernDTransformerConfig(**TINY, rope=Rope(theta=10.0)),
    "mistral-window": ModernDTransformerConfig(**(TINY | {"L": 2}), windows=(2, None)),
    "qwen2-bias-tied": ModernDTransformerConfig(**TINY, attention_bias="qkv",
                                                tie_embeddings=True),
    "gemma2": ModernDTransformerConfig(
        **TINY, norm_offset=True, post_norms=True, embedding_scale=True,
        activation="gelu_tanh", attn_softcap=1.5, final_softcap=2.0, attn_scale=0.6,
        windows=(2,)),
    "qk-norm-interleaved-llama3": ModernDTransformerConfig(
        **(TINY | {"d_head": 4, "G": 2}), qk_norm="projection",
        rope=Rope(layout="interleaved", theta=10.0, fraction=0.5,
                  scaling=RopeScaling("llama3", factor=4.0, original_max_position=4))),
    "alibi-layer-norm-plain": ModernDTransformerConfig(
        **TINY, positions="alibi", norm="layer_norm", mlp="plain", activation="gelu",
        attention_bias="all", mlp_bias=True, qk_norm="per_head"),
    "learned-positions": ModernDTransformerConfig(**TINY, positions="learned", mlp="plain",
                                                  activation="relu"),
}


def reference_loss(x: np.ndarray, params, config) -> float:
    P = modern_d_transformer(x, params, config)
    return float(-sum(np.log(P[x[t + 1], t]) for t in range(len(x) - 1)))


@pytest.mark.parametrize("name", CONFIGS)
def test_autograd_gradient_of_the_loss_equals_finite_differences_of_the_reference(name):
    config = CONFIGS[name]
    rng = np.random.default_rng(7)
    params = random_parameters(config, rng, scale=0.6)
    x = rng.integers(0, config.N_V, config.l_max)
    model = ModernDTransformer.from_canonical(config, params, dtype=torch.float64)
    loss = d_losses(model, (torch.as_tensor(x)[None],)).sum()
    loss.backward()
    grads = {k: v.detach().numpy() for k, v in model.canonical_views(
        lambda p: p.grad if p.grad is not None else torch.zeros_like(p)).items()}
    assert abs(loss.item() - reference_loss(x, params, config)) <= 1e-10 * abs(loss.item())
    expected = finite_difference_gradients(lambda: reference_loss(x, params, config), params)
    assert_gradients_close(grads, expected, f"modern decoder ({name})",
                           "spec/algorithms/65-modern-d-transformer.md", rtol=1e-6)
