"""Canonical parameters (formal_transformers/canonical.py) and hyperparameter dataclasses:
names and shapes, counts, seeded initialisation, atomic safetensors round trip, and clear
errors on malformed configs and parameter files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from formal_transformers.canonical import (
    CONFIG_FILE,
    PARAMS_FILE,
    check_parameters,
    init_parameters,
    load_parameters,
    parameter_count,
    parameter_shapes,
    save_parameters,
)
from formal_transformers.errors import ConfigError, ParameterFileError
from formal_transformers.hyperparameters import (
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
    config_from_dict,
)

D = DTransformerConfig(N_V=11, l_max=8, d_e=12, d_mlp=20, L=2, H=3)
E = ETransformerConfig(N_V=11, l_max=8, d_e=12, d_mlp=20, L=1, H=2, embedding_layer_norm=True)
ED = EDTransformerConfig(N_V=11, l_max=8, d_e=12, d_mlp=20, L_enc=1, L_dec=2, H=4)


def test_gpt2_small_shape_has_the_known_parameter_count():
    gpt2 = DTransformerConfig(N_V=50257, l_max=1024, d_e=768, d_mlp=3072, L=12, H=12)
    # GPT-2 small has 124,439,808 parameters with W_u tied to W_e; canonical W_u is untied.
    assert parameter_count(gpt2) == 124_439_808 + 50257 * 768


def test_decoder_parameter_count_matches_the_closed_form():
    d_e, d_mlp, L, N_V, l_max = D.d_e, D.d_mlp, D.L, D.N_V, D.l_max
    per_layer = 4 * d_e * d_e + 4 * d_e + 2 * d_e * d_mlp + d_mlp + d_e + 4 * d_e
    assert parameter_count(D) == 2 * N_V * d_e + l_max * d_e + L * per_layer + 2 * d_e


def test_shapes_follow_the_spec_orientation():
    s = parameter_shapes(ED)
    assert s["W_e"] == (ED.d_e, ED.N_V) and s["W_u"] == (ED.N_V, ED.d_e)
    assert s["dec.layers.1.cross_mha.W_q"] == (ED.H, ED.d_attn, ED.d_e)
    assert s["dec.layers.1.ln5.gamma"] == (ED.d_e,)
    assert "emb_ln.gamma" in parameter_shapes(E)
    assert "ln_f.beta" in parameter_shapes(D) and "W_f" in parameter_shapes(E)


def test_initialisation_is_seeded():
    a = init_parameters(D, np.random.default_rng(3))
    b = init_parameters(D, np.random.default_rng(3))
    c = init_parameters(D, np.random.default_rng(4))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["W_e"], c["W_e"])
    assert np.all(a["layers.0.ln1.gamma"] == 1) and np.all(a["layers.0.mha.b_q"] == 0)


@pytest.mark.parametrize("config", [D, E, ED], ids=lambda c: c.arch)
def test_save_and_load_round_trip(tmp_path, config):
    params = init_parameters(config, np.random.default_rng(0))
    save_parameters(tmp_path, config, params)
    loaded_config, loaded = load_parameters(tmp_path)
    assert loaded_config == config
    assert all(np.array_equal(params[k], loaded[k]) for k in params)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_missing_extra_and_misshaped_entries_are_named():
    params = init_parameters(D, np.random.default_rng(0))
    broken = dict(params)
    del broken["layers.1.mlp.W_mlp2"]
    with pytest.raises(ParameterFileError, match=r"missing entry 'layers.1.mlp.W_mlp2' "
                                                 r"\(expected shape \(12, 20\)\)"):
        check_parameters(D, broken)
    with pytest.raises(ParameterFileError, match="unexpected entry 'layers.9.x'"):
        check_parameters(D, {**params, "layers.9.x": np.zeros(1)})
    with pytest.raises(ParameterFileError, match=r"'W_p' has shape \(12, 7\), expected \(12, 8\)"):
        check_parameters(D, {**params, "W_p": np.zeros((12, 7))})


def test_truncated_or_foreign_files_raise_parameter_file_error(tmp_path):
    params = init_parameters(D, np.random.default_rng(0))
    save_parameters(tmp_path, D, params)
    blob = (tmp_path / PARAMS_FILE).read_bytes()
    (tmp_path / PARAMS_FILE).write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ParameterFileError, match="unreadable safetensors"):
        load_parameters(tmp_path)
    save_parameters(tmp_path, D, params)
    (tmp_path / CONFIG_FILE).write_text(json.dumps(E.to_dict()))
    with pytest.raises(ParameterFileError, match="missing entry"):
        load_parameters(tmp_path)
    (tmp_path / CONFIG_FILE).write_text("{not json")
    with pytest.raises(ParameterFileError, match="not valid JSON"):
        load_parameters(tmp_path)
    (tmp_path / CONFIG_FILE).unlink()
    with pytest.raises(ParameterFileError, match="missing file 'config.json'"):
        load_parameters(tmp_path)


def test_failed_save_leaves_the_previous_file_intact(tmp_path):
    params = init_parameters(D, np.random.default_rng(0))
    save_parameters(tmp_path, D, params)
    before = (tmp_path / PARAMS_FILE).read_bytes()
    with pytest.raises(ParameterFileError):
        save_parameters(tmp_path, D, {**params, "W_p": np.zeros((1, 1))})
    assert (tmp_path / PARAMS_FILE).read_bytes() == before


@pytest.mark.parametrize("kwargs,match", [
    ({"d_e": 10, "H": 3}, "d_e must be divisible by H"),
    ({"L": 0}, "L must be a positive integer, got 0"),
    ({"N_V": 2.5}, "N_V must be a positive integer"),
    ({"activation": "swish"}, "activation must be one of"),
    ({"layer_norm_eps": -1.0}, "layer_norm_eps must be a float"),
])
def test_bad_hyperparameters_name_the_field(kwargs, match):
    base = dict(N_V=11, l_max=8, d_e=12, d_mlp=20, L=2, H=3)
    with pytest.raises(ConfigError, match=match):
        DTransformerConfig(**{**base, **kwargs})


def test_config_dict_round_trip_and_errors():
    for c in (D, E, ED):
        assert config_from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="'arch' must be one of"):
        config_from_dict({"arch": "mamba"})
    with pytest.raises(ConfigError, match="unknown fields"):
        config_from_dict({**D.to_dict(), "dropout": 0.1})
