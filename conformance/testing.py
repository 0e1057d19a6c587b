"""The suite inside a user's own pytest session: one parametrised test per algorithm x property.

::

    import pytest
    from conformance.testing import check_params, vector_params

    @pytest.mark.parametrize("job", check_params(my_attention, "attention"))
    def test_my_attention(job):
        job.run()            # fails with the law, spec line and counterexample; skips if
                             # not covered

    @pytest.mark.parametrize("job", vector_params("golden/", MyAdapter()))
    def test_golden(job):
        job.run()

Test ids read ``attention-softmax.normalised-float64``. ``check_params`` takes every argument
of ``conformance.check`` (a function, a mapping of functions, a torch module with a mapping);
``vector_params`` a directory written by ``formal-transformers vectors --out`` and an adapter.
The checks are those of conformance.runner, run one by one as conformance/test_conformance.py
does for ``pytest --pyargs conformance``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.bound import Bound
from conformance.registry import PROFILES
from conformance.report import failure_text
from conformance.runner import Result, dtypes_for, run_check, select


@dataclass(frozen=True)
class Job:
    """One test: ``run()`` computes its Result and turns it into pass / fail / skip."""

    id: str
    compute: Callable[[], Result]

    def run(self) -> Result:
        import pytest

        result = self.compute()
        if result.status == "not covered":
            pytest.skip(f"not covered: {result.reason}")
        if result.status != "passed":
            pytest.fail(failure_text(result), pytrace=False)
        return result


def check_params(target: Any, algorithm: str | Iterable[str] | None = None, *,
                 profile: str = "quick", seed: int = 0, only: Iterable[str] | None = None,
                 **adapter_options: Any) -> list[Any]:
    """pytest.param jobs, one per property and dtype of ``target``'s algorithm(s)."""
    import pytest

    from conformance.one_call import adapter_for
    from conformance.registry import all_checks

    adapter = adapter_for(target, algorithm, **adapter_options)
    bound = Bound(adapter)
    prof = PROFILES[profile]
    params = []
    for c in select(all_checks(), list(only) if only else list(adapter.algorithms)):
        if c.algorithm not in adapter.algorithms:
            continue
        for dtype in dtypes_for(c, bound.dtypes) or [None]:
            job = Job(f"{c.algorithm}-{c.property}-{dtype}",
                      lambda c=c, dtype=dtype: run_check(c, bound, dtype, prof, seed))
            params.append(pytest.param(job, id=job.id))
    return params


def vector_params(directory: str | Path, adapter: Any) -> list[Any]:
    """pytest.param jobs, one per algorithm and dtype of the golden vectors in ``directory``."""
    import pytest

    from conformance import vectors

    return [pytest.param(Job(f"{entry['algorithm']}-{vectors.PROPERTY}-{dtype}", compute),
                         id=f"{entry['algorithm']}-{vectors.PROPERTY}-{dtype}")
            for entry, dtype, compute in vectors.jobs(directory, adapter)]
