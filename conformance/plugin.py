"""pytest plugin: ``pytest --pyargs conformance --impl module:Object`` runs the suite inside a
user's own test session (registered as the ``pytest11`` entry point of formal-transformers).

One test per check and dtype, named ``test_property[<algorithm>-<property>-<dtype>]``; what the
adapter does not declare is reported as skipped ("not covered"), never as passed. Options:
``--impl`` (default: the bundled torch implementation), ``--conformance-profile``
(quick / ci / thorough, default quick), ``--conformance-seed`` and ``--conformance-timeout``.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "formal-transformers conformance suite")
    group.addoption("--impl", default=None, metavar="module:Object",
                    help="adapter to test: 'torch' (default), 'reference' or module:Object")
    group.addoption("--conformance-profile", default="quick",
                    choices=("quick", "ci", "thorough"), help="examples per check")
    group.addoption("--conformance-seed", type=int, default=0, help="seed of the search")
    group.addoption("--conformance-timeout", type=float, default=None, metavar="SECONDS",
                    help="time limit of each check (default: none); past it the test fails "
                         "as 'timed out'")


@pytest.fixture(scope="session")
def conformance_adapter(request: pytest.FixtureRequest):
    """The adapter named by --impl, validated (AdapterError if malformed)."""
    from conformance.adapter import load_adapter

    return load_adapter(request.config.getoption("impl"))
