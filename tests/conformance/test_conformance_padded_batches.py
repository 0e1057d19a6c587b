"""Padded batches in training and in seq2seq decoding (spec: 11-13 and 15, "Padded batches";
properties training.padding_invariance, kv_cache.left_padding): the bundled implementations
train a padded batch as its real sequences for all three training algorithms and decode
left-padded contexts like unpadded ones; torch_impl's padded losses ignore padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conformance.adapters.reference import ReferenceAdapter
from conformance.adapters.torch_adapter import TorchAdapter
from conformance.runner import run
from formal_transformers.canonical import random_parameters
from formal_transformers.hyperparameters import EDTransformerConfig, ETransformerConfig
from torch_impl import training
from torch_impl.inference import ed_decode_steps
from torch_impl.models import EDTransformer, ETransformer


@pytest.mark.parametrize("adapter", [TorchAdapter, ReferenceAdapter], ids=lambda c: c.__name__)
def test_the_bundled_implementations_train_padded_batches_as_their_sequences(adapter):
    results = run(adapter(), "quick", 0, only=["training.padding_invariance"], shrink=False)
    ran = {r.algorithm for r in results if r.status != "not covered"}
    assert ran == {"ed_training", "e_training", "d_training"}
    assert all(r.status in ("passed", "not covered") for r in results), [
        (r.algorithm, r.reason) for r in results if r.status not in ("passed", "not covered")]


def test_padded_masked_lm_loss_ignores_padding_and_its_masking_decisions():
    config = ETransformerConfig(N_V=6, l_max=6, d_e=4, d_mlp=3, L=1, H=2)
    model = ETransformer.from_canonical(
        config, random_parameters(config, np.random.default_rng(0))).double()
    x = torch.tensor([[1, 2, 3, 0, 0]])
    real = torch.tensor([[True, True, True, False, False]])
    masked = torch.tensor([[True, False, True, True, True]])  # masked padding must not count
    padded = training.e_losses(model, (x, masked, real), mask_token=5)
    alone = training.e_losses(model, (x[:, :3], masked[:, :3]), mask_token=5)
    torch.testing.assert_close(padded, alone)


def test_padded_seq2seq_loss_ignores_the_padding_of_both_sides():
    config = EDTransformerConfig(N_V=6, l_max=6, d_e=4, d_mlp=3, L_enc=1, L_dec=1, H=2)
    model = EDTransformer.from_canonical(
        config, random_parameters(config, np.random.default_rng(1))).double()
    z, x = torch.tensor([[0, 0, 4, 2]]), torch.tensor([[3, 1, 2, 5]])
    z_real = torch.tensor([[False, False, True, True]])  # left-padded context
    x_real = torch.tensor([[True, True, True, False]])  # right-padded target
    padded = training.ed_losses(model, (z, x, z_real, x_real))
    alone = training.ed_losses(model, (z[:, 2:], x[:, :3]))
    torch.testing.assert_close(padded, alone)


@pytest.mark.parametrize("adapter", [TorchAdapter, ReferenceAdapter], ids=lambda c: c.__name__)
def test_the_bundled_implementations_decode_left_padded_contexts_like_unpadded_ones(adapter):
    results = run(adapter(), "quick", 0, only=["kv_cache.left_padding"], shrink=False)
    assert {r.algorithm for r in results if r.status == "passed"} == {"d_inference",
                                                                       "ed_inference"}
    assert all(r.status == "passed" for r in results), [(r.algorithm, r.reason) for r in results]


def test_seq2seq_decode_steps_mask_the_padded_context_in_every_step():
    config = EDTransformerConfig(N_V=7, l_max=8, d_e=4, d_mlp=3, L_enc=1, L_dec=2, H=2)
    model = EDTransformer.from_canonical(
        config, random_parameters(config, np.random.default_rng(2))).double()
    z = torch.tensor([[6, 6, 6, 2, 4, 1], [3, 5, 2, 4, 1, 0]])
    real = torch.tensor([[False, False, False, True, True, True], [True] * 6])
    y, log_p = ed_decode_steps(model, z, 5, bos_token=0, context_mask=real)
    y_alone, log_p_alone = ed_decode_steps(model, z[:1, 3:], 5, bos_token=0)
    torch.testing.assert_close(log_p[:1], log_p_alone)
    assert torch.equal(y[:1], y_alone)
