"""The activations kept for the backward pass equal (M15)-(M22) exactly (spec/memory.md
section 4; property memory.activations), for the reference and both torch paths."""

from __future__ import annotations

import pytest

from formal_transformers.hyperparameters import (
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
)
from formal_transformers.memory.activations import (
    activation_terms,
    self_attention_terms,
    total_bytes,
)
from formal_transformers.memory.properties import activations_law
from formal_transformers.memory.runs import measure_reference_training, measure_torch_training

CONFIGS = {
    "decoder": DTransformerConfig(N_V=37, l_max=32, d_e=24, d_mlp=40, L=2, H=3),
    "decoder-relu": DTransformerConfig(N_V=37, l_max=32, d_e=24, d_mlp=40, L=1, H=3,
                                       activation="relu"),
    "encoder": ETransformerConfig(N_V=37, l_max=32, d_e=24, d_mlp=40, L=2, H=3),
    "encoder-emb-ln": ETransformerConfig(N_V=37, l_max=32, d_e=24, d_mlp=40, L=1, H=3,
                                         embedding_layer_norm=True),
    "encoder-decoder": EDTransformerConfig(N_V=37, l_max=32, d_e=24, d_mlp=40, L_enc=1,
                                           L_dec=2, H=3),
}
SEQ, SRC_SEQ = 20, 13


@pytest.mark.parametrize("name", list(CONFIGS))
def test_reference_caches_hold_exactly_the_formula(name):
    """(M15)-(M18): the NumPy data a reference forward keeps in its cache."""
    c = CONFIGS[name]
    m = measure_reference_training(c, SEQ, SRC_SEQ, peak=False)
    predicted = total_bytes(activation_terms(c, 1, SEQ, 8, "reference", SRC_SEQ))
    assert m.activations == predicted, (
        f"{name}: reference keeps {m.activations} bytes, (M15)-(M18) give {predicted}")


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("path", ["naive", "sdpa"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_torch_saved_tensors_are_exactly_the_formula(name, path, dtype, batch):
    """(M19)-(M22): the storages autograd saves during the loss's forward pass."""
    c = CONFIGS[name]
    m = measure_torch_training(c, batch, SEQ, dtype, "sgd", path, SRC_SEQ, peak=False)
    terms = activation_terms(c, batch, SEQ, 2 if dtype == "bfloat16" else 4, path, SRC_SEQ)
    assert m.activations == total_bytes(terms), (
        f"{name} {path} {dtype} B={batch}: autograd saves {m.activations} bytes, the "
        f"formula gives {total_bytes(terms)}:\n" + "\n".join(
            f"  {t.name}: {t.bytes}" for t in terms))


def test_float64_torch_keeps_float64_log_normalisers():
    """The flash kernel keeps its log-normalisers in max(b, 4) bytes: 8 for float64."""
    c = CONFIGS["decoder"]
    m = measure_torch_training(c, 2, SEQ, "float64", "sgd", "sdpa", peak=False)
    assert m.activations == total_bytes(activation_terms(c, 2, SEQ, 8, "sdpa"))


def test_naive_attention_scores_are_quadratic_and_sdpa_linear_in_length():
    """The term that separates the paths (M15)/(M19): H l^2 weights against H l normalisers."""
    naive = [t for t in self_attention_terms(4, 16, 1, 100, 4, "naive")
             if t.group == "attention scores"][0]
    sdpa = [t for t in self_attention_terms(4, 16, 1, 100, 4, "sdpa")
            if t.group == "attention scores"][0]
    assert (naive.count, naive.width) == (4 * 100 * 100, 4)
    assert (sdpa.count, sdpa.width) == (4 * 100, 4)


def test_unknown_path_is_a_config_error():
    from formal_transformers.errors import ConfigError

    with pytest.raises(ConfigError, match="path must be one of"):
        activation_terms(CONFIGS["decoder"], 1, SEQ, 4, "flash")


def test_activations_law_passes_on_one_reference_and_one_torch_case():
    """The law's own entry point (its full case list is exercised by the tests above)."""
    from formal_transformers.memory.properties import REFERENCE_CASES, TORCH_CASES

    result = activations_law(REFERENCE_CASES[:1], TORCH_CASES[:1])
    assert result.passed, "\n".join(result.lines)
