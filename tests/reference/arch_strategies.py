"""Hypothesis strategies for the architectures, training and inference (spec: Algorithms 8-15).

Each strategy draws small hyperparameters and a seed; parameters and token sequences are built
from ``numpy.random.default_rng(seed)``, so a failing example shrinks to small sizes and is
reproduced by its seed. Parameters are drawn at unit scale (not the tiny init of training) so
that every non-linearity is exercised, and every gamma, beta and bias is non-trivial.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from formal_transformers.canonical import random_parameters
from formal_transformers.hyperparameters import (
    ACTIVATIONS,
    Config,
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
)

# Forward-only laws are cheap; a finite-difference check runs 2 forwards per parameter entry.
ARCH_SETTINGS = settings(max_examples=10, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow])
GRADIENT_SETTINGS = settings(max_examples=3, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])

# (H, d_e): d_attn = d_e / H in {1, 2, 3}. d_e = 2 is kept on purpose: a layer norm of two
# entries is nearly a sign function, the sharpest curvature a finite-difference check meets.
HEAD_LAYOUTS = ((1, 2), (1, 3), (2, 2), (2, 4), (3, 3))


@dataclass(frozen=True)
class ArchCase:
    """One drawn model: its config, canonical parameters, a seed for further draws."""

    config: Config
    params: dict[str, np.ndarray]
    seed: int

    def rng(self, offset: int = 0) -> np.random.Generator:
        return np.random.default_rng(self.seed + offset)

    def tokens(self, length: int, offset: int = 1) -> np.ndarray:
        """A token sequence of the given length, ids in [N_V]."""
        return self.rng(offset).integers(0, self.config.N_V, size=length)


def _common(draw) -> dict:
    H, d_e = draw(st.sampled_from(HEAD_LAYOUTS))
    return dict(N_V=draw(st.integers(2, 6)), l_max=draw(st.integers(2, 5)), d_e=d_e, H=H,
                d_mlp=draw(st.integers(1, 4)), activation=draw(st.sampled_from(ACTIVATIONS)),
                layer_norm_eps=draw(st.sampled_from((1e-5, 0.1))))


def _case(draw, config: Config) -> ArchCase:
    seed = draw(st.integers(0, 2**32 - 1))
    return ArchCase(config, random_parameters(config, np.random.default_rng(seed)), seed)


@st.composite
def d_cases(draw, max_layers: int = 2) -> ArchCase:
    """A DTransformer (Algorithm 10) with random parameters."""
    config = DTransformerConfig(L=draw(st.integers(1, max_layers)), **_common(draw))
    return _case(draw, config)


@st.composite
def e_cases(draw, max_layers: int = 2) -> ArchCase:
    """An ETransformer (Algorithm 9), with or without the embedding layer norm."""
    config = ETransformerConfig(L=draw(st.integers(1, max_layers)),
                                embedding_layer_norm=draw(st.booleans()), **_common(draw))
    return _case(draw, config)


@st.composite
def ed_cases(draw, max_layers: int = 2) -> ArchCase:
    """An EDTransformer (Algorithm 8) with random parameters."""
    config = EDTransformerConfig(L_enc=draw(st.integers(1, max_layers)),
                                 L_dec=draw(st.integers(1, max_layers)), **_common(draw))
    return _case(draw, config)


def lengths(config: Config) -> st.SearchStrategy[int]:
    """A valid sequence length 1..l_max."""
    return st.integers(1, config.l_max)
