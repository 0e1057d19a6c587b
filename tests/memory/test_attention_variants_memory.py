"""Memory of the modern attention primitives (spec/memory.md section 10, (M40)-(M44)): the
online softmax's working memory grows linearly in the length, Algorithm 4's quadratically
(spec: Algorithm 48); GQA's parameters and KV cache; the window's cap on the cache.

Measured on reference_numpy with the project's instrument (tracemalloc, ``traced_peak``), and
fitted with the growth law's ``fit_exponent``. tracemalloc counts bytes, not time: the result
does not depend on the machine's load.
"""

from __future__ import annotations

import numpy as np

from formal_transformers.memory.attention_variants import attention_working_bytes
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
    assert naive[-1] >= attention_working_bytes(LENGTHS[-1], LENGTHS[-1], 8)


def test_gq_attention_parameter_count_is_M40_and_M4_at_G_equal_H():
    """(M40) counts exactly the arrays Algorithm 40 takes; at G = H it is (M4)."""
    from conformance.variant_strategies import gq_shapes
    from formal_transformers.memory.attention_variants import gq_attention_parameters
    from formal_transformers.memory.counts import mh_attention_parameters

    for H, G in [(1, 1), (4, 1), (4, 2), (6, 3), (8, 8)]:
        s = {"H": H, "G": G, "d_x": 5, "d_z": 3, "d_attn": 2, "d_mid": 4, "d_out": 6}
        shapes = gq_shapes(s)
        assert gq_attention_parameters(5, 3, 2, 4, 6, H, G) == sum(
            int(np.prod(v)) for v in shapes.values())
    assert gq_attention_parameters(5, 3, 2, 4, 6, 4, 4) == mh_attention_parameters(5, 3, 2, 4,
                                                                                  6, 4)


def test_gqa_kv_cache_shrinks_by_H_over_G_and_the_window_caps_it():
    """(M41) is (M30) times G / H; (M42) stops growing at T = w."""
    from formal_transformers.hyperparameters import DTransformerConfig
    from formal_transformers.memory.attention_variants import (
        gqa_kv_cache_bytes,
        online_softmax_working_bytes,
    )
    from formal_transformers.memory.predict import kv_cache_bytes

    config = DTransformerConfig(N_V=10, l_max=64, d_e=64, d_mlp=8, L=3, H=8)
    full = kv_cache_bytes(config, 2, 40, 4)
    assert gqa_kv_cache_bytes(3, 2, 40, 8, 8, 4) == full
    assert gqa_kv_cache_bytes(3, 2, 40, 2, 8, 4) * 4 == full
    assert gqa_kv_cache_bytes(3, 2, 40, 2, 8, 4, w=16) == gqa_kv_cache_bytes(3, 2, 16, 2, 8, 4)
    assert gqa_kv_cache_bytes(3, 2, 10, 2, 8, 4, w=16) == gqa_kv_cache_bytes(3, 2, 10, 2, 8, 4)
    assert online_softmax_working_bytes(1024, 16, 8) * 10 < attention_working_bytes(1024, 1024, 8)
