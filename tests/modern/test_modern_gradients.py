"""The hand-written backward passes of the modern primitives (spec: Algorithms 29-31) against
central finite differences (gradient.finite_difference, relative 1e-6) and against torch
autograd of independent float64 torch forwards (reference.gradient_agreement, 1e-10) -- the
same tolerances as Algorithms 17-23 in tests/reference/test_gradients.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import reference_numpy as ref
from formal_transformers.rope import Rope, RopeScaling
from reference_numpy.rope import rope_frequencies
from tests.reference.assertions import assert_gradients_close, finite_difference_gradients
from tests.reference.strategies import REFERENCE_SETTINGS, Case, seeds

FD_RTOL, TORCH_RTOL = 1e-6, 1e-10


def torch_rope(X, positions, config):
    """RoPE by 2x2 rotation matrices built per pair (an independent derivation)."""
    d = X.shape[0]
    d_r = config.rotated_features(d)
    omega = torch.from_numpy(rope_frequencies(d_r, config))
    half = d_r // 2
    idx = [(i, i + half) if config.layout == "half_split" else (2 * i, 2 * i + 1)
           for i in range(half)]
    R = torch.eye(d, dtype=torch.float64).repeat(X.shape[1], 1, 1)  # (l, d, d)
    for t, p in enumerate(positions):
        for i, (a, b) in enumerate(idx):
            c, s = torch.cos(p * omega[i]), torch.sin(p * omega[i])
            R[t, a, a], R[t, a, b], R[t, b, a], R[t, b, b] = c, -s, s, c
    return torch.einsum("tij,jt->it", R, X)


def torch_rmsnorm(e, gamma, eps, offset):
    return e / torch.sqrt((e * e).mean() + eps) * (gamma + float(offset))


GATES = {"silu": lambda u: u * torch.sigmoid(u), "gelu": F.gelu,
         "gelu_tanh": lambda u: F.gelu(u, approximate="tanh")}


def torch_gated_mlp(X, W_gate, W_up, W_down, activation, b_gate=None, b_up=None, b_down=None):
    G = W_gate @ X + (0 if b_gate is None else b_gate[:, None])
    U = W_up @ X + (0 if b_up is None else b_up[:, None])
    return W_down @ (GATES[activation](G) * U) + (0 if b_down is None else b_down[:, None])


@st.composite
def rope_cases(draw):
    pairs, rest, l = draw(st.integers(1, 3)), draw(st.integers(0, 2)), draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["none", "linear", "llama3"]))
    scaling = RopeScaling(kind, factor=4.0, original_max_position=64) if kind != "none" \
        else RopeScaling()
    config = Rope(draw(st.sampled_from(["half_split", "interleaved"])), 10000.0,
                  2 * pairs / (2 * pairs + rest), scaling)
    seed = draw(seeds())
    rng = np.random.default_rng(seed)
    return Case({"X": rng.standard_normal((2 * pairs + rest, l))},
                {"positions": rng.integers(0, 50, l), "config": config}, seed)


@st.composite
def rmsnorm_cases(draw):
    d_e, seed = draw(st.integers(1, 6)), draw(seeds())
    rng = np.random.default_rng(seed)
    return Case({"e": rng.standard_normal(d_e) + rng.standard_normal(),
                 "gamma": 1 + 0.3 * rng.standard_normal(d_e)},
                {"eps": draw(st.sampled_from([0.0, 1e-5, 0.1])), "offset": draw(st.booleans())},
                seed)


@st.composite
def gated_mlp_cases(draw):
    d_e, d_mlp, l = (draw(st.integers(1, 4)) for _ in range(3))
    seed, bias = draw(seeds()), draw(st.booleans())
    rng = np.random.default_rng(seed)
    arrays = {"X": rng.standard_normal((d_e, l)), "W_gate": rng.standard_normal((d_mlp, d_e)),
              "W_up": rng.standard_normal((d_mlp, d_e)),
              "W_down": rng.standard_normal((d_e, d_mlp))}
    if bias:
        arrays |= {"b_gate": rng.standard_normal(d_mlp), "b_up": rng.standard_normal(d_mlp),
                   "b_down": rng.standard_normal(d_e)}
    return Case(arrays, {"activation": draw(st.sampled_from(list(GATES)))}, seed)


@dataclass(frozen=True)
class Primitive:
    name: str
    number: int
    strategy: Any
    forward: Callable
    backward: Callable
    oracle: Callable
    rename: tuple[tuple[str, str], ...] = ()


PRIMITIVES = [
    Primitive("rope", 29, rope_cases(), ref.rope, ref.rope_backward, torch_rope),
    Primitive("rmsnorm", 30, rmsnorm_cases(), ref.rmsnorm, ref.rmsnorm_backward, torch_rmsnorm),
    Primitive("gated_mlp", 31, gated_mlp_cases(), ref.gated_mlp, ref.gated_mlp_backward,
              torch_gated_mlp),
]
IDS = [f"{p.number}-{p.name}" for p in PRIMITIVES]


def _run(p: Primitive, case: Case) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    cache: dict = {}
    out = p.forward(**case.kwargs(), cache=cache)
    d_out = np.random.default_rng(case.seed + 1).normal(size=out.shape)
    grads = p.backward(d_out, cache)
    assert set(grads) == set(case.arrays), (p.name, sorted(grads), sorted(case.arrays))
    return d_out, grads


@pytest.mark.parametrize("p", PRIMITIVES, ids=IDS)
@REFERENCE_SETTINGS
@given(data=st.data())
def test_modern_backward_matches_central_finite_differences(p, data):
    """gradient.finite_difference for Algorithms 29-31 (relative error < 1e-6)."""
    case = data.draw(p.strategy, label="case")
    d_out, grads = _run(p, case)
    fd = finite_difference_gradients(lambda: float(np.sum(d_out * p.forward(**case.kwargs()))),
                                     case.arrays)
    assert_gradients_close(grads, fd, f"Algorithm {p.number} vs finite differences",
                           f"spec: Algorithm {p.number}", FD_RTOL)


@pytest.mark.parametrize("p", PRIMITIVES, ids=IDS)
@REFERENCE_SETTINGS
@given(data=st.data())
def test_modern_backward_matches_torch_autograd_in_float64(p, data):
    """reference.gradient_agreement for Algorithms 29-31: autograd of an independent torch
    float64 forward agrees with the hand-written backward to 1e-10 (relative)."""
    case = data.draw(p.strategy, label="case")
    d_out, grads = _run(p, case)
    leaves = {k: torch.tensor(a, requires_grad=True) for k, a in case.arrays.items()}
    out = p.oracle(**leaves, **case.options)
    np.testing.assert_allclose(out.detach().numpy(), p.forward(**case.kwargs()), rtol=1e-12,
                               atol=1e-12)
    (out * torch.from_numpy(d_out)).sum().backward()
    assert_gradients_close(grads, {k: t.grad.numpy() for k, t in leaves.items()},
                           f"Algorithm {p.number} vs torch autograd", f"spec: Algorithm {p.number}",
                           TORCH_RTOL)
