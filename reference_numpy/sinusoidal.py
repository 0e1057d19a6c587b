"""Sinusoidal positional embedding (spec: Algorithm 24, spec/algorithms/24-sinusoidal-embedding.md).

Signature and layout::

    sinusoidal_embedding(positions, d_e, base=10000.0, index_offset=0) -> E
        positions: (l,) ints >= 0; d_e even >= 2; base > 1 (10000: Vaswani et al.; l_max:
        Phuong & Hutter, with index_offset = 1). E: (d_e, l) float64, one column per position.

No parameters, integer inputs: there is no backward pass.
"""

from __future__ import annotations

import math

import numpy as np

from formal_transformers.errors import ConfigError
from reference_numpy.rope import check_positions


def check_sinusoidal(d_e: object, base: object, index_offset: object) -> None:
    """d_e even >= 2, base > 1 finite, index_offset in {0, 1} (ConfigError otherwise)."""
    if isinstance(d_e, bool) or not isinstance(d_e, (int, np.integer)) or d_e < 2 or d_e % 2:
        raise ConfigError(f"d_e must be an even integer >= 2, got {d_e!r}")
    if isinstance(base, bool) or not isinstance(base, (int, float)) or not math.isfinite(base) \
            or base <= 1:
        raise ConfigError(f"base must be a finite number > 1, got {base!r}")
    if index_offset not in (0, 1) or isinstance(index_offset, bool):
        raise ConfigError(f"index_offset must be 0 or 1, got {index_offset!r}")


def sinusoidal_embedding(positions: np.ndarray, d_e: int, base: float = 10000.0,
                         index_offset: int = 0) -> np.ndarray:
    """The sinusoidal embedding of each position (spec: Algorithm 24). Returns E: (d_e, l)."""
    check_sinusoidal(d_e, base, index_offset)
    p = check_positions(positions)
    omega = [base ** (-2 * (i + index_offset) / d_e) for i in range(d_e // 2)]  # Alg 24 L1
    E = np.zeros((d_e, p.shape[0]))
    for t in range(p.shape[0]):  # Alg 24 L2
        for i in range(d_e // 2):
            E[2 * i, t] = math.sin(p[t] * omega[i])  # Alg 24 L3
            E[2 * i + 1, t] = math.cos(p[t] * omega[i])  # Alg 24 L4
    return E  # Alg 24 L5
