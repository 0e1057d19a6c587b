"""The adapter protocol (conformance/adapter.py, conformance/bound.py): malformed adapters get
an AdapterError naming the method and what was expected; undeclared algorithms are reported as
not covered, never as passed."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conformance.adapter import Adapter, load_adapter, validate_adapter
from conformance.adapters.reference import ReferenceAdapter
from conformance.runner import run
from formal_transformers.errors import AdapterError

REF = ReferenceAdapter()


class OnlyAttention(Adapter):
    name = "only attention"
    dtypes = ("float64",)
    algorithms = ("attention",)

    def attention(self, X, Z, params, mask=None):
        return REF.attention(X, Z, params, mask)


def test_a_declared_but_missing_method_is_named_with_its_signature():
    class Forgetful(Adapter):
        algorithms = ("attention", "mlp")

        def attention(self, X, Z, params, mask=None):
            return X

    with pytest.raises(AdapterError, match=r"declares 'mlp' but has no method mlp\(\) "
                                           r"\(expected: mlp\(X, params, activation\)"):
        validate_adapter(Forgetful())


@pytest.mark.parametrize("attr, value, message", [
    ("name", "", "attribute 'name' must be a non-empty string"),
    ("dtypes", ("float8",), "attribute 'dtypes' must be a non-empty tuple drawn from"),
    ("algorithms", ("attention", "flash_attention"), "unknown algorithm 'flash_attention'"),
    ("algorithms", "attention", "attribute 'algorithms' must be a tuple"),
])
def test_malformed_declarations_are_rejected_naming_the_attribute(attr, value, message):
    adapter = OnlyAttention()
    setattr(adapter, attr, value)
    with pytest.raises(AdapterError, match=message):
        validate_adapter(adapter)


def test_a_duck_typed_adapter_needs_no_base_class():
    class Duck:
        name, dtypes, algorithms = "duck", ("float64",), ("mlp",)

        def mlp(self, X, params, activation):
            return REF.mlp(X, params, activation)

    validate_adapter(Duck())
    results = run(Duck(), "quick", only=["mlp"])
    assert {r.status for r in results} == {"passed", "not covered"}


def test_undeclared_algorithms_are_not_covered_never_passed():
    results = run(OnlyAttention(), "quick")
    by_status = {}
    for r in results:
        by_status.setdefault(r.status, set()).add(r.algorithm)
    assert by_status["passed"] == {"attention"}
    assert "attention" not in by_status.get("failed", set())
    assert {"mlp", "d_transformer", "attention_backward"} <= by_status["not covered"]
    needs_backward = [r for r in results if r.property == "causal.zero_jacobian"
                      and r.algorithm == "attention"]
    assert needs_backward[0].status == "not covered"
    assert "attention_backward" in needs_backward[0].reason
    assert all(r.examples == 0 for r in results if r.status == "not covered")


@pytest.mark.parametrize("broken, message", [
    (lambda X, Z, p, mask: X[:, :, :1].repeat(2, axis=2),
     r"attention returned output of shape .*, expected \("),
    (lambda X, Z, p, mask: REF.attention(X, Z, p, mask).astype(np.float32),
     r"attention returned output of dtype float32, expected float64"),
    (lambda X, Z, p, mask: 1 / 0, r"attention\(float64\(.*raised ZeroDivisionError"),
])
def test_wrong_outputs_and_exceptions_become_errors_naming_the_method(broken, message):
    class Broken(OnlyAttention):
        def attention(self, X, Z, params, mask=None):
            return broken(X, Z, params, mask)

    results = run(Broken(), "quick", only=["reference.forward_agreement"])
    (attention,) = [r for r in results if r.algorithm == "attention"]
    assert attention.status == "error"
    assert re.search(message, attention.reason), attention.reason


def test_load_adapter_names_what_is_wrong_with_the_target():
    assert load_adapter("reference").name == "reference_numpy"
    for spec, message in [("no_colon", "must be 'torch', 'reference', 'hf:DIR' or 'module:Object'"),
                          ("no_such_module_xyz:A", "cannot import module 'no_such_module_xyz'"),
                          ("conformance.adapter:Nope", "has no attribute 'Nope'")]:
        with pytest.raises(AdapterError, match=message):
            load_adapter(spec)


def test_an_adapter_class_that_cannot_be_built_is_reported():
    with pytest.raises(AdapterError, match="constructible with no arguments"):
        load_adapter("conformance.bound:Bound")
