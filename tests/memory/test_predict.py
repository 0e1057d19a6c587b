"""The predictor (spec/memory.md sections 3, 5, 6): the breakdown adds up as the formulas
say, and bad arguments are typed errors that name the argument."""

from __future__ import annotations

import pytest

from formal_transformers.errors import ConfigError
from formal_transformers.memory.counts import parameter_counts
from formal_transformers.memory.predict import (
    inference_memory,
    kv_cache_bytes,
    training_memory,
)
from formal_transformers.presets import get_preset

GPT2 = get_preset("gpt2-small")


def test_training_components_follow_m12_to_m14():
    e = training_memory(GPT2, 8, 1024, "bfloat16", "adamw")
    P = parameter_counts(GPT2)["total"]
    assert e.row("parameters") == e.row("gradients") == 2 * P
    assert e.row("optimizer state") == 4 * P
    assert training_memory(GPT2, 8, 1024, "bfloat16", "sgd").row("optimizer state") == 0


def test_peak_is_m28_of_the_components():
    e = training_memory(GPT2, 8, 1024, "bfloat16", "adamw", "sdpa")
    r = {c: b for c, b, _ in e.rows}
    acts = r["activations"]
    assert e.peak == r["parameters"] + r["optimizer state"] + max(
        acts + r["working memory: forward"], acts + r["working memory: backward"],
        r["gradients"] + r["working memory: optimizer"])


def test_naive_path_keeps_the_attention_weights_and_sdpa_does_not():
    """At l = 1024 the weights B H l^2 dominate the naive path; sdpa keeps B H l numbers."""
    naive = training_memory(GPT2, 8, 1024, "bfloat16", "adamw", "naive")
    sdpa = training_memory(GPT2, 8, 1024, "bfloat16", "adamw", "sdpa")
    scores = {p: sum(t.bytes for t in e.activations if t.group == "attention scores")
              for p, e in (("naive", naive), ("sdpa", sdpa))}
    assert scores["naive"] == 12 * 8 * 12 * 1024 * 1024 * 4  # L B H l^2, float32 on CPU
    assert scores["sdpa"] == 12 * 8 * 12 * 1024 * 4
    assert naive.peak > sdpa.peak


def test_kv_cache_is_2_L_B_T_H_d_head_b():
    assert kv_cache_bytes(GPT2, 8, 1024, 2) == 2 * 12 * 8 * 1024 * 12 * 64 * 2


def test_decoder_inference_holds_prompt_plus_new_tokens_minus_one_positions():
    e = inference_memory(GPT2, 2, 100, 28, "float32")
    assert e.settings["cache_positions"] == 127
    assert e.row("KV cache") == kv_cache_bytes(GPT2, 2, 127, 4)


def test_encoder_decoder_inference_counts_the_cross_attention_keys_and_values():
    c = get_preset("transformer-base")
    e = inference_memory(c, 2, 50, 40, "float32")
    assert e.row("cross-attention K, V of Z") == 2 * c.L_dec * 2 * 50 * c.d_e * 4
    assert e.row("KV cache") == kv_cache_bytes(c, 2, 40, 4)


def test_json_form_carries_breakdown_and_counts():
    d = training_memory(GPT2, 1, 16, "float32", "sgd").to_dict()
    assert d["parameters"] == 163_037_184 and d["tied_parameters"] == 124_439_808
    assert {"component", "bytes", "formula"} <= set(d["breakdown"][0])
    assert d["peak_bytes"] > 0 and d["activations"]


@pytest.mark.parametrize("kwargs, match", [
    ({"dtype": "int8"}, "dtype must be one of"),
    ({"optimizer": "lion"}, "optimizer must be one of"),
    ({"path": "flash"}, "path must be one of"),
    ({"device": "tpu"}, "device must be one of"),
    ({"seq": 2048}, "seq = 2048 exceeds the context size l_max = 1024"),
    ({"seq": 0}, "seq must be a positive integer"),
    ({"batch": -1}, "batch must be a positive integer"),
    ({"seq": 1}, "seq must be at least 2"),
    ({"path": "reference"}, "path 'reference' runs one sequence in float64"),
])
def test_bad_training_arguments_name_the_argument(kwargs, match):
    args = {"batch": 1, "seq": 16, "dtype": "float32", "optimizer": "sgd"} | kwargs
    with pytest.raises(ConfigError, match=match):
        training_memory(GPT2, **args)


def test_inference_of_the_encoder_is_refused():
    with pytest.raises(ConfigError, match="not for 'encoder'"):
        inference_memory(get_preset("bert-base"), 1, 8, 8)


def test_inference_longer_than_the_context_is_refused():
    with pytest.raises(ConfigError, match="l_max = 1024"):
        inference_memory(GPT2, 1, 1000, 100)


def test_presets_are_looked_up_by_name_and_unknown_names_are_listed():
    from formal_transformers.presets import preset_names

    assert get_preset("bert-base").embedding_layer_norm is True
    assert "gpt2-small" in preset_names("decoder") and "bert-base" not in preset_names("decoder")
    with pytest.raises(ConfigError, match="preset must be one of .*'gpt2-small'"):
        get_preset("gpt5")
