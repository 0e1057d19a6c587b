"""The online softmax's working memory grows linearly in the length, Algorithm 4's
quadratically (spec/memory.md section 10, formulas (M43)-(M44); spec: Algorithm 48).

Measured on reference_numpy with the project's instrument (tracemalloc, ``traced_peak``), and
fitted with the growth law's ``fit_exponent``. tracemalloc counts bytes, not time: the result
does not depend on the machine's load.
"""

from __future__ import annotations

import numpy as np

from formal_transformers.memory.growth import fit_exponent
from formal_transformers.memory.measure import traced_peak
from reference_numpy.attention import attention
from reference_numpy.online_softmax import online_softmax_attention

LENGTHS = (128, 256, 512, 1024)
D, BLOCK = 4, 16


def _peaks(fn) -> list[int]:
    rng = np.random.default_rng(0)
    shapes = {"W_q": (D, D), "b_q": (D,), "W_k": (D, D), "b_k": (D,), "W_v": (D, D),
              "b_v": (D,)}
    p = {k: rng.standard_normal(s) for k, s in shapes.items()}
    peaks = []
    for l in LENGTHS:
        X = rng.standard_normal((D, l))
        peaks.append(traced_peak(lambda X=X: fn(X, p))[1])
    return peaks


def test_online_softmax_memory_grows_linearly_and_attention_quadratically():
    online = _peaks(lambda X, p: online_softmax_attention(X, X, **p, block=BLOCK))
    naive = _peaks(lambda X, p: attention(X, X, **p))
    k_online, k_naive = fit_exponent(LENGTHS, online), fit_exponent(LENGTHS, naive)
    assert k_online <= 1.2, (k_online, online)
    assert k_naive >= 1.8, (k_naive, naive)
    # (M44): Algorithm 4 holds at least its scores and weights, 2 l^2 float64 numbers
    assert naive[-1] >= 2 * LENGTHS[-1] ** 2 * 8
