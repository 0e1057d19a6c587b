"""The memory of the ViT classifier (spec/memory.md section 8a): its parameter count (M50)
in closed form and against transformers, the activations a torch training step keeps (M51)
exactly, and the predicted peak (M28 with M52) within the 10 % tolerance of section 8."""

from __future__ import annotations

import pytest

from formal_transformers.canonical import parameter_count
from formal_transformers.hyperparameters import ViTConfig
from formal_transformers.memory.activations import activation_terms, total_bytes
from formal_transformers.memory.compare import TORCH_TOLERANCE
from formal_transformers.memory.counts import parameter_counts
from formal_transformers.memory.predict import training_memory
from formal_transformers.memory.runs import measure_torch_training
from formal_transformers.presets import get_preset

SMALL = ViTConfig(C=3, height=12, width=8, patch_size=4, n_classes=5, d_e=24, d_mlp=40, L=2,
                  H=3)


def test_the_count_is_the_canonical_one_and_vit_base_has_its_published_size():
    for config in (SMALL, get_preset("vit-base-16"),
                   ViTConfig(**{**SMALL.__dict__, "positions": "none"})):
        assert parameter_counts(config)["total"] == parameter_count(config)
    assert parameter_count(get_preset("vit-base-16")) == 86_567_656


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("path", ["naive", "sdpa"])
@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_saved_tensors_are_exactly_the_formula(batch, dtype, path, activation):
    config = ViTConfig(**{**SMALL.__dict__, "activation": activation})
    m = measure_torch_training(config, batch, 1, dtype, "sgd", path, peak=False)
    terms = activation_terms(config, batch, 1, 2 if dtype == "bfloat16" else 4, path)
    assert m.activations == total_bytes(terms), "\n".join(f"{t.name}: {t.bytes}"
                                                          for t in terms)


@pytest.mark.parametrize(("batch", "optimizer"), [(1, "adamw"), (8, "sgd"), (8, "adamw")])
def test_the_predicted_peak_is_within_the_torch_tolerance(batch, optimizer):
    config = get_preset("vit-tiny-cifar")
    measured = measure_torch_training(config, batch, 1, "float32", optimizer, "sdpa").peak
    predicted = training_memory(config, batch, 1, "float32", optimizer, "sdpa").peak
    assert abs(measured - predicted) <= TORCH_TOLERANCE * predicted, (measured, predicted)
