"""`formal-transformers verify` (formal_transformers/cli/verify_cmd.py): exit status, table,
failure explanations and the JSON report, on the bundled implementation, the reference and a
mutant."""

from __future__ import annotations

import json

import pytest

from formal_transformers.cli import main


def _verify(capsys, *args):
    rc = main(["verify", *args])
    return rc, capsys.readouterr()


@pytest.mark.parametrize("impl", ["torch", "reference"])
def test_verify_passes_on_the_bundled_implementations_and_writes_the_json(impl, tmp_path,
                                                                           capsys):
    path = tmp_path / "report.json"
    rc, out = _verify(capsys, "--impl", impl, "--profile", "quick", "--json", str(path))
    doc = json.loads(path.read_text())
    failures = [r for r in doc["results"] if r["status"] in ("failed", "error")]
    assert rc == 0, failures
    assert {"implementation", "profile", "seed", "versions", "results", "summary"} <= set(doc)
    assert doc["profile"] == "quick" and doc["seed"] == 0
    assert {"numpy", "hypothesis", "python"} <= set(doc["versions"])
    for r in doc["results"]:
        assert {"algorithm", "property", "status", "examples", "max_error"} <= set(r)
    summary = doc["summary"]
    assert summary["total"] == len(doc["results"]) == sum(
        summary[s] for s in ("passed", "failed", "error", "not covered"))
    assert summary["passed"] >= 90 and summary["not covered"] == 0
    assert "formal-transformers verify" in out.out and "0 failed, 0 error" in out.out


def test_verify_fails_on_a_mutant_and_explains_the_failure(capsys):
    rc, out = _verify(capsys, "--impl", "conformance.mutants.attention:MaskIgnored",
                      "--profile", "quick", "--only", "mask.no_influence")
    assert rc == 1
    text = out.out
    assert "FAILED: mask.no_influence on attention (float64)" in text
    assert "property:  If $\\mathrm{Mask}[t_z, t_x] = 0$" in text
    assert "spec line: Algorithm 4 (Attention), 04-attention.md L" in text
    assert "counterexample (shrunk):" in text and "mask = " in text
    assert "expected:" in text and "observed:" in text


@pytest.mark.parametrize("args, message", [
    (["--impl", "no_such_module_xyz:Adapter"], "AdapterError: --impl no_such_module_xyz"),
    (["--only", "nonsense"], "ConfigError: --only nonsense"),
])
def test_verify_usage_errors_exit_2_with_a_typed_message(args, message, capsys):
    rc, out = _verify(capsys, *args)
    assert rc == 2 and message in out.err
