"""Parameter counts (spec/memory.md section 2, (M1)-(M11); property memory.parameter_count).

The formulas of formal_transformers.memory.counts are written independently of the canonical
shapes; here they must agree exactly, per component and in total."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formal_transformers.canonical import (
    layer_norm_shapes,
    mha_shapes,
    mlp_shapes,
    parameter_count,
    parameter_shapes,
)
from formal_transformers.hyperparameters import (
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
)
from formal_transformers.memory import counts
from formal_transformers.memory.properties import GPT2_TIED, parameter_count_law
from formal_transformers.presets import PRESETS


def _size(shapes: dict) -> int:
    return sum(math.prod(s) for s in shapes.values())


@st.composite
def configs(draw):
    H = draw(st.integers(1, 4))
    common = dict(N_V=draw(st.integers(1, 40)), l_max=draw(st.integers(1, 40)),
                  d_e=H * draw(st.integers(1, 6)), d_mlp=draw(st.integers(1, 30)), H=H)
    kind = draw(st.sampled_from(["decoder", "encoder", "encoder-decoder"]))
    if kind == "decoder":
        return DTransformerConfig(L=draw(st.integers(1, 3)), **common)
    if kind == "encoder":
        return ETransformerConfig(L=draw(st.integers(1, 3)),
                                  embedding_layer_norm=draw(st.booleans()), **common)
    return EDTransformerConfig(L_enc=draw(st.integers(1, 3)), L_dec=draw(st.integers(1, 3)),
                               **common)


@settings(max_examples=60, deadline=None)
@given(configs())
def test_architecture_counts_equal_the_canonical_parameter_count(config):
    """(M8)-(M10) total = sum of the canonical shapes, for every architecture."""
    assert counts.parameter_counts(config)["total"] == parameter_count(config)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5), st.integers(1, 9),
       st.integers(1, 9), st.integers(1, 9))
def test_primitive_counts_equal_their_canonical_shapes(H, d_attn, d_mid, d_x, d_z, d_out):
    """(M4) multi-head attention, (M5) layer norm, (M7) MLP against canonical.*_shapes."""
    assert counts.mh_attention_parameters(d_x, d_z, d_attn, d_mid, d_out, H) == _size(
        mha_shapes("m", H, d_attn, d_mid, d_x, d_z, d_out))
    assert counts.layer_norm_parameters(d_x) == _size(layer_norm_shapes("ln", d_x))
    assert counts.mlp_parameters(d_x, d_z) == _size(mlp_shapes("mlp", d_x, d_z))


def test_single_head_attention_count_is_the_one_head_case_of_multi_head():
    """(M3) is (M4) with H = 1 minus W_o, b_o."""
    d_x, d_z, d_attn, d_out = 5, 7, 3, 4
    assert counts.attention_parameters(d_x, d_z, d_attn, d_out) == (
        counts.mh_attention_parameters(d_x, d_z, d_attn, d_out, d_out, 1) - d_out * (d_out + 1))


def test_embedding_and_unembedding_counts_are_their_matrices():
    """(M1), (M2), (M6): W_e d_e x N_V, W_p d_e x l_max, W_u N_V x d_e."""
    c = DTransformerConfig(N_V=11, l_max=7, d_e=6, d_mlp=5, L=1, H=2)
    shapes = parameter_shapes(c)
    assert counts.token_embedding_parameters(6, 11) == math.prod(shapes["W_e"])
    assert counts.positional_embedding_parameters(6, 7) == math.prod(shapes["W_p"])
    assert counts.unembedding_parameters(6, 11) == math.prod(shapes["W_u"])


@pytest.mark.parametrize("name", list(GPT2_TIED))
def test_gpt2_tied_count_equals_the_published_count(name):
    """(M11): GPT-2 ties W_u = W_e^T; its published sizes are 124M, 355M, 774M, 1.5B."""
    assert counts.tied_parameter_count(PRESETS[name]) == GPT2_TIED[name]
    assert counts.parameter_counts(PRESETS[name])["total"] == GPT2_TIED[name] + (
        PRESETS[name].N_V * PRESETS[name].d_e)


def test_bert_base_tied_count_equals_bert_model_without_pooler_difference():
    """BERT-base: our canonical E transformer, tied, has 109,482,240 parameters -- the
    count of Hugging Face's BertModel, since W_f, b_f (the MLM transform) match the pooler
    and ln_f matches the two token-type embeddings in size (spec/memory.md, published models)."""
    assert counts.tied_parameter_count(PRESETS["bert-base"]) == 109_482_240


def test_parameter_count_law_passes_on_every_preset():
    result = parameter_count_law()
    assert result.passed, "\n".join(result.lines)
    assert len(result.lines) == len(PRESETS)


def test_parameter_counts_reject_a_non_config():
    with pytest.raises(TypeError, match="architecture config"):
        counts.parameter_counts({"d_e": 4})
