"""Declared variants (conformance/adapter.py ``variants``; spec/algorithms/01, 07-13): models
with a tied unembedding, no biases and a mean loss pass when they declare it and fail when they
declare the default; bad declarations are typed errors; the canonical forms follow them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from conformance.adapter import validate_adapter
from conformance.adapters.reference import ReferenceAdapter
from conformance.adapters.torch_adapter import TorchAdapter
from conformance.bound import Bound
from conformance.examples.hf_gpt2 import HFGPT2Adapter
from conformance.examples.nanogpt import NanoGPTAdapter
from conformance.runner import run
from formal_transformers.canonical import (
    fold_gradients,
    full_parameter_shapes,
    full_parameters,
    parameter_count,
    parameter_shapes,
)
from formal_transformers.errors import AdapterError, ConfigError
from formal_transformers.hyperparameters import DTransformerConfig, ETransformerConfig

ALL = {"tied_unembedding": True, "bias": False, "loss_reduction": "mean", "padding_idx": 1}


def _statuses(adapter, only=None):
    results = run(adapter, "quick", 0, only=only, shrink=False)
    ran = [r for r in results if r.status != "not covered"]
    return ran, {r.property for r in ran if r.status == "failed"}, [
        (r.algorithm, r.property, r.dtype, r.reason) for r in ran if r.status not in
        ("passed", "failed")]


@pytest.mark.parametrize("cls", [NanoGPTAdapter, HFGPT2Adapter], ids=lambda c: c.__name__)
def test_a_model_passes_honestly_when_it_declares_its_variants(cls):
    ran, failed, errors = _statuses(cls())
    assert len(ran) >= 8 and not errors and not failed, (failed, errors)
    assert {r.property for r in ran} >= {"reference.forward_agreement",
                                         "reference.gradient_agreement",
                                         "gradient.finite_difference", "memory.parameter_count"}


@pytest.mark.parametrize("cls", [NanoGPTAdapter, HFGPT2Adapter], ids=lambda c: c.__name__)
def test_the_same_model_fails_when_it_declares_the_default(cls):
    undeclared = type(f"{cls.__name__}Undeclared", (cls,), {"variants": {}})
    _, failed, errors = _statuses(undeclared())
    assert not errors, errors
    assert {"reference.forward_agreement", "memory.parameter_count",
            "reference.gradient_agreement"} <= failed
    if cls is NanoGPTAdapter:  # its mean loss is not the spec's sum
        assert "training.step_agreement" in failed


@pytest.mark.parametrize("base", [TorchAdapter, ReferenceAdapter], ids=lambda c: c.__name__)
def test_the_bundled_implementations_follow_every_variant(base):
    adapter = type("AllVariants", (base,), {"variants": ALL})()
    ran, failed, errors = _statuses(adapter, only=["d_transformer", "e_transformer",
                                                   "ed_transformer", "d_training", "e_training",
                                                   "ed_training", "d_inference"])
    assert len(ran) >= 30 and not failed and not errors, (failed, errors)


@pytest.mark.parametrize("variants, words", [
    ({"tied": True}, "unknown variant 'tied'"),
    ({"bias": "no"}, "'bias' must be True or False"),
    ({"loss_reduction": "avg"}, "'loss_reduction' must be one of"),
    ({"padding_idx": -1}, "'padding_idx' must be None or a token id"),
    ({"padding_idx": 500}, "must be < 64"),
    (["bias"], "must be a dict"),
])
def test_a_bad_declaration_is_a_typed_error_naming_it(variants, words):
    adapter = type("Bad", (TorchAdapter,), {"variants": variants})()
    with pytest.raises(AdapterError, match=words.replace("(", r"\(")):
        validate_adapter(adapter)


def test_constrain_fills_in_the_declared_variants_and_may_not_change_them():
    class Sneaky(TorchAdapter):
        variants = {"tied_unembedding": True}

        def constrain(self, algorithm, sizes):
            return sizes | {"tied_unembedding": False}

    fields = {"N_V": 3, "tied_unembedding": False, "bias": True}
    assert Bound(type("T", (TorchAdapter,), {"variants": {"bias": False}})()).constrain(
        "d_transformer", fields)["bias"] is False
    with pytest.raises(AdapterError, match="changed the declared variant"):
        Bound(Sneaky()).constrain("d_transformer", fields)


def test_canonical_forms_follow_the_variants():
    base = DTransformerConfig(N_V=5, l_max=4, d_e=4, d_mlp=3, L=2, H=2)
    tied = dataclasses.replace(base, tied_unembedding=True, bias=False)
    shapes = parameter_shapes(tied)
    assert "W_u" not in shapes and not any(k.endswith((".beta", ".b_q", ".b_mlp1"))
                                           for k in shapes)
    assert full_parameter_shapes(tied) == parameter_shapes(base)
    biases = sum(int(np.prod(s)) for k, s in parameter_shapes(base).items()
                 if k.rsplit(".", 1)[-1] in ("beta",) or k.rsplit(".", 1)[-1].startswith("b_"))
    assert parameter_count(tied) == parameter_count(base) - 5 * 4 - biases
    rng = np.random.default_rng(0)
    params = {k: rng.standard_normal(s) for k, s in shapes.items()}
    full = full_parameters(tied, params)
    assert np.array_equal(full["W_u"], params["W_e"].T)
    assert not full["layers.0.mha.b_q"].any() and not full["ln_f.beta"].any()
    grads = {k: rng.standard_normal(s) for k, s in full_parameter_shapes(tied).items()}
    folded = fold_gradients(tied, grads)
    assert set(folded) == set(shapes)
    np.testing.assert_array_equal(folded["W_e"], grads["W_e"] + grads["W_u"].T)  # both uses


def test_configs_validate_their_variants():
    with pytest.raises(ConfigError, match="padding_idx must be a token id in"):
        DTransformerConfig(N_V=3, l_max=4, d_e=2, d_mlp=2, L=1, H=1, padding_idx=3)
    with pytest.raises(ConfigError, match="loss_reduction"):
        ETransformerConfig(N_V=3, l_max=4, d_e=2, d_mlp=2, L=1, H=1, loss_reduction="none")


def test_gpt2_passes_padded_batches_with_its_mask_and_fails_without_position_ids():
    ran, failed, errors = _statuses(HFGPT2Adapter(), only=["batch.padding_invariance"])
    assert len(ran) == 2 and not failed and not errors, (failed, errors)

    class ArangePositions(HFGPT2Adapter):  # transformers#21080: positions count the padding
        def position_ids(self, mask):
            return torch.arange(mask.shape[1]).expand(mask.shape)

    _, failed, errors = _statuses(ArangePositions(), only=["batch.padding_invariance"])
    assert failed == {"batch.padding_invariance"} and not errors, errors


PRIMITIVES = ["basic_attention", "attention", "mhattention", "layer_norm", "mlp",
              "unembedding", "attention_backward", "mhattention_backward",
              "layer_norm_backward", "mlp_backward"]


def test_bias_free_torch_layers_pass_honestly_when_they_declare_it():
    """F.linear without bias, nn.MultiheadAttention(bias=False), nn.LayerNorm(bias=False)."""
    from conformance.examples.torch_layers import TorchLayers

    ran, failed, errors = _statuses(TorchLayers(("float64", "float32"), bias=False),
                                    only=PRIMITIVES)
    assert not failed and not errors, (failed, errors)
    cells = {(r.algorithm, r.property) for r in ran}
    assert {("mhattention", "memory.parameter_count"), ("layer_norm", "memory.parameter_count"),
            ("mlp", "memory.parameter_count"), ("attention", "softmax.normalised"),
            ("attention", "softmax.shift_invariance"), ("mhattention", "structure.single_head"),
            ("mhattention_backward", "reference.gradient_agreement"),
            ("mlp_backward", "gradient.finite_difference")} <= cells


def test_bias_free_torch_layers_fail_when_they_declare_the_default():
    from conformance.examples.torch_layers import TorchLayers

    layers = TorchLayers(("float64",), bias=False)
    layers.variants = {}
    _, failed, errors = _statuses(layers, only=PRIMITIVES)
    assert not errors, errors
    assert {"reference.forward_agreement", "reference.gradient_agreement",
            "memory.parameter_count", "softmax.normalised"} <= failed


def test_bias_free_primitive_cases_hold_no_biases_and_constrain_sees_the_variant():
    from hypothesis import given, settings

    from conformance.strategies import cases_for

    seen = []

    class BiasFree(TorchAdapter):
        variants = {"bias": False}

        def constrain(self, algorithm, sizes):
            seen.append(sizes["bias"])
            return sizes

    bound = Bound(BiasFree())

    @settings(max_examples=3, database=None)
    @given(cases_for("mhattention", bound.constrain, np.float64))
    def draw(case):
        assert set(case["params"]) == {"W_q", "W_k", "W_v", "W_o"}

    draw()
    assert seen and not any(seen)


def test_bias_free_torch_multihead_attention_passes_when_it_declares_it():
    from conformance.examples.torch_multihead_attention import TorchMultiheadAttention

    ran, failed, errors = _statuses(TorchMultiheadAttention(bias=False))
    assert len(ran) >= 8 and not failed and not errors, (failed, errors)


def test_a_padding_index_embedding_passes_when_it_declares_it_and_fails_when_not():
    """F.embedding(padding_idx=p): the column p is drawn 0 and gets no gradient."""
    from conformance.examples.torch_layers import TorchLayers

    only = ["token_embedding", "token_embedding_backward"]
    ran, failed, errors = _statuses(TorchLayers(("float64",), padding_idx=3), only=only)
    assert len(ran) >= 3 and not failed and not errors, (failed, errors)
    undeclared = TorchLayers(("float64",), padding_idx=0)  # a valid index at every N_V
    undeclared.variants = {}
    _, failed, errors = _statuses(undeclared, only=only)
    assert {"reference.gradient_agreement", "gradient.finite_difference"} <= failed, failed
    assert not errors, errors
