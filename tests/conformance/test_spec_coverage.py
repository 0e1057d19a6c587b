"""Spec-line coverage (conformance/coverage.py): the verify run traces the reference and says
which pseudocode lines it executed; the report's JSON carries the figure (issue 15)."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from types import SimpleNamespace

import pytest

from conformance import coverage
from conformance.adapters.reference import ReferenceAdapter
from conformance.report import to_json
from conformance.runner import run

SOURCE = textwrap.dedent("""\
    def f(x, flag):
        y = x + 1  # Alg 90 L1
        z = max(y,
                2)  # Alg 90 L2-3
        if flag:
            return z  # Alg 90 L4
        else:  # Alg 90 L5
            w = -z
        return w  # Alg 90 L6
    """)


@pytest.fixture
def traced_module(tmp_path):
    path = tmp_path / "ft_cov_sample.py"
    path.write_text(SOURCE)
    spec = importlib.util.spec_from_file_location("ft_cov_sample", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return path, module


def test_citations_map_to_the_line_that_executes():
    assert coverage.parse_citations("x = 1  # Alg 4 L5-6, L8") == [(4, 5), (4, 6), (4, 8)]


def test_citation_map_uses_a_statement_first_line_and_an_else_clause_first_statement(
        traced_module):
    path, _ = traced_module
    cmap = {line: cites for (_, line), cites in coverage.citation_map([path]).items()}
    assert cmap[2] == ((90, 1),)
    assert cmap[3] == ((90, 2), (90, 3))  # the call continued on line 4 runs as line 3
    assert cmap[8] == ((90, 5),)  # "else:" never runs itself: its first statement does
    assert cmap[6] == ((90, 4),) and cmap[9] == ((90, 6),)


def test_the_tracer_marks_exactly_the_lines_that_ran(traced_module):
    path, module = traced_module
    tracer = coverage.Tracer(coverage.citation_map([path]))
    assert tracer.start()
    try:
        module.f(1, True)
    finally:
        tracer.stop()
    alg = SimpleNamespace(id="sample", number=90, pseudocode=[None] * 6)
    doc = coverage.report(tracer, [alg])
    assert doc["algorithms"]["sample"]["executed"] == [1, 2, 3, 4]
    assert doc["algorithms"]["sample"]["not_executed"] == [5, 6]
    assert (doc["lines"], doc["executed"], doc["fraction"]) == (6, 4, round(4 / 6, 4))


@pytest.mark.skipif(hasattr(sys, "monitoring"), reason="sys.monitoring coexists with tracers")
def test_the_tracer_steps_aside_for_another_tracer(traced_module):
    path, _ = traced_module
    previous = sys.gettrace()
    sys.settrace(lambda *a: None)
    try:
        tracer = coverage.Tracer(coverage.citation_map([path]))
        assert not tracer.start()
        assert "another tracer" in coverage.report(tracer, [])["unavailable"]
    finally:
        sys.settrace(previous)


def test_a_verify_run_reports_the_spec_lines_it_executed_in_its_json(monkeypatch):
    monkeypatch.delenv("FT_SPEC_COVERAGE", raising=False)
    results = run(ReferenceAdapter(), "quick", only=["layer_norm"])
    doc = to_json(results, "reference", "reference", "quick", 0, 1.0)
    cov = doc["spec_coverage"]
    assert cov == coverage.last_report() and cov["measured_on"] == "reference_numpy"
    assert cov["algorithms"]["layer_norm"]["executed"] == [1, 2, 3]
    assert cov["algorithms"]["d_inference"]["executed"] == []
    assert 0 < cov["executed"] < cov["lines"]
    assert doc["date"] and "cpu_count" in doc["machine"] and "commit" in doc
    assert sys.gettrace() is None or hasattr(sys, "monitoring"), "the tracer was left on"


def test_spec_coverage_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("FT_SPEC_COVERAGE", "0")
    results = run(ReferenceAdapter(), "quick", only=["layer_norm"])
    assert coverage.last_report() is None
    assert to_json(results, "reference", "reference", "quick", 0, 1.0)["spec_coverage"] is None
