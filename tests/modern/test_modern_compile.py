"""torch.compile of the modern decoder (spec: Algorithm 65; torch_impl/modern_decoder.py):
one graph, no graph break, for the full pass and for a decode step through the ring-buffer
cache, and the compiled model computes what the eager one does."""

from __future__ import annotations

import numpy as np
import torch
import torch._dynamo as dynamo

from formal_transformers.canonical import random_parameters
from formal_transformers.hyperparameters import ModernDTransformerConfig
from torch_impl.modern_decoder import ModernDTransformer


def test_the_modern_decoder_compiles_without_graph_breaks():
    config = ModernDTransformerConfig(N_V=11, l_max=16, d_e=16, d_mlp=24, L=2, H=4, G=2,
                                      windows=(4, None), attn_softcap=2.0, final_softcap=3.0,
                                      qk_norm="per_head", post_norms=True, norm_offset=True)
    model = ModernDTransformer.from_canonical(
        config, random_parameters(config, np.random.default_rng(0)), dtype=torch.float64)
    x = torch.randint(0, 11, (2, 16), generator=torch.Generator().manual_seed(0))
    full = dynamo.explain(model)(x)
    assert (full.graph_count, full.graph_break_count) == (1, 0), full.break_reasons
    cache = model.new_cache(2)
    with torch.no_grad():
        model(x[:, :9], cache)  # past the window of layer 0: the ring has wrapped
    step = dynamo.explain(model)(x[:, 9:10], cache)
    assert step.graph_break_count == 0, step.break_reasons
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")  # no C++ build in CI
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), rtol=1e-10, atol=1e-12)
