"""Hypothesis strategies of the vision path (spec: Algorithms 75-78, issue 17).

Same conventions as conformance/strategies.py: sizes pass through the adapter's ``constrain``
hook first, arrays come from ``numpy.random.default_rng(seed)`` in float64 cast to the dtype
under test. Images are (B, C, h, w) with patch grids from 1 x 1 up to 3 x 4 patches, so that
non-square grids (where swapping the grid's rows and columns shows) are drawn, and images up
to 12 pixels a side: a patch size P, a grid n_h x n_w, then h = n_h P and w = n_w P.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from conformance.strategies import EPS, SCALES, SEEDS, Case, Constrain, random_parameters
from formal_transformers.canonical import parameter_shapes
from formal_transformers.hyperparameters import ACTIVATIONS, VIT_POSITIONS, ViTConfig


def _image_sizes(draw, constrain: Constrain, alg: str, extra: dict[str, Any]
                 ) -> dict[str, Any]:
    sizes = {"B": draw(st.integers(1, 2)), "C": draw(st.integers(1, 3)),
             "patch_size": draw(st.integers(1, 3)), "n_h": draw(st.integers(1, 3)),
             "n_w": draw(st.integers(1, 4))} | extra
    sizes = constrain(alg, sizes)
    return sizes | {"h": int(sizes["n_h"]) * int(sizes["patch_size"]),
                    "w": int(sizes["n_w"]) * int(sizes["patch_size"])}


def _image(rng: np.random.Generator, s: dict[str, Any], dtype: Any) -> np.ndarray:
    return rng.standard_normal((s["B"], s["C"], s["h"], s["w"])).astype(dtype)


@st.composite
def patch_extraction_cases(draw, constrain: Constrain, dtype: Any) -> Case:
    """An image batch I (B, C, h, w) and its patch size (Algorithm 75)."""
    sizes = _image_sizes(draw, constrain, "patch_extraction", {})
    seed = draw(SEEDS)
    I = _image(np.random.default_rng(seed), sizes, dtype)
    return Case("patch_extraction", sizes, seed, {"I": I, "patch_size": int(sizes["patch_size"]),
                                                 "params": {}})


@st.composite
def patch_embedding_cases(draw, constrain: Constrain, dtype: Any) -> Case:
    """I, W_pe, b_pe, e_cls and (positions learned) W_p for Algorithm 76."""
    sizes = _image_sizes(draw, constrain, "patch_embedding",
                         {"d_e": draw(st.integers(1, 5)),
                          "positions": draw(st.sampled_from(VIT_POSITIONS))})
    seed, scale = draw(SEEDS), draw(SCALES)
    rng = np.random.default_rng(seed)
    P, N, d_e = sizes["patch_size"], sizes["n_h"] * sizes["n_w"], sizes["d_e"]
    shapes = {"W_pe": (d_e, sizes["C"] * P * P), "b_pe": (d_e,), "e_cls": (d_e,)}
    if sizes["positions"] == "learned":
        shapes["W_p"] = (d_e, N + 1)
    params = random_parameters(shapes, rng, scale, dtype)
    return Case("patch_embedding", sizes, seed, {"I": _image(rng, sizes, dtype),
                                                "params": params, "patch_size": int(P)})


@st.composite
def vit_cases(draw, constrain: Constrain, dtype: Any, positions: str | None = None) -> Case:
    """A ViTConfig, canonical parameters and images for Algorithm 77 (``positions`` fixes
    the positional variant; else it is drawn)."""
    H = draw(st.integers(1, 2))
    extra = {"H": H, "d_e": H * draw(st.integers(1, 3)), "d_mlp": draw(st.integers(1, 6)),
             "L": draw(st.integers(1, 2)), "n_classes": draw(st.integers(2, 5)),
             "positions": positions or draw(st.sampled_from(VIT_POSITIONS)),
             "activation": draw(st.sampled_from(ACTIVATIONS)), "layer_norm_eps": draw(EPS)}
    sizes = _image_sizes(draw, constrain, "vit_classifier", extra)
    config = ViTConfig(C=int(sizes["C"]), height=sizes["h"], width=sizes["w"],
                       patch_size=int(sizes["patch_size"]), n_classes=int(sizes["n_classes"]),
                       d_e=int(sizes["d_e"]), d_mlp=int(sizes["d_mlp"]), L=int(sizes["L"]),
                       H=int(sizes["H"]), positions=sizes["positions"],
                       activation=sizes["activation"],
                       layer_norm_eps=float(sizes["layer_norm_eps"]))
    seed, scale = draw(SEEDS), draw(SCALES)
    rng = np.random.default_rng(seed)
    params = random_parameters(parameter_shapes(config), rng, scale, dtype)
    return Case("vit_classifier", {"B": sizes["B"], "grid": (sizes["n_h"], sizes["n_w"])}, seed,
                {"I": _image(rng, sizes, dtype), "params": params, "config": config})


BUILDERS = {"patch_extraction": patch_extraction_cases,
            "patch_embedding": patch_embedding_cases, "vit_classifier": vit_cases}
