"""PyTorch's own grouped-query attention, F.scaled_dot_product_attention(enable_gqa=True),
passes what it declares through an adapter (conformance/examples/torch_sdpa_gqa.py; spec:
Algorithm 40): its kv-head mapping is the spec's repeat-interleave, and the tiled mapping is not."""

from __future__ import annotations

import torch

from conformance.adapter import load_adapter
from conformance.examples.torch_sdpa_gqa import TorchSDPAGQA
from conformance.runner import run


def test_sdpa_enable_gqa_passes_every_law_it_declares():
    adapter = load_adapter("conformance.examples.torch_sdpa_gqa:TorchSDPAGQA")
    ran = [r for r in run(adapter, "quick", 0, only=adapter.algorithms, shrink=False)
           if r.status != "not covered"]
    gqa = {r.property for r in ran if r.algorithm == "gq_attention"}
    assert {"gqa.full_groups_is_mha", "gqa.duplicated_kv_is_mha", "gqa.group_permutation",
            "reference.forward_agreement", "mask.no_influence", "batch.independence"} <= gqa
    assert all(r.status == "passed" for r in ran), [
        (r.algorithm, r.property, r.dtype, r.reason) for r in ran if r.status != "passed"]


class TiledSDPA(TorchSDPAGQA):
    """The same kernel fed kv heads tiled by hand (k.repeat) instead of enable_gqa."""

    def gq_attention(self, X, Z, params, mask=None):
        H, G = params["W_q"].shape[0], params["W_k"].shape[0]
        tiled = dict(params)
        for name in ("W_k", "b_k", "W_v", "b_v"):
            tiled[name] = torch.from_numpy(params[name]).repeat(
                (H // G,) + (1,) * (params[name].ndim - 1)).numpy()
        return super().gq_attention(X, Z, tiled, mask)


def test_the_same_kernel_with_tiled_kv_heads_fails_the_grouping_laws():
    failed = {r.property for r in run(TiledSDPA(), "quick", 0, only=("gq_attention",),
                                      shrink=False) if r.status == "failed"}
    assert {"gqa.duplicated_kv_is_mha", "gqa.group_permutation"} <= failed
