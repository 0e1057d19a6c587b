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
from hypothesis import given
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
