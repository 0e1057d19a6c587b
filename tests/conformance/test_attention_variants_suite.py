"""The modern attention primitives pass the conformance suite on both bundled implementations
(spec: Algorithms 40-49): the laws of spec/properties.md run and pass, including the
hand-written backward passes against central differences of the forward
(gradient.finite_difference) and against torch float64 autograd (reference.gradient_agreement
on torch_impl, whose backward is autograd), at the suite's tolerances."""

from __future__ import annotations

import pytest

from conformance.adapters.reference import ReferenceAdapter
from conformance.adapters.torch_adapter import TorchAdapter
from conformance.runner import run

FORWARD = ("gq_attention", "sliding_window_mask", "block_sparse_mask", "qk_norm", "softcap",
           "online_softmax_attention")
BACKWARD = ("gq_attention_backward", "qk_norm_backward", "softcap_backward",
            "online_softmax_attention_backward")


@pytest.mark.parametrize("adapter", [ReferenceAdapter, TorchAdapter], ids=["reference", "torch"])
def test_the_modern_primitives_pass_every_law_that_runs_on_them(adapter):
    results = [r for r in run(adapter(), "quick", 0, only=FORWARD + BACKWARD, shrink=False)
               if r.status != "not covered"]
    bad = [(r.algorithm, r.property, r.status, r.reason) for r in results
           if r.status != "passed"]
    assert not bad, bad
    ran = {(r.algorithm, r.property) for r in results}
    assert {a for a, _ in ran} == set(FORWARD + BACKWARD)
    for alg in BACKWARD:  # both gradient laws ran on every backward entry
        assert {(alg, "gradient.finite_difference"), (alg, "reference.gradient_agreement")} <= ran
