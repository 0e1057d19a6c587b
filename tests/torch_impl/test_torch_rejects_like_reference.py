"""Issue 15: torch_impl's public functions reject what reference_numpy rejects, with the same
typed errors -- and accept what it accepts (int8 token ids) instead of crashing in torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reference_numpy.architectures as RA
import reference_numpy.training as RT
from formal_transformers.canonical import random_parameters
from formal_transformers.errors import (
    ConfigError,
    MaskError,
    NonFiniteError,
    SequenceLengthError,
    SpecDTypeError,
)
from formal_transformers.hyperparameters import DTransformerConfig, EDTransformerConfig
from reference_numpy.layer_norm import layer_norm as reference_layer_norm
from torch_impl.attention import attention as torch_attention
from torch_impl.embeddings import token_embedding
from torch_impl.inference import ed_inference
from torch_impl.layer_norm import layer_norm as torch_layer_norm
from torch_impl.models import model_from_canonical
from torch_impl.training import d_losses, d_training, ed_training

D = DTransformerConfig(N_V=8, l_max=8, d_e=8, d_mlp=8, L=1, H=2)
ED = EDTransformerConfig(N_V=8, l_max=8, d_e=8, d_mlp=8, L_enc=1, L_dec=1, H=2)


def _t(*shape):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def test_a_numpy_mask_given_to_torch_is_a_mask_error_not_a_type_error():
    args = dict(X=_t(1, 3, 4), Z=_t(1, 3, 4), W_q=_t(2, 4), b_q=_t(2), W_k=_t(2, 4), b_k=_t(2),
                W_v=_t(3, 4), b_v=_t(3))
    with pytest.raises(MaskError, match="must be a torch.Tensor of dtype torch.bool"):
        torch_attention(**args, mask=np.ones((3, 3), dtype=bool))


def test_layer_norm_eps_zero_on_a_constant_column_is_non_finite_in_both():
    with pytest.raises(NonFiniteError, match="eps = 0 divides by zero") as ref:
        reference_layer_norm(np.ones(4), np.ones(4), np.zeros(4), 0.0)
    with pytest.raises(NonFiniteError) as ours:
        torch_layer_norm(torch.ones(2, 3, 4, dtype=torch.float64), _t(4), _t(4), 0.0)
    assert str(ours.value) == str(ref.value)
    # eps outside [0, inf): the same ConfigError; a large eps is legal in both
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError) as ref:
            reference_layer_norm(np.arange(4.0), np.ones(4), np.zeros(4), bad)
        with pytest.raises(ConfigError) as ours:
            torch_layer_norm(_t(1, 4), _t(4), _t(4), bad)
        assert str(ours.value) == str(ref.value)
    torch_layer_norm(_t(1, 4), _t(4), _t(4), 2.0)


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.uint8, torch.int32])
def test_any_integer_token_dtype_is_accepted_like_the_reference(dtype):
    params = random_parameters(D, np.random.default_rng(0))
    x = [1, 2, 3]
    P_ref = RA.d_transformer(np.array(x, dtype=np.dtype(str(dtype).split(".")[1])), params, D)
    model = model_from_canonical(D, params, dtype=torch.float64)
    logits = model(torch.tensor([x], dtype=dtype))
    np.testing.assert_allclose(torch.softmax(logits, -1)[0].T.detach().numpy(), P_ref,
                               rtol=1e-9, atol=1e-12)
    assert torch.isfinite(d_losses(model, (torch.tensor([x], dtype=dtype),))).all()
    assert token_embedding(torch.tensor([x], dtype=dtype), _t(4, 8)).shape == (1, 3, 4)


def test_float_token_ids_are_refused_never_truncated():
    """d_training used to cast 1.7 to token 1 and train on it."""
    params = random_parameters(D, np.random.default_rng(0))
    with pytest.raises(SpecDTypeError, match="integer token ids") as ref:
        RT.d_training([np.array([1.7, 2.0, 3.0])], params, D, 0.1, 1)
    with pytest.raises(SpecDTypeError, match="integer token ids") as ours:
        d_training([np.array([1.7, 2.0, 3.0])], params, D, 0.1, 1)
    assert str(ours.value) == str(ref.value)
    with pytest.raises(SpecDTypeError, match="integer token ids"):
        token_embedding(torch.tensor([[1.7]]), _t(4, 8))


def test_an_empty_context_l_z_0_is_a_sequence_length_error_in_both():
    params = random_parameters(ED, np.random.default_rng(0))
    with pytest.raises(SequenceLengthError, match="at least one token"):
        RA.ed_transformer(np.zeros(0, dtype=np.int64), np.array([1, 2]), params, ED)
    model = model_from_canonical(ED, params)
    with pytest.raises(SequenceLengthError, match="at least one token"):
        model(torch.zeros(1, 0, dtype=torch.long), torch.tensor([[1, 2]]))
    with pytest.raises(SequenceLengthError, match="at least one token"):
        ed_inference(model, torch.zeros(0, dtype=torch.long), greedy=True,
                        generator=torch.Generator())
    with pytest.raises(SequenceLengthError, match="at least one token"):
        ed_training([(np.zeros(0, dtype=np.int64), np.array([1, 2]))], params, ED, 0.1, 1)
