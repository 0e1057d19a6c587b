"""The pytest plugin (conformance/plugin.py): `pytest --pyargs conformance --impl ...` runs the
suite inside a test session; failures fail, undeclared algorithms are skipped as not covered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pytest(*args):
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "--pyargs", "conformance", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_the_plugin_passes_the_example_and_skips_what_it_does_not_declare():
    done = _pytest("--impl", "examples.torch_multihead_attention:TorchMultiheadAttention",
                   "-k", "mhattention-reference or (mlp-reference and not gated_mlp)", "-rs")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed, 2 skipped" in done.stdout
    assert "not covered: the adapter does not declare mlp" in done.stdout


def test_the_plugin_fails_a_mutant_with_the_explanation():
    done = _pytest("--impl", "conformance.mutants.position_wise:MlpAlwaysRelu",
                   "-k", "mlp-reference.forward_agreement-float64")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED: reference.forward_agreement on mlp (float64)" in done.stdout
