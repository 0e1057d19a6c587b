"""Memory of the modern decoder (spec/memory.md section 11, (M65)-(M70)) and the three
estimates of a measured peak (section 12, (M71)-(M72)): the saved tensors of a training step
equal (M68) byte for byte; peaks are within the 10 % of section 8; the KV cache row is (M67),
divided by H / G against G = H and capped by a window; ours is closer to the measured peak
than the weights/gradients/optimizer-only estimate and Korthikanti et al.'s formula."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from formal_transformers.canonical import parameter_count, random_parameters
from formal_transformers.hyperparameters import ModernDTransformerConfig
from formal_transformers.memory import compare, inference_memory, training_memory
from formal_transformers.memory.baselines import korthikanti_layer_bytes
from formal_transformers.memory.counts import parameter_counts
from formal_transformers.presets import get_preset, preset_names
from formal_transformers.rope import Rope
from torch_impl.modern_decoder import ModernDTransformer

BASE = dict(N_V=64, l_max=64, d_e=32, d_mlp=48, L=2, H=4, G=2)
SELECTIONS = {
    "llama": {}, "mha": {"G": 4}, "mqa relu plain": {"G": 1, "mlp": "plain", "activation": "relu"},
    "gpt2 selections": {"G": 4, "norm": "layer_norm", "positions": "learned", "mlp": "plain",
                        "activation": "gelu", "attention_bias": "all", "mlp_bias": True},
    "qk-norm per head": {"qk_norm": "per_head"}, "qk-norm projection": {"qk_norm": "projection"},
    "qk-norm without rope": {"qk_norm": "per_head", "positions": "none"},
    "post-norms": {"post_norms": True}, "interleaved rope": {"rope": Rope(layout="interleaved")},
    "partial rope": {"rope": Rope(fraction=0.5)},
    "soft-cap without rope": {"G": 1, "attn_softcap": 20.0, "positions": "none"},
    "alibi": {"positions": "alibi"}, "soft-caps": {"attn_softcap": 50.0, "final_softcap": 30.0},
    "tied, scaled, windowed": {"tie_embeddings": True, "embedding_scale": True,
                               "windows": (4, None)},
    "gemma 2": {"norm_offset": True, "post_norms": True, "attn_softcap": 50.0,
                "final_softcap": 30.0, "activation": "gelu_tanh", "tie_embeddings": True,
                "embedding_scale": True, "windows": (4, None), "d_head": 16},
}


def test_modern_presets_count_their_parameters_exactly():
    for name in preset_names("modern-decoder"):
        config = get_preset(name)
        assert parameter_counts(config)["total"] == parameter_count(config), name
    # Llama 3.2 1B as published (tied embeddings): 1,235,814,400
    assert parameter_counts(get_preset("llama-3.2-1b"))["total"] == 1_235_814_400


@pytest.mark.parametrize("path", ["sdpa", "naive"])
@pytest.mark.parametrize("name", list(SELECTIONS))
def test_saved_tensors_of_a_training_step_equal_m68(name, path):
    config = ModernDTransformerConfig(**BASE | SELECTIONS[name])
    for batch, dtype in ((1, "float32"), (2, "bfloat16")):
        estimate = training_memory(config, batch, 16, dtype, "adamw", path)
        checks = compare.training_checks(estimate, peak=False)
        assert checks[0].measured == checks[0].predicted, (name, path, batch, dtype)


@pytest.mark.parametrize("preset", ["tiny-llama", "tiny-mistral", "tiny-gemma2"])
def test_training_and_decode_peaks_are_within_tolerance(preset):
    config = get_preset(preset)
    for path in ("sdpa", "naive"):
        [peak] = compare.training_checks(training_memory(config, 2, 64, "float32", "adamw",
                                                         path), activations=False)
        assert peak.ok, (path, peak.to_dict())
    [decode] = compare.inference_checks(inference_memory(config, 2, 33, 32))
    assert decode.ok, decode.to_dict()


def _cache_bytes(config: ModernDTransformerConfig, B: int, T: int) -> int:
    model = ModernDTransformer.from_canonical(
        config, random_parameters(config, np.random.default_rng(0)), dtype=torch.float32)
    cache = model.new_cache(B, T)
    with torch.no_grad():
        model(torch.zeros(B, T, dtype=torch.long), cache)
    return cache.nbytes()


def test_kv_cache_row_is_measured_and_shrinks_by_h_over_g_and_with_a_window():
    llama = get_preset("tiny-llama")  # H = 4, G = 2
    mha = dataclasses.replace(llama, G=llama.H)
    row = {c: inference_memory(c, 2, 40, 25).row("KV cache") for c in (llama, mha)}
    for config in (llama, mha):  # the cache holds 40 + 25 - 1 = 64 positions
        assert row[config] == _cache_bytes(config, 2, 64)
    assert row[mha] == (llama.H // llama.G) * row[llama]
    windowed = dataclasses.replace(llama, windows=(8, 8))
    for prompt in (20, 60):
        kv = inference_memory(windowed, 1, prompt, 5).row("KV cache")
        assert kv == _cache_bytes(windowed, 1, prompt + 4) == 2 * 2 * 2 * 8 * 16 * 4


def test_korthikanti_formula_is_theirs_in_16_bits():
    s, b, h, a = 2048, 4, 4096, 32
    assert korthikanti_layer_bytes(s, b, h, a, 2) == s * b * h * (34 + 5 * a * s // h)


@pytest.mark.parametrize("preset", compare.COMPARISON_PRESETS)
def test_ours_is_within_10_percent_and_closer_than_both_outside_estimates(preset):
    """On the same runs (both attention paths, and a decode): tiny-gpt2 is GPT-2-shaped."""
    rows = compare.estimate_comparison(preset, get_preset(preset))
    assert len(rows) == 3
    for row in rows:
        errors = {k: abs(v["relative_error_vs_measured"]) for k, v in row["estimates"].items()}
        assert errors["ours"] <= 0.10, row
        assert errors["ours"] < min(errors["static"], errors["korthikanti"]), row


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("preset", ["tiny-gpt2", "tiny-llama"])
def test_cuda_peaks_are_within_10_percent_of_max_memory_allocated(preset):
    for row in compare.estimate_comparison(preset, get_preset(preset), device="cuda"):
        assert row["method"] == "torch.cuda.max_memory_allocated"
        assert abs(row["estimates"]["ours"]["relative_error_vs_measured"]) <= 0.10, row
