"""`formal-transformers verify` (formal_transformers/cli/verify_cmd.py): exit status, table,
failure explanations and the JSON report, on the bundled implementation, the reference and a
mutant."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_verify_fails_on_a_mutant_and_explains_the_failure(capsys, tmp_path):
    rc, out = _verify(capsys, "--impl", "conformance.mutants.attention:MaskIgnored",
                      "--profile", "quick", "--only", "mask.no_influence",
                      "--json", str(tmp_path / "r.json"))
    assert rc == 1
    text = out.out
    assert "FAILED: mask.no_influence on attention (float64)" in text
    assert "property:  If $\\mathrm{Mask}[t_z, t_x] = 0$" in text
    assert "spec line: Algorithm 4 (Attention), 04-attention.md L" in text
    assert "counterexample (shrunk):" in text and "mask = " in text
    assert "expected:" in text and "observed:" in text
    assert "Verifying mutant MaskIgnored (The mask is accepted and ignored" in text
    assert "largest abs error of the run:" in text and "x tolerance" in text
    assert "abs error of the shrunk example:" in text
    assert "likely mistake: pattern matches MaskIgnored" in text
    repro = tmp_path / "repro" / "attention__mask.no_influence.py"
    assert f"repro script: {repro}" in text and repro.exists()
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["implementation"].startswith("mutant MaskIgnored")
    (failed,) = [r for r in doc["results"] if r["status"] == "failed"]
    assert failed["max_ratio"] > 1 and failed["shrunk_ratio"] > 1 and failed["measure"]


def test_the_repro_script_rebuilds_the_example_and_prints_expected_vs_observed(tmp_path):
    from conformance import report
    from conformance.mutants.attention import MaskIgnored
    from conformance.runner import run

    results = run(MaskIgnored(), "quick", 0, only=["mask.no_influence"])
    (path,) = report.write_repros(results, "conformance.mutants.attention:MaskIgnored",
                                  "quick", tmp_path).values()
    assert path.name == "attention__mask.no_influence.py"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=120, env=os.environ | {"PYTHONPATH": str(root)})
    assert proc.returncode == 1, proc.stderr
    assert "FAILED:" in proc.stdout and "expected:" in proc.stdout
    assert "observed:" in proc.stdout and "attention case: sizes" in proc.stdout


def test_not_covered_cells_are_summarised_per_algorithm_unless_asked(capsys):
    args = ("--impl", "conformance.examples.torch_multihead_attention:TorchMultiheadAttention",
            "--profile", "quick", "--only", "mask")
    rc, out = _verify(capsys, *args)
    assert rc == 0 and "not covered: attention: 2 checks not covered (the adapter does not " \
        "declare attention)" in out.out
    assert "│ attention " not in out.out
    rc, out = _verify(capsys, *args, "--show-uncovered")
    assert "│ attention " in out.out and "not covered: attention" not in out.out


def test_help_documents_the_exit_codes_and_the_new_options(capsys):
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    text = capsys.readouterr().out
    for fragment in ("exit status:", "3    nothing was checked", "--timeout SECONDS",
                     "--show-uncovered", "--repro-dir DIR", "130"):
        assert fragment in text


@pytest.mark.parametrize("args, message", [
    (["--impl", "no_such_module_xyz:Adapter"], "AdapterError: --impl no_such_module_xyz"),
    (["--only", "nonsense"], "ConfigError: --only nonsense"),
])
def test_verify_usage_errors_exit_2_with_a_typed_message(args, message, capsys):
    rc, out = _verify(capsys, *args)
    assert rc == 2 and message in out.err
