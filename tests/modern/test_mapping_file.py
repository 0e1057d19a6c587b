"""Bring your own nn.Module (conformance/adapters/mapped.py): the hand-written Llama-style
module of conformance/examples/ passes under its mapping file; a mapping that declares the
other RoPE layout or swaps the fused k/v rows fails; an incomplete mapping is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.adapter import load_adapter
from conformance.runner import run
from formal_transformers.errors import AdapterError

ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "conformance" / "examples" / "llama_style_mapping.toml"


def _results(mapping: Path, only=("modern_d_transformer",), profile="quick"):
    adapter = load_adapter(None, str(mapping))  # the file's factory key names the module
    return {(r.property, r.dtype): r for r in run(adapter, profile, 0, only=only)
            if r.algorithm == "modern_d_transformer"}


def test_the_llama_style_example_passes_what_its_mapping_declares():
    results = _results(MAPPING)
    ran = [r for r in results.values() if r.status != "not covered"]
    assert len(ran) >= 6
    assert all(r.status == "passed" and r.examples > 0 for r in ran), [
        (r.property, r.reason) for r in ran if r.status != "passed"]


@pytest.mark.parametrize(("old", "new"), [
    ('layout = "interleaved"', 'layout = "half_split"'),
    ('rows = ["H * d_head", "(H + G) * d_head"]',
     'rows = ["(H + G) * d_head", "(H + 2 * G) * d_head"]'),
])
def test_a_mapping_that_misdescribes_the_module_fails(tmp_path, old, new):
    text = MAPPING.read_text()
    assert old in text
    if "rows" in old:  # swap the k and v slices of the fused wqkv
        v_rows = 'rows = ["(H + G) * d_head", "(H + 2 * G) * d_head"]'
        text = text.replace(v_rows, "V_ROWS").replace(old, new).replace(
            "V_ROWS", 'rows = ["H * d_head", "(H + G) * d_head"]')
    else:
        text = text.replace(old, new)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(text)
    results = _results(wrong, only=("reference.forward_agreement",), profile="ci")
    assert results[("reference.forward_agreement", "float64")].status == "failed"


def test_an_incomplete_mapping_is_refused_by_name(tmp_path):
    text = "\n".join(line for line in MAPPING.read_text().splitlines()
                     if not line.startswith('"layers.{l}.mlp.W_up"'))
    partial = tmp_path / "partial.toml"
    partial.write_text(text)
    results = _results(partial, only=("reference.forward_agreement",))
    r = results[("reference.forward_agreement", "float64")]
    assert r.status == "error" and "layers.0.mlp.W_up" in r.reason
    with pytest.raises(AdapterError, match="--map needs the nn.Module to build"):
        load_adapter("torch", str(MAPPING))


def test_check_reads_the_same_mapping_file_in_one_call(tmp_path):
    """``check(Factory, mapping="file.toml")``: the notebook path to what ``verify --map``
    runs; the report passes on the example, and raises on a file declaring the other layout."""
    from conformance import check
    from conformance.examples.llama_style import TinyLlama

    report = check(TinyLlama, "modern_d_transformer", mapping=MAPPING,
                   only=["reference.forward_agreement", "causal.non_leakage"])
    ran = [r for r in report.results if r.status != "not covered"]
    assert ran and all(r.status == "passed" and r.examples > 0 for r in ran), report
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(MAPPING.read_text().replace('layout = "interleaved"',
                                                 'layout = "half_split"'))
    with pytest.raises(Exception, match="reference.forward_agreement"):
        check(None, mapping=str(wrong), only=["reference.forward_agreement"],
              raise_on_failure=True)  # the factory comes from the file


def test_check_with_a_mapping_file_refuses_what_it_cannot_build():
    from conformance import check
    from conformance.examples.llama_style import TinyLlama

    with pytest.raises(AdapterError, match="not an instance"):
        check(TinyLlama(vocab_size=8, dim=8, n_layers=1, n_heads=2, n_kv_heads=1, hidden=8),
              mapping=MAPPING)
    with pytest.raises(AdapterError, match="not 'attention'"):
        check(TinyLlama, "attention", mapping=MAPPING)
