"""The D transformer is GPT-2 and the E transformer is BERT, from the same weights
(torch_impl/interop; spec: Algorithms 9-10 with the variants their configs state).
Random weights from small configs: nothing is downloaded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers  # a dev dependency (pyproject.toml): CI installs it, so no skip

from formal_transformers.canonical import init_parameters
from formal_transformers.errors import ConfigError, ParameterFileError
from formal_transformers.hyperparameters import DTransformerConfig
from torch_impl.interop.hf_bert import bert_to_canonical, canonical_to_bert
from torch_impl.interop.hf_gpt2 import canonical_to_gpt2, gpt2_to_canonical
from torch_impl.models import DTransformer, ETransformer

TOL = 1e-4  # float32, as the issue asks


def _randomise(model: torch.nn.Module, std: float = 0.3) -> torch.nn.Module:
    """Unit-scale random weights (HF's 0.02 init makes every logit ~0 and the test weak)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, std)
    return model.eval()


def _gpt2(**overrides):
    config = transformers.GPT2Config(n_layer=2, n_embd=16, n_head=4, vocab_size=50,
                                     n_positions=12, bos_token_id=None, eos_token_id=None,
                                     **overrides)
    return _randomise(transformers.GPT2LMHeadModel(config))


def _bert(masked_lm: bool):
    config = transformers.BertConfig(num_hidden_layers=2, hidden_size=16, num_attention_heads=4,
                                     intermediate_size=24, vocab_size=40,
                                     max_position_embeddings=12)
    model = _randomise(transformers.BertForMaskedLM(config) if masked_lm
                       else transformers.BertModel(config))
    if masked_lm:
        with torch.no_grad():
            model.cls.predictions.bias.zero_()  # the spec's unembedding has no bias
    return model


def test_the_d_transformer_reproduces_gpt2_logits():
    hf = _gpt2()
    config, params = gpt2_to_canonical(hf.state_dict(), hf.config)
    assert (config.activation, config.layer_norm_eps) == ("gelu_tanh", 1e-5)
    x = torch.randint(0, 50, (3, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = DTransformer.from_canonical(config, params)(x), hf(x).logits
    assert theirs.abs().max() > 1.0  # not a trivially small comparison
    assert (ours - theirs).abs().max() < TOL


def test_gpt2_state_dicts_survive_the_round_trip_through_canonical_parameters():
    hf = _gpt2()
    config, params = gpt2_to_canonical(hf.state_dict(), hf.config)
    hf_config, state = canonical_to_gpt2(config, params)
    assert hf_config.tie_word_embeddings
    back = transformers.GPT2LMHeadModel(hf_config)
    back.load_state_dict(state, strict=True)
    for name, value in hf.state_dict().items():
        assert torch.equal(back.state_dict()[name], value), name


def test_an_untied_head_exports_as_an_untied_gpt2():
    hf = _gpt2()
    config, params = gpt2_to_canonical(hf.state_dict(), hf.config)
    params["W_u"] = params["W_u"] + 0.5
    hf_config, state = canonical_to_gpt2(config, params)
    assert not hf_config.tie_word_embeddings
    back = transformers.GPT2LMHeadModel(hf_config).eval()
    back.load_state_dict(state, strict=True)
    x = torch.randint(0, 50, (2, 7))
    with torch.no_grad():
        assert (back(x).logits - DTransformer.from_canonical(config, params)(x)).abs().max() < TOL


@pytest.mark.parametrize("variant", [dict(scale_attn_by_inverse_layer_idx=True),
                                     dict(scale_attn_weights=False),
                                     dict(activation_function="silu")])
def test_gpt2_variants_the_spec_lacks_are_refused(variant):
    hf = _gpt2(**variant)
    with pytest.raises(ConfigError, match="GPT2Config"):
        gpt2_to_canonical(hf.state_dict(), hf.config)


def test_the_e_transformer_hidden_states_reproduce_bert_last_hidden_state():
    hf = _bert(masked_lm=False)
    config, params = bert_to_canonical(hf.state_dict(), hf.config)
    assert config.embedding_layer_norm and config.layer_norm_eps == 1e-12
    x = torch.randint(0, 40, (3, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = ETransformer.from_canonical(config, params).hidden_states(x)
        theirs = hf(x).last_hidden_state  # token_type_ids default to 0: folded into W_p
    assert (ours - theirs).abs().max() < TOL


def test_the_e_transformer_head_reproduces_bert_masked_lm_logits():
    hf = _bert(masked_lm=True)
    config, params = bert_to_canonical(hf.state_dict(), hf.config)
    x = torch.randint(0, 40, (2, 9), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours, theirs = ETransformer.from_canonical(config, params)(x), hf(x).logits
    assert theirs.abs().max() > 1.0
    assert (ours - theirs).abs().max() < TOL


def test_bert_round_trip_keeps_canonical_parameters_and_hidden_states():
    hf = _bert(masked_lm=True)
    config, params = bert_to_canonical(hf.state_dict(), hf.config)
    hf_config, state = canonical_to_bert(config, params)
    back = transformers.BertForMaskedLM(hf_config).eval()
    back.load_state_dict(state, strict=True)
    config2, params2 = bert_to_canonical(back.state_dict(), back.config)
    assert config2 == config
    for name in params:
        np.testing.assert_array_equal(params2[name], params[name], err_msg=name)
    x = torch.randint(0, 40, (2, 9))
    with torch.no_grad():
        assert (back(x).logits - hf(x).logits).abs().max() < TOL
    _, body = canonical_to_bert(config, params, head=False)
    transformers.BertModel(hf_config, add_pooling_layer=False).load_state_dict(body, strict=True)


def test_a_bert_vocabulary_bias_is_refused_not_dropped():
    hf = _bert(masked_lm=True)
    with torch.no_grad():
        hf.cls.predictions.bias.fill_(0.1)
    with pytest.raises(ParameterFileError, match="no vocabulary bias"):
        bert_to_canonical(hf.state_dict(), hf.config)


def test_a_tied_canonical_set_converts_to_gpt2_and_a_bias_free_one_is_refused():
    """tied_unembedding=True has no W_u entry: GPT-2's lm_head is W_e^T, tied; GPT-2 cannot
    hold a bias-free model, which is refused by name rather than with a KeyError."""
    tied = DTransformerConfig(N_V=20, l_max=8, d_e=8, d_mlp=16, L=1, H=2, tied_unembedding=True)
    params = init_parameters(tied, np.random.default_rng(0), dtype=np.float32)
    hf_config, state = canonical_to_gpt2(tied, params)
    assert hf_config.tie_word_embeddings
    model = transformers.GPT2LMHeadModel(hf_config).eval()
    model.load_state_dict(state)
    x = torch.randint(0, 20, (2, 8), generator=torch.Generator().manual_seed(0))
    ours = DTransformer.from_canonical(tied, params).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, ours(x), rtol=1e-5, atol=1e-5)
    bias_free = DTransformerConfig(N_V=20, l_max=8, d_e=8, d_mlp=16, L=1, H=2, bias=False)
    with pytest.raises(ConfigError, match="needs a config with bias=True"):
        canonical_to_gpt2(bias_free, init_parameters(bias_free, np.random.default_rng(0)))
