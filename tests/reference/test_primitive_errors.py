"""Bad input to the reference primitives raises the typed errors of formal_transformers/errors.py,
with a message naming the argument, what the spec expects and what was received
(spec: Algorithms 1-7, 16-23, their edge-case sections)."""

from __future__ import annotations

import numpy as np
import pytest

from formal_transformers.errors import (
    BackwardCacheError,
    ConfigError,
    MaskError,
    NonFiniteError,
    SequenceLengthError,
    SpecDTypeError,
    SpecShapeError,
    TokenRangeError,
)
from reference_numpy import REGISTRY
from reference_numpy.attention import attention, basic_attention, mh_attention
from reference_numpy.backward import attention_backward, unembedding_backward
from reference_numpy.embeddings import positional_embedding, token_embedding
from reference_numpy.layer_norm import layer_norm
from reference_numpy.mlp import mlp
from reference_numpy.unembedding import unembedding, unembedding_loss

rng = np.random.default_rng(0)
d_x, d_z, d_attn, d_out, l_x, l_z, H = 3, 2, 4, 5, 3, 2, 2


def att_args(**change):
    """Valid arguments of Algorithm 4 with entries replaced by ``change``."""
    args = dict(X=rng.normal(size=(d_x, l_x)), Z=rng.normal(size=(d_z, l_z)),
                W_q=rng.normal(size=(d_attn, d_x)), b_q=np.zeros(d_attn),
                W_k=rng.normal(size=(d_attn, d_z)), b_k=np.zeros(d_attn),
                W_v=rng.normal(size=(d_out, d_z)), b_v=np.zeros(d_out))
    return {**args, **change}


def mh_args(**change):
    """Valid arguments of Algorithm 5 (d_mid = 2) with entries replaced by ``change``."""
    args = dict(X=rng.normal(size=(d_x, l_x)), Z=rng.normal(size=(d_z, l_z)),
                W_q=rng.normal(size=(H, d_attn, d_x)), b_q=np.zeros((H, d_attn)),
                W_k=rng.normal(size=(H, d_attn, d_z)), b_k=np.zeros((H, d_attn)),
                W_v=rng.normal(size=(H, 2, d_z)), b_v=np.zeros((H, 2)),
                W_o=rng.normal(size=(d_out, H * 2)), b_o=np.zeros(d_out))
    return {**args, **change}


def mlp_args(**change):
    args = dict(X=rng.normal(size=(3, 2)), W_mlp1=rng.normal(size=(5, 3)), b_mlp1=np.zeros(5),
                W_mlp2=rng.normal(size=(3, 5)), b_mlp2=np.zeros(3), activation="gelu")
    return {**args, **change}


# ---- token ids and positions -------------------------------------------------------------

@pytest.mark.parametrize("v,error,message", [
    (5, TokenRangeError, r"v must hold token ids in \[0, N_V - 1\] = \[0, 4\], found 5"),
    (-1, TokenRangeError, r"found -1"),
    (1.0, SpecDTypeError, r"v must be one integer token id, got float"),
    (True, SpecDTypeError, r"v must be one integer token id, got bool"),
    (np.array([1, 2]), SpecDTypeError, r"v must be one integer token id, got ndarray"),
])
def test_token_id_outside_the_vocabulary_is_rejected(v, error, message):
    with pytest.raises(error, match=message):
        token_embedding(v, np.zeros((2, 5)))


@pytest.mark.parametrize("t,error,message", [
    (4, SequenceLengthError, r"t must be a position in \[0, l_max - 1\] = \[0, 3\], got 4"),
    (-1, SequenceLengthError, r"got -1"),
    (0.0, SpecDTypeError, r"t must be an integer position, got float"),
])
def test_position_beyond_the_context_is_rejected(t, error, message):
    with pytest.raises(error, match=message):
        positional_embedding(t, np.zeros((2, 4)))


def test_unembedding_target_outside_the_vocabulary_is_rejected():
    with pytest.raises(TokenRangeError, match=r"y must hold token ids .* found 3"):
        unembedding_loss(np.ones(2), np.zeros((3, 2)), 3)


# ---- shapes ------------------------------------------------------------------------------

@pytest.mark.parametrize("change,message", [
    ({"X": np.zeros(3)}, r"X must have shape \(d_x, l_x\), got \(3,\)"),
    ({"W_q": np.zeros((d_attn, d_x + 1))}, rf"W_q must have shape \(d_attn, {d_x}\), got"),
    ({"b_q": np.zeros(d_attn + 1)}, rf"b_q must have shape \({d_attn},\), got \({d_attn + 1},\)"),
    ({"W_k": np.zeros((d_attn + 1, d_z))}, rf"W_k must have shape \({d_attn}, {d_z}\)"),
    ({"W_v": np.zeros((d_out, d_z + 1))}, rf"W_v must have shape \(d_out, {d_z}\)"),
    ({"b_v": np.zeros(d_out - 1)}, rf"b_v must have shape \({d_out},\)"),
    ({"W_q": np.zeros((0, d_x)), "W_k": np.zeros((0, d_z)), "b_q": np.zeros(0),
      "b_k": np.zeros(0)}, r"d_attn >= 1"),
    ({"X": [[1.0]]}, r"X must be an array of shape \(d_x, l_x\), got list"),
])
def test_attention_rejects_mis_shaped_inputs_naming_the_argument(change, message):
    with pytest.raises(SpecShapeError, match=message):
        attention(**att_args(**change))


@pytest.mark.parametrize("change,message", [
    ({"W_q": np.zeros((d_attn, d_x))}, r"W_q must have shape \(H, d_attn, d_x\)"),
    ({"b_k": np.zeros((H + 1, d_attn))}, rf"b_k must have shape \({H}, {d_attn}\)"),
    ({"W_o": np.zeros((d_out, 3))}, rf"W_o must have shape \(d_out, {H * 2}\), got \({d_out}, 3\)"),
    ({"b_o": np.zeros(d_out + 1)}, rf"b_o must have shape \({d_out},\)"),
    ({"W_q": np.zeros((0, d_attn, d_x))}, r"at least one head"),
])
def test_mh_attention_rejects_mis_shaped_parameters_naming_the_argument(change, message):
    with pytest.raises(SpecShapeError, match=message):
        mh_attention(**mh_args(**change))


def test_basic_attention_rejects_a_matrix_query():
    a = att_args()
    with pytest.raises(SpecShapeError, match=r"e must have shape \(d_x,\), got \(3, 3\)"):
        basic_attention(a.pop("X"), a.pop("Z"), **a)


@pytest.mark.parametrize("call,message", [
    (lambda: layer_norm(np.ones(3), np.ones(2), np.zeros(3), 0.0),
     r"gamma must have shape \(3,\), got \(2,\)"),
    (lambda: unembedding(np.ones(3), np.ones((4, 2))), r"W_u must have shape \(N_V, 3\)"),
    (lambda: mlp(**mlp_args(W_mlp2=np.zeros((5, 3)))), r"W_mlp2 must have shape \(3, 5\)"),
    (lambda: token_embedding(0, np.zeros(3)), r"W_e must have shape \(d_e, N_V\)"),
])
def test_other_primitives_reject_mis_shaped_arguments(call, message):
    with pytest.raises(SpecShapeError, match=message):
        call()


# ---- values and dtypes -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["X", "Z", "W_q", "b_k", "W_v"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_attention_rejects_non_finite_values(name, bad):
    arr = att_args()[name].copy()
    arr.flat[0] = bad
    with pytest.raises(NonFiniteError, match=f"{name} must be finite"):
        attention(**att_args(**{name: arr}))


@pytest.mark.parametrize("call,name", [
    (lambda: layer_norm(np.array([1.0, np.nan]), np.ones(2), np.zeros(2), 0.0), "e"),
    (lambda: layer_norm(np.array([1.0, 2.0]), np.array([np.inf, 1.0]), np.zeros(2), 0.0),
     "gamma"),
    (lambda: mlp(**mlp_args(b_mlp1=np.full(5, np.nan))), "b_mlp1"),
    (lambda: unembedding(np.array([np.inf]), np.ones((2, 1))), "e"),
    (lambda: token_embedding(0, np.full((2, 2), np.nan)), "W_e"),
    (lambda: mh_attention(**mh_args(W_o=np.full((d_out, 4), np.nan))), "W_o"),
])
def test_other_primitives_reject_non_finite_values(call, name):
    with pytest.raises(NonFiniteError, match=f"{name} must be finite"):
        call()


def test_integer_arrays_are_rejected_where_the_spec_says_real():
    with pytest.raises(SpecDTypeError, match="X must be a floating-point array, got dtype int"):
        attention(**att_args(X=np.ones((d_x, l_x), dtype=int)))


# ---- masks -------------------------------------------------------------------------------

@pytest.mark.parametrize("fn,args", [(attention, att_args), (mh_attention, mh_args)],
                         ids=["attention", "mhattention"])
@pytest.mark.parametrize("Mask,message", [
    (np.ones((l_x, l_z), dtype=bool),
     rf"shape \(l_z, l_x\) = \({l_z}, {l_x}\), got \({l_x}, {l_z}\)"),
    (np.ones((l_z, l_x), dtype=int), r"Mask must have a boolean dtype, got int"),
    (np.array([[True, False, True], [True, False, False]]),
     r"Mask column 1 is all zeros: query token 1 attends to nothing"),
])
def test_malformed_or_fully_masked_masks_are_rejected(fn, args, Mask, message):
    with pytest.raises(MaskError, match=message):
        fn(**args(), Mask=Mask)


def test_an_empty_context_is_rejected():
    with pytest.raises(SequenceLengthError, match="Z .* must hold at least one token"):
        attention(**att_args(Z=np.zeros((d_z, 0))))
    a = att_args()
    with pytest.raises(SequenceLengthError, match="E_ctx .* must hold at least one token"):
        basic_attention(a["X"][:, 0], np.zeros((d_z, 0)), *(a[k] for k in list(a)[2:]))


# ---- hyperparameters ---------------------------------------------------------------------

def test_layer_norm_of_a_constant_vector_with_eps_zero_is_rejected():
    """Algorithm 6 edge cases: v = 0 and eps = 0 would divide by zero."""
    with pytest.raises(NonFiniteError, match=r"constant vector e with eps = 0"):
        layer_norm(np.full(4, 3.0), np.ones(4), np.zeros(4), 0.0)


@pytest.mark.parametrize("eps", [-1e-5, float("nan"), float("inf"), True, "1e-5", None])
def test_layer_norm_eps_outside_its_domain_is_a_config_error(eps):
    with pytest.raises(ConfigError, match=r"layer_norm_eps must be a finite number >= 0"):
        layer_norm(np.array([1.0, 2.0]), np.ones(2), np.zeros(2), eps)


def test_unknown_activation_is_a_config_error():
    with pytest.raises(ConfigError, match=r"activation must be one of .* got 'swish'"):
        mlp(**mlp_args(activation="swish"))


# ---- backward passes ---------------------------------------------------------------------

@pytest.mark.parametrize("alg_id", ["token_embedding", "positional_embedding", "attention",
                                    "mhattention", "layer_norm", "mlp", "unembedding"])
def test_backward_without_its_forward_cache_is_rejected(alg_id):
    backward = REGISTRY[f"{alg_id}_backward"]
    with pytest.raises(BackwardCacheError, match=r"cache lacks .* run \w+\(\.\.\., cache=cache\)"):
        backward(np.ones(2), {})
    with pytest.raises(BackwardCacheError, match="cache must be the dict"):
        backward(np.ones(2), None)


def test_unembedding_backward_needs_the_loss_cache_not_the_probabilities_cache():
    """Algorithm 23 differentiates -log p[y]: the plain forward's cache has no target y."""
    cache: dict = {}
    unembedding(np.ones(2), np.ones((3, 2)), cache=cache)
    with pytest.raises(BackwardCacheError, match=r"\['y'\]: run unembedding_loss"):
        unembedding_backward(1.0, cache)


@pytest.mark.parametrize("d_out,error,message", [
    (np.ones((d_out, l_x + 1)), SpecShapeError, rf"dV_tilde must have shape \({d_out}, {l_x}\)"),
    (np.full((d_out, l_x), np.nan), NonFiniteError, r"dV_tilde must be finite"),
])
def test_backward_rejects_an_upstream_gradient_of_the_wrong_shape_or_value(d_out, error,
                                                                           message):
    cache: dict = {}
    attention(**att_args(), cache=cache)
    with pytest.raises(error, match=message):
        attention_backward(d_out, cache)


def test_unembedding_backward_takes_a_scalar_upstream_gradient():
    cache: dict = {}
    unembedding_loss(np.ones(2), np.ones((3, 2)), 0, cache=cache)
    with pytest.raises(SpecShapeError, match=r"dloss must have shape \(\)"):
        unembedding_backward(np.ones(3), cache)
