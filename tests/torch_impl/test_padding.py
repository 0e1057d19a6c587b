"""Padded batches in torch_impl (spec: Algorithms 9-10, "Padded batches"): the mask is
checked, positions restart at each row's first real token, padding is invisible."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from formal_transformers.canonical import random_parameters
from formal_transformers.errors import MaskError
from formal_transformers.hyperparameters import DTransformerConfig, ETransformerConfig
from torch_impl.models import MODEL_CLASSES
from torch_impl.padding import check_real, key_padding_mask, position_ids


@pytest.mark.parametrize("rows", [[[1, 0, 1]], [[0, 0, 0]], [[0, 1, 0]]])
def test_a_mask_that_is_not_one_block_at_an_edge_is_a_mask_error(rows):
    with pytest.raises(MaskError, match="row 0"):
        check_real(torch.tensor(rows, dtype=torch.bool), (1, 3))


def test_positions_count_the_real_tokens_before():
    real = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    assert position_ids(real).tolist() == [[0, 0, 0, 1], [0, 1, 2, 0]]
    mask = key_padding_mask(real)[:, 0]  # (B, t_z, t_x)
    assert mask[0, :, 3].tolist() == [False, False, True, True]  # a real query: real keys
    assert mask[0, :, 0].tolist() == [True, False, False, False]  # a padded one: itself


@pytest.mark.parametrize("config", [
    DTransformerConfig(N_V=5, l_max=6, d_e=4, d_mlp=3, L=2, H=2),
    ETransformerConfig(N_V=5, l_max=6, d_e=4, d_mlp=3, L=2, H=2, embedding_layer_norm=True)],
    ids=lambda c: c.arch)
def test_left_and_right_padding_give_each_sequence_alone(config):
    rng = np.random.default_rng(0)
    model = MODEL_CLASSES[type(config)].from_canonical(config, random_parameters(config, rng))
    short, long = torch.tensor([[3, 1]]), torch.tensor([[2, 4, 0, 1, 3]])
    with torch.no_grad():
        alone = model(short)[0], model(long)[0]
        for left in (True, False):
            pad = torch.tensor([4, 4, 4])
            row = torch.cat([pad, short[0]]) if left else torch.cat([short[0], pad])
            first = [False] * 3 + [True] * 2 if left else [True] * 2 + [False] * 3
            real = torch.tensor([first, [True] * 5])
            out = model(torch.stack([row, long[0]]), attention_mask=real)
            torch.testing.assert_close(out[0][real[0]], alone[0], rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(out[1], alone[1], rtol=1e-12, atol=1e-12)
            assert torch.isfinite(out).all()
