"""ALiBi slopes as Algorithm 65 uses them (float64).

Interim module: the ALiBi entry of issue 13 replaces this function when it lands; every other
primitive of Algorithm 65 is already its own entry (reference_numpy/{rope,rmsnorm,gated_mlp,
gq_attention,masks,qk_norm,softcap}.py).
"""

from __future__ import annotations

import math


def alibi_slopes(H: int) -> list[float]:
    """ALiBi head slopes m_h (Press et al.), the paper code's rule for H not a power of 2."""
    def geometric(n: int) -> list[float]:
        return [2 ** (-8 * (i + 1) / n) for i in range(n)]
    n = 2 ** int(math.floor(math.log2(H)))
    return geometric(n) + geometric(2 * n)[0::2][: H - n]
