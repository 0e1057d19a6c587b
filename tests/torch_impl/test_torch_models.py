"""The nn.Module models: canonical import/export, the KV cache, causality, sampling, and the
typed errors of bad parameters and tokens (spec: Algorithms 8-10, 14-15; properties
kv_cache.equivalence, causal.non_leakage, sampling.seed_reproducible, sampling.greedy_limit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_cases import random_parameters

from formal_transformers.errors import (
    ConfigError,
    NonFiniteError,
    ParameterFileError,
    SequenceLengthError,
    SpecDTypeError,
    TokenRangeError,
)
from formal_transformers.hyperparameters import (
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
)
from torch_impl.inference import d_inference, ed_inference
from torch_impl.models import model_from_canonical

D = DTransformerConfig(N_V=11, l_max=10, d_e=8, d_mlp=12, L=2, H=2)
E = ETransformerConfig(N_V=11, l_max=10, d_e=8, d_mlp=12, L=2, H=2, embedding_layer_norm=True)
ED = EDTransformerConfig(N_V=11, l_max=10, d_e=8, d_mlp=12, L_enc=2, L_dec=2, H=2)


def _model(config, seed=0, scale=0.7):
    params = random_parameters(config, np.random.default_rng(seed), scale)
    return model_from_canonical(config, params), params


def _tokens(*shape, seed=0):
    return torch.randint(0, 11, shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("config", [D, E, ED], ids=lambda c: c.arch)
def test_canonical_parameters_round_trip_exactly_and_cover_every_module_parameter(config):
    model, params = _model(config)
    out = model.to_canonical()
    assert list(out) == list(params)
    for name in params:
        np.testing.assert_array_equal(out[name], params[name], err_msg=name)
    assert sum(v.size for v in out.values()) == sum(p.numel() for p in model.parameters())


def test_bad_parameter_mappings_raise_typed_errors_naming_the_entry():
    _, params = _model(D)
    with pytest.raises(ParameterFileError, match="missing entry 'W_u'"):
        model_from_canonical(D, {k: v for k, v in params.items() if k != "W_u"})
    with pytest.raises(ParameterFileError, match="'layers.0.mha.W_q' has shape"):
        model_from_canonical(D, params | {"layers.0.mha.W_q": np.zeros((2, 4, 7))})
    with pytest.raises(NonFiniteError, match="ln_f.gamma"):
        model_from_canonical(D, params | {"ln_f.gamma": np.full(8, np.nan)})


def test_bad_token_sequences_raise_typed_errors():
    model, _ = _model(D)
    with pytest.raises(TokenRangeError, match="found 11"):
        model(torch.tensor([[1, 11]]))
    with pytest.raises(SequenceLengthError, match="l_max = 10"):
        model(_tokens(1, 11))
    with pytest.raises(SequenceLengthError, match="at least one token"):
        model(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(SpecDTypeError, match="integer token ids"):
        model(torch.zeros(1, 3))
    cache = model.new_cache(1)
    model(_tokens(1, 8), cache)
    with pytest.raises(SequenceLengthError, match="after 8 cached ones"):
        model(_tokens(1, 3), cache)


def test_feeding_a_sequence_in_chunks_through_the_kv_cache_gives_the_full_logits():
    """Property kv_cache.equivalence, for prefill chunks of 3, 1 and 4 tokens."""
    model, _ = _model(D)
    x = _tokens(2, 8)
    cache = model.new_cache(2)
    chunks = [model(x[:, a:b], cache) for a, b in ((0, 3), (3, 4), (4, 8))]
    torch.testing.assert_close(torch.cat(chunks, 1), model(x), rtol=1e-12, atol=1e-12)


def test_the_ed_decoder_with_a_cache_gives_the_full_logits():
    model, _ = _model(ED)
    z, x = _tokens(2, 6, seed=1), _tokens(2, 5)
    kv, cache = model.context(model.encode(z)), model.new_cache(2)
    steps = [model.lm_head(model.decode(x[:, t:t + 1], kv, cache)) for t in range(5)]
    torch.testing.assert_close(torch.cat(steps, 1), model(z, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("config", [D, ED], ids=lambda c: c.arch)
def test_decoder_outputs_ignore_future_tokens(config):
    """Property causal.non_leakage: changing x[t'] for t' > t leaves P[:, t] unchanged."""
    model, _ = _model(config)
    x = _tokens(1, 7)
    y = x.clone()
    y[:, 4:] = (x[:, 4:] + 1) % 11  # every future token changes
    z = _tokens(1, 5, seed=2)
    run = (lambda s: model(s)) if config is D else (lambda s: model(z, s))
    torch.testing.assert_close(run(x)[:, :4], run(y)[:, :4], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(run(x)[:, 4:], run(y)[:, 4:])


def test_encoder_outputs_depend_on_every_token():
    model, _ = _model(E)
    x = _tokens(1, 6)
    y = x.clone()
    y[0, 5] = (x[0, 5] + 1) % 11
    assert not torch.allclose(model(x)[:, 0], model(y)[:, 0])


def test_sampling_is_reproducible_per_seed_and_varies_across_seeds():
    model, _ = _model(D, scale=0.3)  # flat-ish distributions: samples vary
    prompt = _tokens(3)

    def sample(seed, use_cache=True):
        return d_inference(model, prompt, 8, 1.0, torch.Generator().manual_seed(seed),
                           use_cache=use_cache)

    assert sample(0).shape == (8,)
    assert torch.equal(sample(0), sample(0))
    assert torch.equal(sample(0), sample(0, use_cache=False))
    assert len({tuple(sample(s).tolist()) for s in range(4)}) > 1


def test_greedy_decoding_takes_the_argmax_and_is_the_low_temperature_limit():
    """Property sampling.greedy_limit."""
    model, _ = _model(D, scale=1.5)
    prompt = _tokens(2, 3)
    greedy = d_inference(model, prompt, 5, greedy=True)
    x = prompt
    for _ in range(5):
        x = torch.cat([x, model(x)[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(greedy, x[:, 3:])
    cold = d_inference(model, prompt, 5, 1e-4, torch.Generator().manual_seed(0))
    assert torch.equal(cold, greedy)


def test_ed_inference_stops_at_eos_or_at_the_length_limit():
    model, params = _model(ED, scale=1.0)
    params["W_u"][:] = 0.0
    params["W_u"][4] = 5.0 * np.sign(params["W_e"][:, 4])  # token 4 wins nearly always
    eos_model = model_from_canonical(ED, params)
    z = _tokens(2, 4)
    out = ed_inference(eos_model, z, 1.0, torch.Generator().manual_seed(0), bos_token=0,
                       eos_token=4, l_max_gen=6)
    assert all(o[0] == 0 and o[-1] == 4 and 4 not in o[:-1] for o in out)
    limited = ed_inference(model, z[0], 1.0, torch.Generator().manual_seed(0), bos_token=0,
                           eos_token=10, l_max_gen=3, greedy=False)
    assert 1 <= len(limited) <= 4 and limited[0] == 0


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    (dict(tau=0.0), ConfigError, "tau"),
    (dict(tau=float("inf")), ConfigError, "tau"),
    (dict(l_gen=0), ConfigError, "l_gen"),
    (dict(l_gen=9), SequenceLengthError, "exceeds the context size"),
    (dict(generator="seed"), ConfigError, "generator must be"),
])
def test_bad_sampling_arguments_raise_typed_errors(kwargs, error, words):
    model, _ = _model(D)
    args = dict(prompt=_tokens(3), l_gen=4, tau=1.0, generator=torch.Generator()) | kwargs
    with pytest.raises(error, match=words):
        d_inference(model, **args)


def test_bad_ed_inference_arguments_raise_typed_errors():
    model, _ = _model(ED)
    with pytest.raises(ConfigError, match="l_max_gen"):
        ed_inference(model, _tokens(3), 1.0, torch.Generator(), l_max_gen=11)
    with pytest.raises(TokenRangeError, match="eos_token"):
        ed_inference(model, _tokens(3), 1.0, torch.Generator(), eos_token=11)


def test_the_model_compiles_without_graph_breaks():
    """Opt-in torch.compile: the forward traces as one graph (checked with the eager
    backend, which needs no C++ compiler) and computes the same logits."""
    model, _ = _model(D)
    x = _tokens(2, 6)
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-12, atol=1e-12)
