"""Hypothesis strategies of the modern attention primitives (spec: Algorithms 40-49).

Same conventions as conformance/strategies.py (sizes through ``constrain``, arrays from a
drawn seed, cast to the dtype under test). The masks' cases draw lengths past the window or
block (``l`` up to 10 against ``w`` up to 6), so the window's edges are reached.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from hypothesis import strategies as st

from conformance.strategies import (
    SCALES,
    SEEDS,
    Case,
    Constrain,
    _draw_sizes,
    attention_cases,
    attention_shapes,
    random_parameters,
    valid_mask,
)

GQA_RANGES = {"B": (1, 2), "l_x": (1, 4), "l_z": (1, 4), "d_x": (1, 3), "d_z": (1, 3),
              "G": (1, 3), "r": (1, 3), "d_attn": (1, 3), "d_mid": (1, 3), "d_out": (1, 3)}
HEAD_SCALES = (0.01, 1.0, 100.0)  # per-head magnitudes: one head may dominate a token


def gq_shapes(s: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of Algorithm 40: H query heads, G kv heads."""
    H, G = s["H"], s["G"]
    return {"W_q": (H, s["d_attn"], s["d_x"]), "b_q": (H, s["d_attn"]),
            "W_k": (G, s["d_attn"], s["d_z"]), "b_k": (G, s["d_attn"]),
            "W_v": (G, s["d_mid"], s["d_z"]), "b_v": (G, s["d_mid"]),
            "W_o": (s["d_out"], H * s["d_mid"]), "b_o": (s["d_out"],)}


@st.composite
def gq_attention_cases(draw, constrain: Constrain, dtype: Any, mask: str = "any",
                       fixed: Mapping[str, Any] | None = None) -> Case:
    """X (B, l_x, d_x), Z (B, l_z, d_z), GQA parameters (H = r G) and a mask or None."""
    sizes = _draw_sizes(draw, GQA_RANGES, fixed or {})
    sizes["H"] = sizes.pop("r") * sizes["G"]
    sizes = constrain("gq_attention", sizes)
    mode = draw(st.sampled_from(["none", "random"])) if mask == "any" else mask
    seed, scale = draw(SEEDS), draw(SCALES)
    rng = np.random.default_rng(seed)
    B, l_x, l_z = sizes["B"], sizes["l_x"], sizes["l_z"]
    X = rng.standard_normal((B, l_x, sizes["d_x"])).astype(dtype)
    Z = rng.standard_normal((B, l_z, sizes["d_z"])).astype(dtype)
    params = random_parameters(gq_shapes(sizes), rng, scale, dtype)
    Mask = valid_mask(rng, l_z, l_x, require_zero=True) if mode == "random" else None
    return Case("gq_attention", sizes, seed, {"X": X, "Z": Z, "params": params, "mask": Mask})


@st.composite
def mask_cases(draw, constrain: Constrain, dtype: Any, alg: str, wide: bool = False) -> Case:
    """A length l and the mask's hyperparameters (w; or b, c), plus a self-attention example
    X (B, l, d_x) with single-head parameters for the laws about influence.

    ``wide``: w >= l (sliding window) or c = b / b >= l (block sparse), the causal limits.
    """
    base = {"B": (1, 2), "l": (1, 10), "d_x": (1, 3), "d_attn": (1, 3), "d_out": (1, 3)}
    sizes = _draw_sizes(draw, base, {})
    l = sizes["l"]
    if alg == "sliding_window_mask":
        sizes["w"] = draw(st.integers(l, l + 3) if wide else st.integers(1, 6))
    else:
        sizes["b"] = draw(st.integers(l, l + 2) if wide else st.integers(1, 5))
        sizes["c"] = draw(st.integers(1, sizes["b"]))
        if wide and draw(st.booleans()):
            sizes["b"] = draw(st.integers(1, 5))
            sizes["c"] = sizes["b"]
    sizes = constrain(alg, sizes)
    seed = draw(SEEDS)
    rng = np.random.default_rng(seed)
    shapes = attention_shapes(sizes | {"d_z": sizes["d_x"]}, False)
    data = {k: sizes[k] for k in ("l", "w", "b", "c") if k in sizes}
    data |= {"X": rng.standard_normal((sizes["B"], l, sizes["d_x"])).astype(dtype),
             "params": random_parameters(shapes, rng, 2.0, dtype)}
    return Case(alg, sizes, seed, data)


@st.composite
def qk_norm_cases(draw, constrain: Constrain, dtype: Any, eps_zero: bool = False) -> Case:
    """X (B, l, H*d_attn) with heads of very different magnitudes, gamma, H, axis and eps."""
    sizes = constrain("qk_norm", _draw_sizes(draw, {"B": (1, 2), "l": (1, 4), "H": (1, 3),
                                                    "d_attn": (1, 4)}, {}))
    axis = draw(st.sampled_from(["per_head", "projection"]))
    eps = 0.0 if eps_zero else draw(st.sampled_from([0.0, 1e-6, 1e-2]))
    seed = draw(SEEDS)
    rng = np.random.default_rng(seed)
    B, l, H, d_attn = sizes["B"], sizes["l"], sizes["H"], sizes["d_attn"]
    head_scale = np.repeat(rng.choice(HEAD_SCALES, H), d_attn)  # (H*d_attn,)
    X = (head_scale * rng.standard_normal((B, l, H * d_attn))).astype(dtype)
    n = d_attn if axis == "per_head" else H * d_attn
    gamma = (1.0 + 0.5 * rng.standard_normal(n)).astype(dtype)
    return Case("qk_norm", sizes, seed, {"X": X, "params": {"gamma": gamma}, "H": H,
                                         "axis": axis, "eps": eps})


def qk_norm_pinned(alg: str, dtype: Any, eps: float = 0.0) -> list[Case]:
    """Cases every QK-norm law tries first: three heads of magnitudes 100, 1 and 0.01 under
    each axis (one head carries nearly all of a token's norm: where the axes differ most)."""
    rng = np.random.default_rng(13)
    H, d_attn = 3, 2
    X = (np.repeat([100.0, 1.0, 0.01], d_attn) * rng.standard_normal((1, 3, H * d_attn)))
    cases = []
    for axis in ("per_head", "projection"):
        n = d_attn if axis == "per_head" else H * d_attn
        gamma = (1.0 + 0.5 * rng.standard_normal(n)).astype(dtype)
        cases.append(Case("qk_norm", {"B": 1, "l": 3, "H": H, "d_attn": d_attn}, 13,
                          {"X": X.astype(dtype), "params": {"gamma": gamma}, "H": H,
                           "axis": axis, "eps": eps}))
    return cases


@st.composite
def softcap_cases(draw, constrain: Constrain, dtype: Any, mask: str = "any",
                  caps: tuple[float, ...] = (0.5, 2.0, 10.0, 50.0),
                  fixed: Mapping[str, Any] | None = None) -> Case:
    """X, Z, single-head parameters scaled so that some scores exceed the cap, c, a mask."""
    ranges = {"B": (1, 2), "l_x": (1, 4), "l_z": (1, 4), "d_x": (1, 4), "d_z": (1, 4),
              "d_attn": (1, 4), "d_out": (1, 4)}
    sizes = constrain("softcap", _draw_sizes(draw, ranges, fixed or {}))
    mode = draw(st.sampled_from(["none", "random"])) if mask == "any" else mask
    seed, scale, c = draw(SEEDS), draw(st.sampled_from([1.0, 4.0, 16.0])), draw(
        st.sampled_from(caps))
    rng = np.random.default_rng(seed)
    B, l_x, l_z = sizes["B"], sizes["l_x"], sizes["l_z"]
    X = rng.standard_normal((B, l_x, sizes["d_x"])).astype(dtype)
    Z = rng.standard_normal((B, l_z, sizes["d_z"])).astype(dtype)
    params = random_parameters(attention_shapes(sizes, False), rng, scale, dtype)
    Mask = valid_mask(rng, l_z, l_x, require_zero=True) if mode == "random" else None
    return Case("softcap", sizes, seed, {"X": X, "Z": Z, "params": params, "c": c,
                                         "mask": Mask})


@st.composite
def online_softmax_cases(draw, constrain: Constrain, dtype: Any, mask: str = "any",
                         blocks: int = 1) -> Case:
    """An attention case (Algorithm 4's strategy, l_z up to 7 so that blocks split it) plus
    ``blocks`` key block sizes B_c in 1 .. l_z + 1 (``block``, ``block_2``, ...)."""
    case = draw(attention_cases(lambda a, s: constrain("online_softmax_attention", s), dtype,
                                False, mask=mask, fixed={"l_z": draw(st.integers(1, 7))}))
    l_z = case["Z"].shape[1]
    case.kind = "online_softmax_attention"
    for i in range(blocks):
        case.data["block" if i == 0 else f"block_{i + 1}"] = draw(st.integers(1, l_z + 1))
    return case


def online_softmax_pinned(alg: str, dtype: Any) -> list[Case]:
    """A case every online-softmax law tries first: B_c = 2 and the first two keys masked for
    every query, so each query's running max is still -inf after the first block."""
    rng = np.random.default_rng(17)
    sizes = {"B": 1, "l_x": 3, "l_z": 6, "d_x": 2, "d_z": 2, "d_attn": 2, "d_out": 2}
    Mask = np.ones((6, 3), dtype=bool)
    Mask[:2] = False
    data = {"X": rng.standard_normal((1, 3, 2)).astype(dtype),
            "Z": rng.standard_normal((1, 6, 2)).astype(dtype),
            "params": random_parameters(attention_shapes(sizes, False), rng, 1.0, dtype),
            "mask": Mask, "block": 2, "block_2": 4, "scale": 1.0}
    return [Case("online_softmax_attention", sizes, 17, data)]


def variant_cases_for(alg: str, constrain: Constrain, dtype: Any, **options: Any):
    """The default cases of a modern attention primitive (a backward gets its forward's)."""
    base = alg.removesuffix("_backward")
    if base in ("sliding_window_mask", "block_sparse_mask"):
        return mask_cases(constrain, dtype, base, **options)
    builders = {"gq_attention": gq_attention_cases, "qk_norm": qk_norm_cases,
                "softcap": softcap_cases, "online_softmax_attention": online_softmax_cases}
    return builders[base](constrain, dtype, **options)


VARIANTS = ("gq_attention", "sliding_window_mask", "block_sparse_mask", "qk_norm", "softcap",
            "online_softmax_attention")
