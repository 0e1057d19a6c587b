"""Hypothesis strategies of the modern primitives (spec: Algorithms 24-31, issue 13).

Same conventions as conformance/strategies.py: small sizes and a seed, arrays from
``numpy.random.default_rng(seed)`` in float64 cast to the dtype under test, every size and
convention passed through the adapter's ``constrain`` hook first. The conventions are drawn
like sizes (rope: "layout", "scaling", "rest" -- the unrotated features, 0 for full rotary;
rmsnorm: "offset"; gated_mlp: "activation", "bias"), so an implementation of one convention
fixes it in ``constrain`` and is then tested against exactly that one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from conformance.strategies import EPS, SCALES, SEEDS, Case, Constrain, random_parameters
from formal_transformers.rope import LAYOUTS, SCALINGS, Rope, RopeScaling
from reference_numpy.activations import GATED_ACTIVATIONS
from reference_numpy.alibi import FORMS as ALIBI_FORMS

THETAS = (10000.0, 100.0, 500000.0)


def _sizes(draw, constrain: Constrain, alg: str, ranges: dict[str, Any]) -> dict[str, Any]:
    """Draw each entry -- a list [lo, hi] is an integer range, a tuple a set of choices --
    then pass the sizes through the adapter's constrain."""
    sizes = {}
    for name, r in ranges.items():
        sizes[name] = draw(st.integers(*r) if isinstance(r, list) else st.sampled_from(r))
    return constrain(alg, sizes)


def rope_scaling(draw, kind: str) -> RopeScaling:
    """A scaling of ``kind``; llama3 contexts L small enough that positions < 64 meet every
    wavelength band (kept, interpolated, divided) for the drawn theta and d_r."""
    if kind == "none":
        return RopeScaling()
    if kind == "linear":
        return RopeScaling("linear", factor=draw(st.sampled_from([1.0, 2.0, 4.0])))
    return RopeScaling("llama3", factor=draw(st.sampled_from([1.0, 8.0])),
                       low_freq_factor=1.0, high_freq_factor=4.0,
                       original_max_position=draw(st.sampled_from([16, 64, 256, 1024])))


def rope_config(sizes: dict[str, Any], scaling: RopeScaling, theta: float) -> Rope:
    d_r = 2 * sizes["pairs"]
    return Rope(layout=sizes["layout"], theta=theta, fraction=d_r / (d_r + sizes["rest"]),
                scaling=scaling)


@st.composite
def rope_cases(draw, constrain: Constrain, dtype: Any, positions: str = "any",
               H: tuple[int, int] = (1, 2), scalings: tuple[str, ...] = SCALINGS,
               theta: float | None = None) -> Case:
    """X (B, H, l, d), positions (l,) and a Rope config for Algorithm 25.

    positions: "consecutive" (offset + 0..l-1, a chunk or cache step at a drawn offset),
    "random" (any integers in [0, 64)) or "any"; ``scalings`` the kinds drawn (before
    constrain); ``theta`` fixes the base (else drawn from THETAS).
    """
    sizes = _sizes(draw, constrain, "rope", {"B": [1, 2], "H": list(H), "l": [1, 5],
                                              "pairs": [1, 3], "rest": [0, 2], "layout": LAYOUTS,
                                              "scaling": scalings})
    config = rope_config(sizes, rope_scaling(draw, sizes["scaling"]),
                         theta or draw(st.sampled_from(THETAS)))
    seed = draw(SEEDS)
    rng = np.random.default_rng(seed)
    d, l = 2 * sizes["pairs"] + sizes["rest"], sizes["l"]
    X = rng.standard_normal((sizes["B"], sizes["H"], l, d)).astype(dtype)
    mode = draw(st.sampled_from(["consecutive", "random"])) if positions == "any" else positions
    p = draw(st.integers(0, 40)) + np.arange(l) if mode == "consecutive" \
        else rng.integers(0, 64, l)
    return Case("rope", sizes, seed, {"X": X, "positions": p.astype(np.int64), "rope": config,
                                    "params": {}})


@st.composite
def rmsnorm_cases(draw, constrain: Constrain, dtype: Any, eps_zero: bool = False,
                  unit_gain: bool = False) -> Case:
    """X (B, l, d_e), gamma, eps and offset for Algorithm 27 (gain gamma + offset near 1;
    exactly 1 with ``unit_gain``: gamma = 1 without offset, gamma = 0 with it)."""
    sizes = _sizes(draw, constrain, "rmsnorm", {"B": [1, 3], "l": [1, 4], "d_e": [1, 6],
                                                 "offset": (False, True)})
    eps = 0.0 if eps_zero else draw(EPS)
    seed = draw(SEEDS)
    rng = np.random.default_rng(seed)
    X = (draw(SCALES) * rng.standard_normal((sizes["B"], sizes["l"], sizes["d_e"]))
         + rng.standard_normal()).astype(dtype)
    gamma = random_parameters({"gamma": (sizes["d_e"],)}, rng, 1.0, np.float64)["gamma"]
    if unit_gain:
        gamma = np.ones_like(gamma)
    gamma = (gamma - 1.0 if sizes["offset"] else gamma).astype(dtype)
    return Case("rmsnorm", sizes, seed, {"X": X, "params": {"gamma": gamma}, "eps": eps,
                                         "offset": bool(sizes["offset"])})


def gated_mlp_shapes(s: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of Algorithm 28 (biases only when s["bias"])."""
    shapes = {"W_gate": (s["d_mlp"], s["d_e"]), "W_up": (s["d_mlp"], s["d_e"]),
              "W_down": (s["d_e"], s["d_mlp"])}
    if s.get("bias", True):
        shapes |= {"b_gate": (s["d_mlp"],), "b_up": (s["d_mlp"],), "b_down": (s["d_e"],)}
    return shapes


@st.composite
def gated_mlp_cases(draw, constrain: Constrain, dtype: Any) -> Case:
    """X (B, l, d_e), the gated MLP's parameters and its activation (Algorithm 28)."""
    sizes = _sizes(draw, constrain, "gated_mlp", {"B": [1, 3], "l": [1, 4], "d_e": [1, 5],
                                                   "d_mlp": [1, 6], "activation": GATED_ACTIVATIONS,
                                                   "bias": (False, True)})
    seed, scale = draw(SEEDS), draw(SCALES)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((sizes["B"], sizes["l"], sizes["d_e"])).astype(dtype)
    params = random_parameters(gated_mlp_shapes(sizes), rng, scale, dtype)
    return Case("gated_mlp", sizes, seed, {"X": X, "params": params,
                                           "activation": sizes["activation"]})


BUILDERS = {"rope": rope_cases, "rmsnorm": rmsnorm_cases, "gated_mlp": gated_mlp_cases}


@st.composite
def sinusoidal_cases(draw, constrain: Constrain, dtype: Any, min_len: int = 1) -> Case:
    """Positions (l,), an even d_e, base and index_offset for Algorithm 24 (base 10000 as in
    Vaswani et al., or a small l_max-like base as in Phuong & Hutter's remark)."""
    sizes = _sizes(draw, constrain, "sinusoidal_embedding",
                   {"l": [min_len, 5], "pairs": [1, 4], "index_offset": (0, 1)})
    seed = draw(SEEDS)
    rng = np.random.default_rng(seed)
    positions = rng.integers(0, 64, sizes["l"]).astype(np.int64)
    return Case("sinusoidal_embedding", sizes, seed,
                {"positions": positions, "d_e": 2 * sizes["pairs"],
                 "base": draw(st.sampled_from([10000.0, 16.0, 512.0])),
                 "index_offset": int(sizes["index_offset"]), "dtype": np.dtype(dtype).name,
                 "params": {}})


@st.composite
def alibi_cases(draw, constrain: Constrain, dtype: Any) -> Case:
    """Query positions (l_x,) at a drawn offset, key positions (l_z,) on both sides of them,
    H in 1..12 (powers of two and not) and a form for Algorithm 26."""
    sizes = _sizes(draw, constrain, "alibi", {"H": [1, 12], "l_x": [1, 5], "l_z": [1, 5],
                                               "form": ALIBI_FORMS})
    seed = draw(SEEDS)
    rng = np.random.default_rng(seed)
    offset = draw(st.integers(0, 30))
    return Case("alibi", sizes, seed,
                {"positions_x": (offset + np.arange(sizes["l_x"])).astype(np.int64),
                 "positions_z": rng.integers(0, offset + sizes["l_x"] + 3, sizes["l_z"]).astype(
                     np.int64), "H": sizes["H"], "form": sizes["form"],
                 "dtype": np.dtype(dtype).name, "params": {}})


BUILDERS |= {"sinusoidal_embedding": sinusoidal_cases, "alibi": alibi_cases}
