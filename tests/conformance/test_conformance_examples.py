"""The example adapters (examples/), code we did not write, pass everything they declare."""

from __future__ import annotations

import pytest

from conformance.adapter import load_adapter
from conformance.runner import run

EXAMPLES = ["conformance.examples.torch_multihead_attention:TorchMultiheadAttention",
            "conformance.examples.torch_encoder_layer:TorchEncoder"]


@pytest.mark.parametrize("spec", EXAMPLES)
def test_example_adapter_passes_what_it_declares(spec):
    adapter = load_adapter(spec)
    results = run(adapter, "quick", 0, only=[a for a in adapter.algorithms
                                            if a != "count_parameters"])
    ran = [r for r in results if r.status != "not covered"]
    assert len(ran) >= 9
    assert all(r.status == "passed" for r in ran), [
        (r.algorithm, r.property, r.dtype, r.reason) for r in ran if r.status != "passed"]
