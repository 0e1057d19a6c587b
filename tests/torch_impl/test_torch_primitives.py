"""The functional torch API: its own laws (causal flag = the spec's causal Mask, batched
masks, bf16 on CPU) and the typed, descriptive errors the reference raises for bad input
(formal_transformers/errors.py; spec: Algorithms 1-7, 16)."""

from __future__ import annotations

import pytest
import torch
from torch_cases import TOLERANCE, assert_close

import torch_impl as ti
from formal_transformers.errors import (
    ConfigError,
    MaskError,
    NonFiniteError,
    SequenceLengthError,
    SpecDTypeError,
    SpecShapeError,
    TokenRangeError,
)
from torch_impl.attention import causal_mask

G = torch.Generator().manual_seed(0)


def _randn(*shape: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=G, dtype=dtype)


def _attention_args(B=2, l_x=3, l_z=4, d=5, d_attn=2, H=None):
    h = (H,) if H else ()
    args = dict(X=_randn(B, l_x, d), Z=_randn(B, l_z, d), W_q=_randn(*h, d_attn, d),
                b_q=_randn(*h, d_attn), W_k=_randn(*h, d_attn, d), b_k=_randn(*h, d_attn),
                W_v=_randn(*h, 3, d), b_v=_randn(*h, 3))
    if H:
        args |= dict(W_o=_randn(4, H * 3), b_o=_randn(4))
    return args


@pytest.mark.parametrize("H", [None, 2], ids=["attention", "mhattention"])
def test_the_causal_flag_is_the_spec_mask_t_z_le_t_x(H):
    """causal=True equals Mask[t_z, t_x] = [t_z <= t_x], also when l_z != l_x (Alg 10 L6)."""
    fn = ti.mh_attention if H else ti.attention
    args = _attention_args(H=H)
    explicit = fn(**args, mask=causal_mask(4, 3))
    torch.testing.assert_close(fn(**args, causal=True), explicit, rtol=1e-12, atol=1e-12)


def test_a_mask_and_the_causal_flag_combine_by_and():
    args = _attention_args()
    mask = torch.rand(2, 4, 3, generator=G) < 0.5
    mask[:, 0] = True
    both = ti.attention(**args, mask=mask, causal=True)
    torch.testing.assert_close(both, ti.attention(**args, mask=mask & causal_mask(4, 3)),
                               rtol=1e-12, atol=1e-12)


def test_a_per_sequence_mask_acts_on_its_own_sequence_only():
    """mask (B, l_z, l_x): row b of the output equals attention of sequence b alone."""
    args = _attention_args()
    mask = torch.rand(2, 4, 3, generator=G) < 0.5
    mask[:, 1] = True
    out = ti.attention(**args, mask=mask)
    for b in range(2):
        one = {k: (v[b:b + 1] if k in ("X", "Z") else v) for k, v in args.items()}
        torch.testing.assert_close(out[b:b + 1], ti.attention(**one, mask=mask[b]),
                                   rtol=1e-12, atol=1e-12)


def test_bfloat16_runs_on_cpu_and_returns_bfloat16():
    args = {k: v.to(torch.bfloat16) for k, v in _attention_args(H=2).items()}
    assert ti.mh_attention(**args, causal=True).dtype == torch.bfloat16


# -- bad input: the reference's typed errors, with messages naming the argument ------------

@pytest.mark.parametrize(("change", "error", "words"), [
    (dict(X=_randn(3, 5)), SpecShapeError, "X must have shape"),
    (dict(Z=_randn(1, 4, 5)), SpecShapeError, "Z must have shape"),
    (dict(W_q=_randn(2, 6)), SpecShapeError, "W_q must have shape"),
    (dict(b_v=_randn(4)), SpecShapeError, "b_v must have shape"),
    (dict(X=torch.ones(2, 3, 5, dtype=torch.long)), SpecDTypeError, "X must be a floating"),
    (dict(W_k=_randn(2, 5).float()), SpecDTypeError, "W_k must have the dtype"),
    (dict(X=torch.full((2, 3, 5), float("nan"), dtype=torch.float64)), NonFiniteError, "X"),
    (dict(W_v=torch.full((3, 5), float("inf"), dtype=torch.float64)), NonFiniteError, "W_v"),
    (dict(mask=torch.ones(3, 4, dtype=torch.bool)), MaskError, r"shape \(l_z, l_x\)"),
    (dict(mask=torch.ones(4, 3)), MaskError, "boolean dtype"),
    (dict(mask=torch.zeros(4, 3, dtype=torch.bool)), MaskError, "attends to nothing"),
    (dict(X=[[1.0]]), SpecDTypeError, "torch.Tensor"),
])
def test_bad_attention_input_raises_a_typed_error_naming_it(change, error, words):
    with pytest.raises(error, match=words):
        ti.attention(**(_attention_args() | change))


def test_bad_multi_head_parameters_are_named():
    with pytest.raises(SpecShapeError, match="W_o must have shape"):
        ti.mh_attention(**(_attention_args(H=2) | dict(W_o=_randn(4, 5))))


def test_bad_token_ids_positions_and_hyperparameters_raise_typed_errors():
    W_e, W_p = _randn(4, 6), _randn(4, 5)
    with pytest.raises(TokenRangeError, match=r"\[0, 5\], found 6"):
        ti.token_embedding(torch.tensor([[1, 6]]), W_e)
    with pytest.raises(SpecDTypeError, match="integer token ids"):
        ti.token_embedding(torch.tensor([[1.0]]), W_e)
    with pytest.raises(SequenceLengthError, match="exceed the context size l_max = 5"):
        ti.positional_embedding(4, W_p, offset=2)
    with pytest.raises(ConfigError, match="layer_norm_eps must be a finite number >= 0"):
        ti.layer_norm(_randn(2, 4), _randn(4), _randn(4), eps=-1.0)
    with pytest.raises(ConfigError, match="activation must be one of"):
        ti.mlp(_randn(2, 4), _randn(3, 4), _randn(3), _randn(4, 3), _randn(4), "swish")
    with pytest.raises(SpecShapeError, match="W_u must have shape"):
        ti.unembedding(_randn(2, 3, 4), _randn(7, 5))


def test_an_upstream_gradient_of_the_wrong_shape_is_refused():
    args = _attention_args()
    with pytest.raises(SpecShapeError, match="upstream gradient must have the output's shape"):
        ti.attention_backward(_randn(2, 3, 4), **args)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16_attention_kernels_agree_with_float64_on_cpu():
    """SDPA's flash / memory-efficient kernels (bf16, causal) against the exact CPU result,
    within the documented bf16 tolerance 2^-6 (spec/properties.md)."""
    args = _attention_args(B=2, l_x=16, l_z=16, d=32, d_attn=8, H=4)
    exact = ti.mh_attention(**args, causal=True)
    fast = ti.mh_attention(**{k: v.cuda().bfloat16() for k, v in args.items()}, causal=True)
    assert_close(fast.cpu(), exact, "V_tilde (CUDA bf16)", "reference.forward_agreement",
                 TOLERANCE[torch.bfloat16])
