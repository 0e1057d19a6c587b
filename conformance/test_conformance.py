"""The conformance suite as pytest tests (collected by ``pytest --pyargs conformance``).

Each test runs one check of conformance.registry in one dtype against the adapter of
``--impl`` (see conformance/plugin.py); the law, the spec line and the shrunk counterexample
are in the failure message.
"""

from __future__ import annotations

import pytest

from conformance.adapter import load_adapter
from conformance.bound import Bound
from conformance.registry import PROFILES, all_checks
from conformance.report import failure_text
from conformance.runner import dtypes_for, run_check


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conformance_job" not in metafunc.fixturenames:
        return
    adapter = load_adapter(metafunc.config.getoption("impl"))
    jobs, ids = [], []
    for check in all_checks():
        for dtype in dtypes_for(check, tuple(adapter.dtypes)) or [None]:
            jobs.append((check, dtype))
            ids.append(f"{check.algorithm}-{check.property}-{dtype}")
    metafunc.parametrize("conformance_job", jobs, ids=ids)


def test_property(conformance_job, conformance_adapter, request):
    """One property of spec/properties.md on one algorithm of the adapter."""
    check, dtype = conformance_job
    profile = PROFILES[request.config.getoption("conformance_profile")]
    result = run_check(check, Bound(conformance_adapter), dtype, profile,
                       request.config.getoption("conformance_seed"),
                       timeout=request.config.getoption("conformance_timeout"))
    if result.status == "not covered":
        pytest.skip(f"not covered: {result.reason}")
    if result.status != "passed":
        pytest.fail(failure_text(result), pytrace=False)
