"""Bring your model (conformance/adapters/hf_dir.py): ``verify --impl hf:DIR`` on each family
saved with save_pretrained passes; a copy whose config.json declares the wrong RoPE layout or
a window the model does not apply fails."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conformance.adapter import load_adapter
from conformance.runner import run
from formal_transformers.canonical import random_parameters
from formal_transformers.hyperparameters import ModernDTransformerConfig
from torch_impl.interop.hf_llama import build_hf_model

TINY = dict(N_V=7, l_max=6, d_e=8, d_mlp=6, L=2, H=2, G=1)
SAVED = {
    "LlamaForCausalLM": ModernDTransformerConfig(**TINY),
    "MistralForCausalLM": ModernDTransformerConfig(**TINY, windows=(2, 2)),
    "Qwen2ForCausalLM": ModernDTransformerConfig(**TINY, attention_bias="qkv"),
    "Gemma2ForCausalLM": ModernDTransformerConfig(
        **(TINY | {"d_head": 4}), norm_offset=True, post_norms=True, embedding_scale=True,
        activation="gelu_tanh", attn_softcap=2.0, final_softcap=3.0, attn_scale=4 ** -0.5,
        windows=(2, None), tie_embeddings=True),
}


def _save(tmp_path, family: str):
    config = SAVED[family]
    model = build_hf_model(config, random_parameters(config, np.random.default_rng(0)), family)
    directory = tmp_path / family
    model.save_pretrained(directory)
    return directory


def _verify(directory, profile="quick", only=("modern_d_transformer",)):
    results = run(load_adapter(f"hf:{directory}"), profile, 0, only=only)
    return {r.property: r for r in results if r.algorithm == "modern_d_transformer"}


@pytest.mark.parametrize("family", SAVED)
def test_each_saved_family_passes_what_its_config_declares(tmp_path, family):
    results = _verify(_save(tmp_path, family))
    assert {"reference.forward_agreement", "kv_cache.equivalence", "causal.non_leakage",
            "memory.parameter_count"} <= results.keys()
    ran = {p: r for p, r in results.items() if r.status != "not covered"}
    assert all(r.status == "passed" and r.examples > 0 for r in ran.values()), {
        p: r.reason for p, r in ran.items() if r.status != "passed"}


@pytest.mark.parametrize(("family", "declare"), [
    ("LlamaForCausalLM", {"rope_layout": "interleaved"}),
    ("LlamaForCausalLM", {"sliding_window": 2}),
    ("Qwen2ForCausalLM", {"rope_layout": "interleaved"}),
])
def test_a_config_declaring_what_the_model_does_not_compute_fails(tmp_path, family, declare):
    directory = _save(tmp_path, family)
    copy = tmp_path / "declared-wrongly"
    shutil.copytree(directory, copy)
    data = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(data | declare))
    results = _verify(copy, "ci", only=("reference.forward_agreement",))
    assert results["reference.forward_agreement"].status == "failed"
