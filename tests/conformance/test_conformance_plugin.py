"""The pytest plugin (conformance/plugin.py): `pytest --pyargs conformance --impl ...` runs the
suite inside a test session; failures fail, undeclared algorithms are skipped as not covered."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pytest(*args):
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "--pyargs", "conformance", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_the_plugin_passes_the_example_and_skips_what_it_does_not_declare():
    done = _pytest("--impl",
                   "conformance.examples.torch_multihead_attention:TorchMultiheadAttention",
                   "-k", "mhattention-reference or (mlp-reference and not gated_mlp)", "-rs")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed, 2 skipped" in done.stdout
    assert "not covered: the adapter does not declare mlp" in done.stdout


def test_the_plugin_fails_a_mutant_with_the_explanation():
    done = _pytest("--impl", "conformance.mutants.position_wise:MlpAlwaysRelu",
                   "-k", "mlp-reference.forward_agreement-float64")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED: reference.forward_agreement on mlp (float64)" in done.stdout


def test_the_plugin_times_out_a_hanging_adapter(tmp_path):
    (tmp_path / "hanging_adapter.py").write_text(
        "import time\nfrom conformance.adapters.torch_adapter import TorchAdapter\n"
        "class Hang(TorchAdapter):\n    algorithms = ('mlp',)\n"
        "    def mlp(self, X, params, activation):\n        time.sleep(600)\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "--pyargs", "conformance", "--impl", "hanging_adapter:Hang",
                           "--conformance-timeout", "1", "-k",
                           "mlp-reference.forward_agreement-float64"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=os.environ | {"PYTHONPATH": f"{ROOT}:{tmp_path}"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "TIMED OUT: reference.forward_agreement on mlp (float64)" in done.stdout
