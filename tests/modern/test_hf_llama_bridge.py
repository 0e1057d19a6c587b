"""Bridges of the Llama family (torch_impl/interop/hf_llama.py; spec: Algorithm 65): logits of
our torch model on converted weights equal transformers' to <= 1e-4 relative in float32, round
trips are exact, refused variants are named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from formal_transformers.canonical import random_parameters
from formal_transformers.errors import UnsupportedVariantError
from formal_transformers.hyperparameters import ModernDTransformerConfig
from formal_transformers.rope import Rope, RopeScaling
from torch_impl.interop.hf_llama import (
    build_hf_model,
    canonical_to_hf,
    config_from_hf,
    hf_config,
    hf_to_canonical,
)
from torch_impl.modern_decoder import ModernDTransformer

SMALL = dict(N_V=13, l_max=12, d_e=16, d_mlp=24, L=2, H=4, G=2)
FAMILY_CONFIGS = {
    "LlamaForCausalLM": ModernDTransformerConfig(**SMALL, rope=Rope(theta=500.0)),
    "LlamaForCausalLM/llama3": ModernDTransformerConfig(
        **SMALL, rope=Rope(theta=50.0, scaling=RopeScaling(
            "llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
            original_max_position=6)), attention_bias="all", mlp_bias=True),
    "MistralForCausalLM": ModernDTransformerConfig(**SMALL, windows=(3, 3)),
    "Qwen2ForCausalLM": ModernDTransformerConfig(**SMALL, attention_bias="qkv",
                                                 tie_embeddings=True),
    "Gemma2ForCausalLM": ModernDTransformerConfig(
        **(SMALL | {"L": 3, "d_head": 8}), norm_offset=True, post_norms=True,
        embedding_scale=True, activation="gelu_tanh", attn_softcap=3.0, final_softcap=5.0,
        attn_scale=6.0 ** -0.5, windows=(4, None, 4), tie_embeddings=True),
}


def _family(key: str) -> str:
    return key.split("/")[0]


@pytest.mark.parametrize("key", FAMILY_CONFIGS)
def test_logits_equal_transformers_from_converted_weights(key):
    config, family = FAMILY_CONFIGS[key], _family(key)
    params = random_parameters(config, np.random.default_rng(0), scale=0.5)
    ours = ModernDTransformer.from_canonical(config, params, dtype=torch.float32)
    theirs = build_hf_model(config, params, family)
    x = torch.from_numpy(np.random.default_rng(1).integers(0, config.N_V, (2, config.l_max)))
    with torch.no_grad():
        a, b = ours(x), theirs(input_ids=x).logits
    rel = ((a - b).abs().max() / b.abs().max()).item()
    assert torch.isfinite(a).all() and b.abs().max() > 0.1
    assert rel <= 1e-4, f"{key}: max relative logit difference {rel:.2e}"


@pytest.mark.parametrize("key", FAMILY_CONFIGS)
def test_round_trips_are_exact(key):
    config, family = FAMILY_CONFIGS[key], _family(key)
    params = random_parameters(config, np.random.default_rng(2))
    cfg, sd = canonical_to_hf(config, params, family)
    assert config_from_hf(cfg) == config
    back_config, back = hf_to_canonical(sd, cfg)
    assert back_config == config and back.keys() == params.keys()
    for name, value in params.items():
        assert np.array_equal(back[name], value), name
    model = build_hf_model(config, params, family, dtype=torch.float64)
    _, again = hf_to_canonical(model.state_dict(), model.config)
    assert all(np.array_equal(again[k], v) for k, v in params.items())


@pytest.mark.parametrize(("family", "change", "field"), [
    ("LlamaForCausalLM", {"windows": (3, None)}, "windows"),
    ("LlamaForCausalLM", {"rope": Rope(layout="interleaved")}, "rope"),
    ("MistralForCausalLM", {"windows": (3, 4)}, "windows"),
    ("Qwen2ForCausalLM", {"attention_bias": "all"}, "attention_bias"),
    ("Gemma2ForCausalLM", {"norm": "layer_norm"}, "norm"),
])
def test_a_selection_the_family_cannot_express_is_refused_by_name(family, change, field):
    config = ModernDTransformerConfig(**(SMALL | change))
    with pytest.raises(UnsupportedVariantError, match=field):
        hf_config(config, family)


def test_unsupported_hf_variants_are_refused_by_name():
    from transformers import Gemma3TextConfig, LlamaConfig

    base = dict(vocab_size=11, hidden_size=16, intermediate_size=8, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1)
    yarn = LlamaConfig(**base, rope_parameters={"rope_type": "yarn", "factor": 2.0,
                                                "rope_theta": 1e4})
    with pytest.raises(UnsupportedVariantError, match="rope_type"):
        config_from_hf(yarn, "LlamaForCausalLM")
    with pytest.raises(UnsupportedVariantError, match="hidden_act"):
        config_from_hf(LlamaConfig(**base, hidden_act="tanh"), "LlamaForCausalLM")
    with pytest.raises(UnsupportedVariantError, match="pretraining_tp"):
        config_from_hf(LlamaConfig(**base, pretraining_tp=2), "LlamaForCausalLM")
    with pytest.raises(UnsupportedVariantError, match="Gemma3ForCausalLM"):
        config_from_hf(Gemma3TextConfig(**base), "Gemma3ForCausalLM")
