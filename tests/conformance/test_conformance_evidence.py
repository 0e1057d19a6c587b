"""No green without evidence (issue 12): non-finite values fail every comparison, a run that
checked nothing is not a pass, a hanging adapter times out, Ctrl-C leaves a report, and a
broken adapter module is a one-line usage error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conformance.assertions import PropertyViolation, Tolerance, assert_close, assert_exact
from conformance.mutants.attention import MissingScale
from conformance.mutants.evidence import AttentionAllNaN, NothingDeclared
from conformance.properties.gradient import compare
from conformance.registry import PROFILES, Context
from conformance.runner import nothing_checked, run
from formal_transformers.cli import main

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from formal_transformers.cli import main; "
       "sys.exit(main())"]
TOL = Tolerance(1e-3, 1e-3)


def _ctx():
    from conformance.adapters.reference import ReferenceAdapter
    from conformance.bound import Bound

    return Context(Bound(ReferenceAdapter()), np.dtype("float64"), "attention", PROFILES["quick"])


@pytest.mark.parametrize("observed, expected, says", [
    ([np.nan], [np.nan], "both sides are non-finite"),
    ([np.inf], [np.inf], "both sides are non-finite"),
    ([np.nan], [1.0], "where the expected value is finite"),
    ([1.0], [np.inf], "the expected value is non-finite"),
])
def test_a_non_finite_value_is_never_agreement(observed, expected, says):
    ctx = _ctx()
    with pytest.raises(PropertyViolation, match=says):
        assert_close(ctx, "Y", np.array(observed), np.array(expected), TOL)
    assert ctx.max_error == np.inf and ctx.max_ratio == np.inf
    with pytest.raises(PropertyViolation, match="non-finite"):
        assert_exact(ctx, "Y", np.array(observed), np.array(expected))


def test_a_nan_gradient_fails_the_finite_difference_with_a_message_that_says_so():
    ctx = _ctx()
    data = {"params": {"w": np.ones(2)}}
    with pytest.raises(PropertyViolation, match="gradients are not finite"):
        compare(ctx, "f", lambda d: float(d["params"]["w"].sum()), data, data["params"],
                {"w": np.ones(2)}, {"w": float("nan")})
    with pytest.raises(PropertyViolation, match="central difference of the forward"):
        compare(ctx, "f", lambda d: float("nan"), data, data["params"], {"w": np.ones(2)},
                {"w": 2.0})


def test_context_counts_a_nan_error_as_infinite():
    ctx = _ctx()
    ctx.observe(1e-3, 0.5, "abs error")
    ctx.observe(float("nan"))
    assert ctx.max_error == np.inf and ctx.measure == "abs error"


def test_the_all_nan_attention_fails_every_law_and_the_report_names_the_pattern():
    from conformance.report import matching_mutants

    results = run(AttentionAllNaN(), "quick", 0, only=["attention"], shrink=False)
    ran = [r for r in results if r.status != "not covered" and r.algorithm == "attention"
           and r.property != "causal.zero_jacobian"]  # that one calls the intact backward
    assert len(ran) >= 9 and all(r.status == "failed" for r in ran), [
        (r.property, r.status) for r in ran]
    assert any("non-finite" in r.reason for r in ran)
    assert any("AttentionAllNaN" in line for line in matching_mutants(results))


class Hanging(MissingScale):
    """attention never returns (a deadlock in the user's code)."""

    def attention(self, X, Z, params, mask=None):
        while True:
            time.sleep(0.01)


@pytest.mark.parametrize("in_thread", [False, True], ids=["main thread", "worker thread"])
def test_a_hanging_adapter_times_out_instead_of_hanging_verify(in_thread):
    out = {}

    def go():
        out["results"] = run(Hanging(), "quick", 0, only=["mask.all_ones_equals_none"],
                             timeout=0.5)

    start = time.perf_counter()
    if in_thread:
        worker = threading.Thread(target=go)
        worker.start()
        worker.join(30)
    else:
        go()
    assert time.perf_counter() - start < 20
    statuses = {(r.algorithm, r.status) for r in out["results"]}
    assert ("attention", "timed out") in statuses
    (r,) = [r for r in out["results"] if r.algorithm == "attention"]
    assert "0.5 s" in r.reason and r.to_json()["status"] == "timed out"


def _verify(capsys, *args):
    rc = main(["verify", *args])
    return rc, capsys.readouterr()


def test_nothing_declared_exits_3_and_says_why(tmp_path, capsys):
    assert nothing_checked(run(NothingDeclared(), "quick", 0, only=NothingDeclared.only))
    path = tmp_path / "r.json"
    rc, out = _verify(capsys, "--impl", "conformance.mutants.evidence:NothingDeclared",
                      "--profile", "quick", "--only", "attention", "--json", str(path))
    assert rc == 3 and "nothing was checked" in out.out and "declares no algorithm" in out.out
    doc = json.loads(path.read_text())
    assert doc["exit_status"] == 3 and "declares no algorithm" in doc["nothing_checked"]
    assert "attention" in doc["not_covered"]


def test_only_count_parameters_exits_3_and_explains_it_cannot_be_checked_alone(
        tmp_path, capsys, monkeypatch):
    (tmp_path / "counts_only.py").write_text(textwrap.dedent("""
        from conformance.adapters.torch_adapter import TorchAdapter
        class Counts(TorchAdapter):
            algorithms = ("count_parameters",)
    """))
    monkeypatch.chdir(tmp_path)
    rc, out = _verify(capsys, "--impl", "counts_only:Counts", "--profile", "quick",
                      "--only", "memory")
    assert rc == 3 and "cannot be checked alone" in out.out
    assert "not covered: layer_norm: 1 check not covered" in out.out


@pytest.mark.parametrize("source, says", [
    ("def broken(:\n", "SyntaxError"),
    ("raise RuntimeError('no GPU here')\n", "RuntimeError: no GPU here"),
    ("class Adapter:\n    def __init__(self):\n        raise ValueError('bad\\nconfig')\n",
     "raised ValueError: bad config"),
    ("class Adapter:\n    name = ''\n", "attribute 'name' must be a non-empty string"),
])
def test_a_broken_adapter_module_exits_2_with_one_line_and_no_traceback(source, says, tmp_path):
    (tmp_path / "broken_adapter.py").write_text(source)
    proc = subprocess.run([*CLI, "verify", "--impl",
                           "broken_adapter:Adapter", "--profile", "quick"], cwd=tmp_path,
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert says in lines[0] and "AdapterError" in lines[0]


def _env():
    return os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("bad", ["dir", "file-parent"])
def test_json_path_is_checked_before_the_run(bad, tmp_path, capsys):
    blocker = tmp_path / "f"
    blocker.write_text("")
    path = tmp_path if bad == "dir" else blocker / "report.json"
    start = time.perf_counter()
    rc, out = _verify(capsys, "--json", str(path))
    assert rc == 2 and "OutputPathError: --json" in out.err, out.err
    assert time.perf_counter() - start < 5 and "Verifying" not in out.out


SLOW = textwrap.dedent("""
    import time
    from conformance.adapters.torch_adapter import TorchAdapter
    class Slow(TorchAdapter):
        algorithms = ("token_embedding", "attention")
        def attention(self, X, Z, params, mask=None):
            print("ATTENTION STARTED", flush=True)
            time.sleep(600)
""")


def test_ctrl_c_prints_the_table_so_far_and_writes_the_json_interrupted(tmp_path):
    (tmp_path / "slow_adapter.py").write_text(SLOW)
    report = tmp_path / "out" / "r.json"
    proc = subprocess.Popen([*CLI, "verify",
                             "--impl", "slow_adapter:Slow", "--profile", "quick", "--only",
                             "token_embedding", "attention", "--json", str(report)],
                            cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    for line in proc.stdout:
        if "ATTENTION STARTED" in line:
            break
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in rest
    assert "token_embedding" in rest  # the table so far
    doc = json.loads(report.read_text())
    assert doc["interrupted"] is True and doc["exit_status"] == 130
    assert {r["algorithm"] for r in doc["results"]} == {"token_embedding"}


def test_timeout_status_reaches_table_and_json(tmp_path, capsys, monkeypatch):
    (tmp_path / "slow_adapter.py").write_text(SLOW)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "r.json"
    rc, out = _verify(capsys, "--impl", "slow_adapter:Slow", "--profile", "quick", "--only",
                      "mask.all_ones_equals_none", "--timeout", "1", "--json", str(path))
    assert rc == 1 and "timed out" in out.out and "TIMED OUT" in out.out
    statuses = {r["status"] for r in json.loads(path.read_text())["results"]}
    assert "timed out" in statuses


def test_repro_dir_that_is_a_file_is_a_usage_error(tmp_path, capsys):
    blocker = tmp_path / "f"
    blocker.write_text("")
    rc, out = _verify(capsys, "--repro-dir", str(blocker))
    assert rc == 2 and "ConfigError: --repro-dir" in out.err and "is a file" in out.err
