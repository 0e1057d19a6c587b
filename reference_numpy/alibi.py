"""ALiBi, attention with linear biases (spec: Algorithm 26, spec/algorithms/26-alibi.md).

Signature and layout::

    alibi(positions_x, positions_z, H, form="signed") -> Bias
        positions_x: (l_x,) ints >= 0 (queries), positions_z: (l_z,) ints >= 0 (keys), H >= 1;
        form: "signed" (-m (p_x - p_z)), "symmetric" (-m |p_x - p_z|) or "key_position"
        (m p_z, the ALiBi code and BLOOM).
        Bias: (H, l_z, l_x) float64 in the spec's Mask[t_z, t_x] orientation: head h adds
        Bias[h] to its scores S (Algorithm 4 line 3) before the mask.
    alibi_slopes(H) -> m: (H,), Algorithm 26 L1-3 (the reference code's rule for any H).

No parameters, integer inputs: there is no backward pass.
"""

from __future__ import annotations

import math

import numpy as np

from formal_transformers.errors import ConfigError
from reference_numpy.rope import check_positions

FORMS = ("signed", "symmetric", "key_position")


def alibi_slopes(H: int) -> np.ndarray:
    """The head slopes m_h of Algorithm 26 lines 1-3."""
    if isinstance(H, bool) or not isinstance(H, (int, np.integer)) or H < 1:
        raise ConfigError(f"H must be an integer >= 1, got {H!r}")
    n = 2 ** int(math.floor(math.log2(H)))  # Alg 26 L1
    m = np.zeros(H)
    for h in range(H):  # Alg 26 L2
        m[h] = (2.0 ** (-8 * (h + 1) / n) if h < n  # Alg 26 L3
                else 2.0 ** (-4 * (2 * (h - n) + 1) / n))
    return m


def alibi(positions_x: np.ndarray, positions_z: np.ndarray, H: int, form: str = "signed"
          ) -> np.ndarray:
    """The ALiBi bias of every head (spec: Algorithm 26). Returns Bias: (H, l_z, l_x)."""
    if form not in FORMS:
        raise ConfigError(f"form must be one of {FORMS}, got {form!r}")
    p_x = check_positions(positions_x, name="positions_x")
    p_z = check_positions(positions_z, name="positions_z")
    m = alibi_slopes(H)
    Bias = np.zeros((H, p_z.shape[0], p_x.shape[0]))
    for h in range(H):
        for t_z in range(p_z.shape[0]):
            for t_x in range(p_x.shape[0]):
                distance = p_x[t_x] - p_z[t_z]
                Bias[h, t_z, t_x] = {"signed": -m[h] * distance,  # Alg 26 L4
                                     "symmetric": -m[h] * abs(distance),
                                     "key_position": m[h] * p_z[t_z]}[form]
    return Bias  # Alg 26 L5
