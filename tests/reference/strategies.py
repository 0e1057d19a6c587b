"""Hypothesis strategies for the reference's primitives (spec: Algorithms 1-7, 16).

Every strategy draws small sizes and a seed, and builds float64 arrays from
``numpy.random.default_rng(seed)``, so a failing example shrinks to small sizes and is
reproduced exactly by its seed. Each yields a :class:`Case`: ``arrays`` are the real-valued
inputs and parameters the forward differentiates, keyed by their spec names, in the forward's
order; ``options`` are the rest (Mask, eps, activation, token ids). The forward is called as
``fn(**case.arrays, **case.options)``; its backward returns gradients keyed like ``arrays``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from formal_transformers.hyperparameters import ACTIVATIONS

# One settings object for this directory's property tests: few, small examples (CI budget).
REFERENCE_SETTINGS = settings(max_examples=15, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])

MASK_KINDS = ("none", "causal", "random")


@dataclass(frozen=True)
class Case:
    """One drawn example: differentiable ``arrays`` and non-differentiable ``options``."""

    arrays: dict[str, np.ndarray]
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the forward: ``fn(**case.kwargs())``."""
        return {**self.arrays, **self.options}


def sizes(max_size: int = 4, min_size: int = 1) -> st.SearchStrategy[int]:
    """A small dimension or length."""
    return st.integers(min_size, max_size)


def seeds() -> st.SearchStrategy[int]:
    return st.integers(0, 2**32 - 1)


def make_mask(rng: np.random.Generator, kind: str, l_z: int, l_x: int) -> np.ndarray | None:
    """None (all ones), the causal mask [t_z <= t_x], or a random mask whose every column
    keeps at least one context token (a fully masked column is undefined, spec: Algorithm 4)."""
    if kind == "none":
        return None
    if kind == "causal":
        return np.arange(l_z)[:, None] <= np.arange(l_x)[None, :]
    Mask = rng.random((l_z, l_x)) < 0.6
    Mask[rng.integers(0, l_z, size=l_x), np.arange(l_x)] = True
    return Mask


def qkv_parameters(rng: np.random.Generator, d_attn: int, d_out: int, d_x: int, d_z: int,
                   H: int | None = None) -> dict[str, np.ndarray]:
    """W_q, b_q, W_k, b_k, W_v, b_v of one head, or of H heads stacked on axis 0."""
    lead = () if H is None else (H,)
    return {"W_q": rng.normal(size=lead + (d_attn, d_x)), "b_q": rng.normal(size=lead + (d_attn,)),
            "W_k": rng.normal(size=lead + (d_attn, d_z)), "b_k": rng.normal(size=lead + (d_attn,)),
            "W_v": rng.normal(size=lead + (d_out, d_z)), "b_v": rng.normal(size=lead + (d_out,))}


def _sequences(rng: np.random.Generator, d_x: int, l_x: int, d_z: int, l_z: int,
               self_attention: bool) -> dict[str, np.ndarray]:
    X = rng.normal(size=(d_x, l_x))
    return {"X": X, "Z": X.copy() if self_attention else rng.normal(size=(d_z, l_z))}


@st.composite
def attention_cases(draw, max_size: int = 4, mask_kinds: tuple[str, ...] = MASK_KINDS,
                    l_x: int | None = None, self_attention: bool = False) -> Case:
    """Algorithm 4: X (d_x, l_x), Z (d_z, l_z), one head's W_qkv, Mask.

    ``self_attention=True`` draws d_z = d_x, l_z = l_x and Z equal to (a copy of) X.
    """
    d_x, d_z, d_attn, d_out, l_z = (draw(sizes(max_size)) for _ in range(5))
    l_x = l_x if l_x is not None else draw(sizes(max_size))
    kind, seed = draw(st.sampled_from(mask_kinds)), draw(seeds())
    if kind == "causal" or self_attention:
        l_z = l_x  # the causal mask is square
    d_z = d_x if self_attention else d_z
    rng = np.random.default_rng(seed)
    arrays = {**_sequences(rng, d_x, l_x, d_z, l_z, self_attention),
              **qkv_parameters(rng, d_attn, d_out, d_x, d_z)}
    return Case(arrays, {"Mask": make_mask(rng, kind, l_z, l_x)}, seed)


@st.composite
def mh_attention_cases(draw, max_size: int = 3, mask_kinds: tuple[str, ...] = MASK_KINDS,
                       H: int | None = None, self_attention: bool = False) -> Case:
    """Algorithm 5: X, Z, stacked heads (H, ...), W_o (d_out, H*d_mid), b_o, Mask.

    ``self_attention=True`` draws d_z = d_x, l_z = l_x and Z equal to (a copy of) X.
    """
    d_x, d_z, d_attn, d_mid, d_out, l_x, l_z = (draw(sizes(max_size)) for _ in range(7))
    H = H if H is not None else draw(sizes(3))
    kind, seed = draw(st.sampled_from(mask_kinds)), draw(seeds())
    if kind == "causal" or self_attention:
        l_z = l_x
    d_z = d_x if self_attention else d_z
    rng = np.random.default_rng(seed)
    arrays = {**_sequences(rng, d_x, l_x, d_z, l_z, self_attention),
              **qkv_parameters(rng, d_attn, d_mid, d_x, d_z, H=H),
              "W_o": rng.normal(size=(d_out, H * d_mid)), "b_o": rng.normal(size=(d_out,))}
    return Case(arrays, {"Mask": make_mask(rng, kind, l_z, l_x)}, seed)


@st.composite
def layer_norm_cases(draw, eps_values: tuple[float, ...] = (0.0, 1e-5, 0.1)) -> Case:
    """Algorithm 6: e, gamma, beta (d_e,) with d_e >= 2 (so that v > 0), and eps."""
    d_e, eps, seed = draw(sizes(6, min_size=2)), draw(st.sampled_from(eps_values)), draw(seeds())
    rng = np.random.default_rng(seed)
    arrays = {"e": rng.normal(size=d_e), "gamma": rng.normal(size=d_e),
              "beta": rng.normal(size=d_e)}
    return Case(arrays, {"eps": eps}, seed)


@st.composite
def mlp_cases(draw, activations: tuple[str, ...] = ACTIVATIONS) -> Case:
    """Algorithm 16: X (d_e, l), W_mlp1 (d_mlp, d_e), b_mlp1, W_mlp2 (d_e, d_mlp), b_mlp2."""
    d_e, d_mlp, l = draw(sizes(4)), draw(sizes(6)), draw(sizes(4))
    activation, seed = draw(st.sampled_from(activations)), draw(seeds())
    rng = np.random.default_rng(seed)
    arrays = {"X": rng.normal(size=(d_e, l)), "W_mlp1": rng.normal(size=(d_mlp, d_e)),
              "b_mlp1": rng.normal(size=d_mlp), "W_mlp2": rng.normal(size=(d_e, d_mlp)),
              "b_mlp2": rng.normal(size=d_e)}
    return Case(arrays, {"activation": activation}, seed)


@st.composite
def token_embedding_cases(draw) -> Case:
    """Algorithm 1: W_e (d_e, N_V) and a token id v in [N_V]."""
    d_e, N_V, seed = draw(sizes(4)), draw(sizes(6)), draw(seeds())
    rng = np.random.default_rng(seed)
    return Case({"W_e": rng.normal(size=(d_e, N_V))}, {"v": draw(st.integers(0, N_V - 1))}, seed)


@st.composite
def positional_embedding_cases(draw) -> Case:
    """Algorithm 2: W_p (d_e, l_max) and a position t in [l_max]."""
    d_e, l_max, seed = draw(sizes(4)), draw(sizes(6)), draw(seeds())
    rng = np.random.default_rng(seed)
    return Case({"W_p": rng.normal(size=(d_e, l_max))}, {"t": draw(st.integers(0, l_max - 1))},
                seed)


@st.composite
def unembedding_cases(draw, with_target: bool = True) -> Case:
    """Algorithm 7 (and the loss of Algorithm 23): e (d_e,), W_u (N_V, d_e), target y."""
    d_e, N_V, seed = draw(sizes(4)), draw(sizes(6)), draw(seeds())
    rng = np.random.default_rng(seed)
    options = {"y": draw(st.integers(0, N_V - 1))} if with_target else {}
    return Case({"e": rng.normal(size=d_e), "W_u": rng.normal(size=(N_V, d_e))}, options, seed)
