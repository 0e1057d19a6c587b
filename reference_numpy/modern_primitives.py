"""The modern primitives one column at a time, as Algorithm 65 uses them (float64).

Interim module: the primitives' own entries (RMSNorm, RoPE, ALiBi, soft-capping; issue 13,
reference_numpy/{rmsnorm,rope,alibi,softcap}.py) replace these functions as they land.
"""

from __future__ import annotations

import math

import numpy as np

from formal_transformers.hyperparameters import ModernDTransformerConfig


def rms_norm(e: np.ndarray, gamma: np.ndarray, eps: float, offset: bool = False) -> np.ndarray:
    """gamma * e / sqrt(mean(e^2) + eps) (scale 1 + gamma with ``offset``): e (d,) -> (d,)."""
    scale = 1.0 + gamma if offset else gamma
    return scale * e / np.sqrt(np.mean(e * e) + eps)


def rope_frequencies(c: ModernDTransformerConfig) -> np.ndarray:
    """omega_i = theta^(-2i / r) for i < r / 2, after the config's scaling: (r / 2,)."""
    r = c.rotated
    omega = np.array([c.rope_theta ** (-2.0 * i / r) for i in range(r // 2)])
    if c.rope_scaling == "linear":
        return omega / c.rope_factor
    if c.rope_scaling == "llama3":
        out = np.empty_like(omega)
        low = c.rope_original_l_max / c.rope_low_freq_factor
        high = c.rope_original_l_max / c.rope_high_freq_factor
        for i, w in enumerate(omega):
            wavelen = 2 * math.pi / w
            if wavelen > low:
                out[i] = w / c.rope_factor
            elif wavelen < high:
                out[i] = w
            else:
                smooth = ((c.rope_original_l_max / wavelen - c.rope_low_freq_factor)
                          / (c.rope_high_freq_factor - c.rope_low_freq_factor))
                out[i] = (1 - smooth) * w / c.rope_factor + smooth * w
        return out
    return omega


def rope_pairs(r: int, layout: str) -> list[tuple[int, int]]:
    """The feature pairs (a_i, b_i) rotated by angle t omega_i: half_split (i, i + r/2),
    interleaved (2i, 2i + 1)."""
    if layout == "half_split":
        return [(i, i + r // 2) for i in range(r // 2)]
    return [(2 * i, 2 * i + 1) for i in range(r // 2)]


def rope_rotate(q: np.ndarray, t: int, omega: np.ndarray, layout: str) -> np.ndarray:
    """R_t q: every pair (a, b) of the first r features rotated by t omega_i: q (d,) -> (d,)."""
    out = q.copy()
    for i, (a, b) in enumerate(rope_pairs(2 * len(omega), layout)):
        angle = t * omega[i]
        out[a] = q[a] * math.cos(angle) - q[b] * math.sin(angle)
        out[b] = q[b] * math.cos(angle) + q[a] * math.sin(angle)
    return out


def softcap(S: np.ndarray, c: float) -> np.ndarray:
    """c tanh(S / c), elementwise."""
    return c * np.tanh(S / c)


def alibi_slopes(H: int) -> list[float]:
    """ALiBi head slopes m_h (Press et al.), the paper code's rule for H not a power of 2."""
    def geometric(n: int) -> list[float]:
        return [2 ** (-8 * (i + 1) / n) for i in range(n)]
    n = 2 ** int(math.floor(math.log2(H)))
    return geometric(n) + geometric(2 * n)[0::2][: H - n]
