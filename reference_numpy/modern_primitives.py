"""Soft-capping and ALiBi slopes as Algorithm 65 uses them (float64).

Interim module: the primitives' own entries (issue 13: softcap, alibi) replace these
functions when they land; RoPE, RMSNorm and the gated MLP are already theirs
(reference_numpy/{rope,rmsnorm,gated_mlp}.py).
"""

from __future__ import annotations

import math

import numpy as np


def softcap(S: np.ndarray, c: float) -> np.ndarray:
    """c tanh(S / c), elementwise."""
    return c * np.tanh(S / c)


def alibi_slopes(H: int) -> list[float]:
    """ALiBi head slopes m_h (Press et al.), the paper code's rule for H not a power of 2."""
    def geometric(n: int) -> list[float]:
        return [2 ** (-8 * (i + 1) / n) for i in range(n)]
    n = 2 ** int(math.floor(math.log2(H)))
    return geometric(n) + geometric(2 * n)[0::2][: H - n]
