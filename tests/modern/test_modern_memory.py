"""Memory of the modern decoder (spec/memory.md section 11): the ring-buffer KV cache's
measured bytes equal (M67) exactly; grouped-query attention divides them by H / G and a window
caps a layer at w positions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from formal_transformers.canonical import random_parameters
from formal_transformers.hyperparameters import DTransformerConfig, ModernDTransformerConfig
from formal_transformers.memory.predict import kv_cache_bytes, modern_kv_cache_bytes
from torch_impl.modern_decoder import ModernDTransformer

BASE = dict(N_V=11, l_max=64, d_e=32, d_mlp=16, L=3, H=8)


def measured(config: ModernDTransformerConfig, B: int, T: int) -> int:
    model = ModernDTransformer.from_canonical(
        config, random_parameters(config, np.random.default_rng(0)), dtype=torch.float32)
    cache = model.new_cache(B, T)
    with torch.no_grad():  # fill it: prefill, then decode steps past every window
        model(torch.zeros(B, T // 2, dtype=torch.long), cache)
        for _ in range(T - T // 2):
            model(torch.zeros(B, 1, dtype=torch.long), cache)
    return cache.nbytes()


@pytest.mark.parametrize("G", [8, 4, 2, 1])
@pytest.mark.parametrize("windows", [None, (5, None, 12)])
def test_kv_cache_bytes_equal_the_formula(G, windows):
    config = ModernDTransformerConfig(**BASE, G=G, windows=windows)
    assert measured(config, 2, 40) == modern_kv_cache_bytes(config, 2, 40, 4)


def test_grouped_query_attention_divides_the_cache_by_h_over_g():
    mha = measured(ModernDTransformerConfig(**BASE, G=8), 2, 40)
    gpt = DTransformerConfig(**{k: BASE[k] for k in ("N_V", "l_max", "d_e", "d_mlp", "L", "H")})
    assert mha == kv_cache_bytes(gpt, 2, 40, 4)  # G = H is (M30)
    for G in (4, 2, 1):
        assert mha == (8 // G) * measured(ModernDTransformerConfig(**BASE, G=G), 2, 40)


def test_a_window_caps_the_cache_at_w_positions_whatever_the_context():
    config = ModernDTransformerConfig(**BASE, G=2, windows=(4, 4, 4))
    assert measured(config, 1, 16) == measured(config, 1, 60) == 2 * 2 * 4 * 4 * 3 * 4
