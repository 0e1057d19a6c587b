"""Hypothesis strategies of the modern decoder (spec: Algorithm 65): small configs drawing
every selection -- norm, positions and RoPE layout/scaling, plain or gated MLP, H and G, windows
per layer, QK-norm, soft-caps, biases, tying -- then canonical parameters and tokens.

An adapter's ``constrain("modern_d_transformer", fields)`` maps the drawn fields onto what it
declares (an ``hf:DIR`` adapter fixes all of them to the saved model's config).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from conformance.strategies import LONG, SCALES, SEEDS, Case, random_parameters
from conformance.strategies_modern import rope_scaling
from formal_transformers.canonical import parameter_shapes
from formal_transformers.hyperparameters import (
    ACTIVATIONS,
    ATTENTION_BIASES,
    GATED_ACTIVATIONS,
    POSITIONS,
    QK_NORMS,
    DTransformerConfig,
    ModernDTransformerConfig,
    gpt2_selections,
)
from formal_transformers.rope import LAYOUTS, SCALINGS, Rope

ALG = "modern_d_transformer"


@st.composite
def modern_fields(draw, l_max: tuple[int, int] = (2, 7)) -> dict[str, Any]:
    """The fields of a small ModernDTransformerConfig, every selection drawn."""
    H = draw(st.sampled_from([1, 2, 3, 4]))
    G = draw(st.sampled_from([g for g in (1, 2, 3, 4) if H % g == 0]))
    # d_head 4 first (hypothesis shrinks towards the first choice): at d_head 2 (or r = 2
    # rotated features) the half-split and interleaved RoPE layouts pair the same features,
    # so the simplest example must already tell them apart
    d_head = draw(st.sampled_from([4, 8, 2]))
    L = draw(st.integers(1, 2))
    norm = draw(st.sampled_from(["layer_norm", "rmsnorm"]))
    positions = draw(st.sampled_from(POSITIONS))
    mlp = draw(st.sampled_from(["plain", "gated"]))
    window = st.one_of(st.none(), st.integers(1, max(3, l_max[1] // 2)))
    fields: dict[str, Any] = {
        "N_V": draw(st.integers(2, 7)), "l_max": draw(st.integers(*l_max)),
        "d_e": draw(st.integers(2, 8)), "d_mlp": draw(st.integers(1, 6)), "L": L, "H": H,
        "G": G, "d_head": d_head, "norm": norm,
        "norm_offset": norm == "rmsnorm" and draw(st.booleans()),
        "norm_eps": draw(st.sampled_from([1e-6, 1e-3, 0.1])), "post_norms": draw(st.booleans()),
        "positions": positions,
        "rope": Rope(layout=draw(st.sampled_from(LAYOUTS)),
                     theta=draw(st.sampled_from([10.0, 1e4])),
                     fraction=draw(st.sampled_from([1.0, 0.5])) if d_head >= 4 else 1.0,
                     scaling=rope_scaling(draw, draw(st.sampled_from(SCALINGS)))),
        "mlp": mlp, "activation": draw(st.sampled_from(
            GATED_ACTIVATIONS if mlp == "gated" else ACTIVATIONS)),
        "windows": draw(st.none() | st.lists(window, min_size=L, max_size=L).map(tuple)),
        "qk_norm": draw(st.sampled_from(QK_NORMS)),
        "attn_softcap": None if positions == "alibi" else draw(st.sampled_from([None, 1.0, 5.0])),
        "final_softcap": draw(st.sampled_from([None, 2.0])),
        "attn_scale": draw(st.sampled_from([None, 0.3])),
        "attention_bias": draw(st.sampled_from(ATTENTION_BIASES)),
        "mlp_bias": draw(st.booleans()), "tie_embeddings": draw(st.booleans()),
        "embedding_scale": draw(st.booleans()),
    }
    return fields


def build_modern_case(config: ModernDTransformerConfig, B: int, l: int, seed: int,
                      scale: float, dtype: Any) -> Case:
    """Canonical parameters of ``config`` and token sequences x (B, l)."""
    rng = np.random.default_rng(seed)
    params = random_parameters(parameter_shapes(config), rng, scale, dtype)
    data = {"config": config, "params": params, "x": rng.integers(0, config.N_V, (B, l)),
            "scale": scale}
    return Case(ALG, {"B": B, "l": l}, seed, data)


@st.composite
def modern_cases(draw, constrain, dtype: Any, min_len: int = 2,
                 l_max: tuple[int, int] = (2, 7), long: bool | None = None) -> Case:
    """A drawn modern config (through ``constrain``), parameters and tokens.

    At least ``min_len`` = 2 tokens by default: at one token RoPE rotates nothing (position
    0) and no window or causal mask excludes a key. ``long`` (drawn when None) is the suite's
    long regime (conformance/strategies.py LONG): l_max and l in 16..20 and windows up to 10,
    so that sequences run well past a window and RoPE reaches large angles.
    """
    long = draw(st.booleans()) if long is None else long
    fields = constrain(ALG, draw(modern_fields(LONG if long else l_max)))
    config = ModernDTransformerConfig(**fields)
    B = draw(st.integers(1, 2 if long else 3))
    low = max(min_len, LONG[0]) if long else min_len
    l = draw(st.integers(min(low, config.l_max), config.l_max))
    return build_modern_case(config, B, l, draw(SEEDS), draw(SCALES), dtype)


@st.composite
def gpt2_cases(draw, constrain, dtype: Any) -> Case:
    """A D transformer config (Algorithm 10) mapped to the modern decoder's GPT-2 selections;
    the case holds both configs and the one set of canonical parameters."""
    H = draw(st.integers(1, 2))
    d = DTransformerConfig(
        N_V=draw(st.integers(2, 7)), l_max=draw(st.integers(2, 6)),
        d_e=H * draw(st.integers(1, 3)), d_mlp=draw(st.integers(1, 6)),
        L=draw(st.integers(1, 2)), H=H,
        activation=draw(st.sampled_from(["relu", "gelu", "gelu_tanh"])),
        layer_norm_eps=draw(st.sampled_from([1e-5, 0.1])))
    modern = ModernDTransformerConfig(**constrain(ALG, _fields(gpt2_selections(d))))
    B, l = draw(st.integers(1, 3)), draw(st.integers(1, d.l_max))
    case = build_modern_case(modern, B, l, draw(SEEDS), draw(SCALES), dtype)
    case.data["d_config"] = d
    return case


def _fields(config: ModernDTransformerConfig) -> dict[str, Any]:
    data = config.to_dict()
    data.pop("arch")
    return data
