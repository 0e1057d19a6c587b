"""The memory laws of spec/properties.md on the bundled implementations: memory.reference_peak
(within 2 %), memory.torch_peak (within 10 %), memory.growth_law (exponents 2 and 1)."""

from __future__ import annotations

import pytest

from formal_transformers.memory import properties
from formal_transformers.memory.growth import fit_exponent


def _explain(result: properties.LawResult) -> str:
    return f"{result.id} failed:\n" + "\n".join(result.lines)


@pytest.mark.parametrize("case", properties.REFERENCE_CASES, ids=lambda c: c[0])
def test_reference_peak_equals_the_prediction_within_2_percent(case):
    result = properties.reference_peak_law((case,))
    assert result.passed, _explain(result)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name", ["tiny-decoder", "tiny-encoder", "tiny-encoder-decoder"])
def test_torch_peak_equals_the_prediction_within_10_percent(name, dtype):
    result = properties.torch_peak_law(tuple(c for c in properties.TORCH_CASES
                                             if c[:2] == (name, dtype)))
    assert result.passed, _explain(result)


def test_attention_memory_grows_quadratically_naive_and_linearly_with_sdpa():
    result = properties.growth_law()
    assert result.passed, _explain(result)


def test_exponent_fit_recovers_known_powers():
    lengths = [64, 128, 256, 512]
    assert fit_exponent(lengths, [l**2 for l in lengths]) == pytest.approx(2.0)
    assert fit_exponent(lengths, [3 * l for l in lengths]) == pytest.approx(1.0)


def test_law_table_matches_the_property_catalogue():
    """Every memory law is a property of spec/properties.md, and run_laws rejects others."""
    from formal_transformers.spec import load_properties

    catalogue = load_properties()
    assert set(properties.LAWS) <= set(catalogue)
    with pytest.raises(KeyError, match="unknown memory law"):
        properties.run_laws(["memory.nonsense"])


def test_a_wrong_prediction_fails_the_law(monkeypatch):
    """The law can fail: halve the predicted activations and the torch peak is outside 10 %."""
    from formal_transformers.memory import predict

    real = predict.total_bytes
    monkeypatch.setattr(predict, "total_bytes", lambda terms: real(terms) // 2)
    result = properties.torch_peak_law((("tiny-decoder", "float32", "sdpa"),))
    assert not result.passed
