"""The hand-written backward passes (spec: Algorithms 17-23) against central finite differences
(property gradient.finite_difference) and against torch autograd in float64 on the same
parameters (property reference.gradient_agreement), plus the laws the gradients obey.

The torch oracles below are written with plain torch ops from the forward pseudocode, not
taken from torch_impl, so that they are an independent second derivation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

from reference_numpy import REGISTRY
from reference_numpy.attention import attention, mh_attention
from reference_numpy.backward import (
    attention_backward,
    layer_norm_backward,
    mh_attention_backward,
    unembedding_backward,
)
from reference_numpy.layer_norm import layer_norm
from reference_numpy.unembedding import unembedding_loss

from .assertions import (
    assert_allclose,
    assert_gradients_close,
    finite_difference_gradients,
)
from .strategies import (
    REFERENCE_SETTINGS,
    Case,
    attention_cases,
    layer_norm_cases,
    mh_attention_cases,
    mlp_cases,
    positional_embedding_cases,
    token_embedding_cases,
    unembedding_cases,
)

FD_RTOL = 1e-6  # spec/properties.md, gradient.finite_difference
TORCH_RTOL = 1e-10  # float64 autograd (reference.gradient_agreement)


# ---- torch float64 oracles, one per forward, from the pseudocode --------------------------

def torch_attention(X, Z, W_q, b_q, W_k, b_k, W_v, b_v, Mask=None):
    Q, K, V = W_q @ X + b_q[:, None], W_k @ Z + b_k[:, None], W_v @ Z + b_v[:, None]
    S = K.T @ Q / math.sqrt(W_q.shape[0])
    if Mask is not None:
        S = S.masked_fill(~torch.as_tensor(Mask), float("-inf"))
    return V @ torch.softmax(S, dim=0)


def torch_mh_attention(X, Z, W_q, b_q, W_k, b_k, W_v, b_v, W_o, b_o, Mask=None):
    Y = torch.cat([torch_attention(X, Z, W_q[h], b_q[h], W_k[h], b_k[h], W_v[h], b_v[h], Mask)
                   for h in range(W_q.shape[0])], dim=0)
    return W_o @ Y + b_o[:, None]


def torch_layer_norm(e, gamma, beta, eps):
    m = e.mean()
    v = ((e - m) ** 2).mean()
    return (e - m) / torch.sqrt(v + eps) * gamma + beta


TORCH_ACTIVATIONS = {"relu": torch.relu, "gelu": F.gelu,
                     "gelu_tanh": lambda u: F.gelu(u, approximate="tanh")}


def torch_mlp(X, W_mlp1, b_mlp1, W_mlp2, b_mlp2, activation):
    G = TORCH_ACTIVATIONS[activation](W_mlp1 @ X + b_mlp1[:, None])
    return W_mlp2 @ G + b_mlp2[:, None]


def torch_unembedding_loss(e, W_u, y):
    return -torch.log_softmax(W_u @ e, dim=0)[y]


@dataclass(frozen=True)
class Primitive:
    """A forward with its backward (spec: Algorithm ``backward_number``) and torch oracle."""

    name: str
    backward_number: int
    strategy: Any
    forward: Any
    backward: Any
    oracle: Any
    scalar_output: bool = False


PRIMITIVES = [
    Primitive("token_embedding", 17, token_embedding_cases(), REGISTRY["token_embedding"],
              REGISTRY["token_embedding_backward"], lambda W_e, v: W_e[:, v]),
    Primitive("positional_embedding", 18, positional_embedding_cases(),
              REGISTRY["positional_embedding"], REGISTRY["positional_embedding_backward"],
              lambda W_p, t: W_p[:, t]),
    Primitive("attention", 19, attention_cases(), attention, attention_backward,
              torch_attention),
    Primitive("mhattention", 20, mh_attention_cases(), mh_attention, mh_attention_backward,
              torch_mh_attention),
    Primitive("layer_norm", 21, layer_norm_cases(), layer_norm, layer_norm_backward,
              torch_layer_norm),
    Primitive("mlp", 22, mlp_cases(), REGISTRY["mlp"], REGISTRY["mlp_backward"], torch_mlp),
    Primitive("unembedding_loss", 23, unembedding_cases(), unembedding_loss,
              unembedding_backward, torch_unembedding_loss, scalar_output=True),
]
IDS = [f"{p.backward_number}-{p.name}" for p in PRIMITIVES]
BY_NAME = {p.name: p for p in PRIMITIVES}
EMBEDDINGS = [BY_NAME["token_embedding"], BY_NAME["positional_embedding"]]


def upstream(p: Primitive, case: Case) -> np.ndarray:
    """A random upstream gradient d_out of the forward's output shape (scalar for the loss)."""
    rng = np.random.default_rng(case.seed + 1)
    if p.scalar_output:
        return np.asarray(rng.uniform(0.5, 2.0))
    return rng.normal(size=np.shape(p.forward(**case.kwargs())))


def backward_of(p: Primitive, case: Case, d_out: np.ndarray) -> dict[str, np.ndarray]:
    cache: dict = {}
    p.forward(**case.kwargs(), cache=cache)
    return p.backward(d_out, cache)


def gradients(name: str, case: Case) -> dict[str, np.ndarray]:
    """The backward of primitive ``name`` for a random upstream gradient."""
    p = BY_NAME[name]
    return backward_of(p, case, upstream(p, case))


@pytest.mark.parametrize("p", PRIMITIVES, ids=IDS)
@REFERENCE_SETTINGS
@given(data=st.data())
def test_backward_matches_central_finite_differences(p: Primitive, data):
    """gradient.finite_difference for Algorithms 17-23: <d_out, f(theta)> differentiated by
    central differences equals the hand-written backward, relative error < 1e-6."""
    case = data.draw(p.strategy, label="case")
    d_out = upstream(p, case)
    grads = backward_of(p, case, d_out)
    fd = finite_difference_gradients(lambda: float(np.sum(d_out * p.forward(**case.kwargs()))),
                                     case.arrays)
    assert_gradients_close(grads, fd, f"Algorithm {p.backward_number} vs finite differences "
                           f"(seed {case.seed})", f"spec: Algorithm {p.backward_number}", FD_RTOL)


@pytest.mark.parametrize("p", PRIMITIVES, ids=IDS)
@REFERENCE_SETTINGS
@given(data=st.data())
def test_backward_matches_torch_autograd_in_float64(p: Primitive, data):
    """reference.gradient_agreement for Algorithms 17-23: torch autograd of an independent
    float64 torch forward agrees with the hand-written backward to 1e-10 (relative)."""
    case = data.draw(p.strategy, label="case")
    d_out = upstream(p, case)
    grads = backward_of(p, case, d_out)
    leaves = {k: torch.tensor(a, dtype=torch.float64, requires_grad=True)
              for k, a in case.arrays.items()}
    out = p.oracle(**leaves, **case.options)
    assert_allclose(out.detach().numpy(), p.forward(**case.kwargs()),
                    f"{p.name} forward vs torch", "reference.forward_agreement", 1e-12, 1e-12)
    (out * torch.as_tensor(d_out)).sum().backward()
    autograd = {k: t.grad.numpy() for k, t in leaves.items()}
    assert_gradients_close(grads, autograd, f"Algorithm {p.backward_number} vs torch autograd "
                           f"(seed {case.seed})", f"spec: Algorithm {p.backward_number}",
                           TORCH_RTOL)


@pytest.mark.parametrize("p", PRIMITIVES, ids=IDS)
@REFERENCE_SETTINGS
@given(data=st.data())
def test_every_gradient_has_the_shape_of_what_it_differentiates(p: Primitive, data):
    """Each backward returns exactly one gradient per differentiable input and parameter."""
    case = data.draw(p.strategy, label="case")
    grads = backward_of(p, case, upstream(p, case))
    assert set(grads) == set(case.arrays), f"{p.name}: {sorted(grads)} != {sorted(case.arrays)}"
    for k, a in case.arrays.items():
        assert grads[k].shape == a.shape, f"{p.name}: gradient of {k} {grads[k].shape} != {a.shape}"



# ---- laws the gradients obey -------------------------------------------------------------

@pytest.mark.parametrize("forward,backward", [(attention, attention_backward),
                                              (mh_attention, mh_attention_backward)],
                         ids=["19-attention", "20-mhattention"])
@REFERENCE_SETTINGS
@given(data=st.data())
def test_self_attention_gradient_of_X_is_dX_plus_dZ(forward, backward, data):
    """Algorithms 19-20, self-attention: with Z = X the sequence feeds both roles, so the
    gradient of f(X) = Attention(X, X) is dX + dZ."""
    cases = attention_cases if forward is attention else mh_attention_cases
    case = data.draw(cases(self_attention=True), label="case")
    params = {k: a for k, a in case.arrays.items() if k not in ("X", "Z")}
    X, Mask = case.arrays["X"], case.options["Mask"]
    d_out = np.random.default_rng(case.seed).normal(size=forward(X, X, **params).shape)
    cache: dict = {}
    forward(X, X, **params, Mask=Mask, cache=cache)
    grads = backward(d_out, cache)
    fd = finite_difference_gradients(
        lambda: float(np.sum(d_out * forward(X, X, **params, Mask=Mask))), {"X": X})
    assert_gradients_close({"X": grads["X"] + grads["Z"]}, fd, "self-attention dX + dZ",
                           "spec: Algorithm 19, self-attention", FD_RTOL)


@REFERENCE_SETTINGS
@given(case=attention_cases())
def test_key_bias_gradient_vanishes_by_softmax_shift_invariance(case: Case):
    """b_k adds q^T b_k to every score of a column, which the softmax ignores
    (softmax.shift_invariance): Algorithm 19 line 7 gives db_k = dK 1 = Q dS^T 1 = 0, since
    every column of dS sums to zero."""
    grads = gradients("attention", case)
    scale = max(1.0, float(np.abs(grads["W_k"]).max()))
    assert_allclose(grads["b_k"], np.zeros_like(grads["b_k"]), "db_k",
                    "spec: Algorithm 19 L7", atol=1e-12 * scale)


@REFERENCE_SETTINGS
@given(case=attention_cases(mask_kinds=("random",)))
def test_context_token_masked_for_every_query_gets_no_gradient(case: Case):
    """mask.no_influence, gradient form: if Mask[t_z, :] = 0, column t_z of dZ is exactly 0
    (masked entries of A are 0, so Algorithm 19 line 3 gives them no score gradient)."""
    Mask = case.options["Mask"].copy()
    assume(Mask.shape[0] >= 2)
    Mask[0, :] = False
    Mask[1, :] = True  # every query keeps at least one context token
    masked = Case(case.arrays, {"Mask": Mask}, case.seed)
    grads = gradients("attention", masked)
    assert np.all(grads["Z"][:, 0] == 0.0), f"dZ[:, 0] = {grads['Z'][:, 0]} for a masked token"


@REFERENCE_SETTINGS
@given(case=mh_attention_cases(mask_kinds=("causal",), self_attention=True),
       t=st.integers(0, 2))
def test_causal_self_attention_gradient_ignores_future_columns(case: Case, t: int):
    """causal.zero_jacobian: under the causal mask, output column t does not depend on input
    columns t' > t, so an upstream gradient in column t alone gives dX + dZ = 0 beyond t."""
    params = {k: a for k, a in case.arrays.items() if k not in ("X", "Z")}
    X, Mask = case.arrays["X"], case.options["Mask"]
    t = min(t, X.shape[1] - 1)
    cache: dict = {}
    out = mh_attention(X, X, **params, Mask=Mask, cache=cache)
    d_out = np.zeros_like(out)
    d_out[:, t] = 1.0
    grads = mh_attention_backward(d_out, cache)
    future = (grads["X"] + grads["Z"])[:, t + 1:]
    assert np.all(future == 0.0), f"columns > {t} of dX + dZ are {future}, not 0"


@REFERENCE_SETTINGS
@given(case=layer_norm_cases())
def test_layer_norm_input_gradient_sums_to_zero(case: Case):
    """Algorithm 21 prose: layer norm ignores a shift e + c1, so de is orthogonal to 1."""
    p = BY_NAME["layer_norm"]
    d_out, cache = upstream(p, case), {}
    layer_norm(**case.kwargs(), cache=cache)
    de = layer_norm_backward(d_out, cache)["e"]
    # the terms of Alg 21 L5 are of size |de_hat * gamma| / sigma; rounding is relative to them
    scale = np.abs(d_out * case.arrays["gamma"]).max() / np.sqrt(cache["v"] + cache["eps"])
    assert abs(de.sum()) <= 1e-13 * max(1.0, scale) * de.size, de


@REFERENCE_SETTINGS
@given(case=unembedding_cases())
def test_unembedding_weight_gradient_columns_sum_to_zero(case: Case):
    """Algorithm 23 prose: 1^T dz = 1^T (p - e_y) = 0, so every column of dW_u = dz e^T sums
    to zero (the derivative of softmax.shift_invariance)."""
    grads = gradients("unembedding_loss", case)
    col_sums = grads["W_u"].sum(axis=0)
    assert_allclose(col_sums, np.zeros_like(col_sums), "column sums of dW_u",
                    "spec: Algorithm 23 L1", atol=1e-12 * max(1.0, np.abs(grads["W_u"]).max()))


@pytest.mark.parametrize("p", EMBEDDINGS, ids=IDS[:2])
@REFERENCE_SETTINGS
@given(data=st.data())
def test_embedding_gradient_is_zero_outside_the_looked_up_column(p: Primitive, data):
    """Algorithms 17-18 L1-2: only column v (or t) receives the upstream gradient."""
    case = data.draw(p.strategy, label="case")
    d_out = upstream(p, case)
    (name, grad), = backward_of(p, case, d_out).items()
    col = case.options.get("v", case.options.get("t"))
    assert np.array_equal(grad[:, col], d_out)
    assert not np.delete(grad, col, axis=1).any(), f"d{name} is non-zero outside column {col}"
