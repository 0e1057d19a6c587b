"""conformance.testing: the one-call check and the golden vectors as parametrised pytest tests
inside a user's own suite (this file is written as a user would write it)."""

from __future__ import annotations

import pytest

from conformance.testing import check_params, vector_params
from tests.conformance.test_one_call import numpy_attention, softmax_over_queries

JOBS = check_params(numpy_attention, "attention", only=["softmax", "reference"])


def test_ids_name_algorithm_property_and_dtype():
    ids = [p.id for p in JOBS]
    assert "attention-softmax.normalised-float64" in ids
    assert "attention-reference.forward_agreement-float32" in ids


@pytest.mark.parametrize("job", JOBS)
def test_numpy_attention(job):
    job.run()


def test_a_mutant_fails_its_job():
    job = next(p.values[0] for p in check_params(softmax_over_queries, "attention",
                                                 only=["softmax.normalised"]))
    with pytest.raises(pytest.fail.Exception, match="softmax.normalised"):
        job.run()


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    from conformance import vectors

    out = tmp_path_factory.mktemp("golden")
    vectors.write(out, only=["layer_norm", "d_inference"])
    return out


def test_vector_jobs(golden):
    from conformance.adapters.reference import ReferenceAdapter
    from conformance.mutants.position_wise import UnbiasedVariance

    params = vector_params(golden, ReferenceAdapter())
    ids = [p.id for p in params]
    assert ids == ["layer_norm-vectors.known_answer-float64",
                   "d_inference-vectors.known_answer-None"]
    params[0].values[0].run()
    with pytest.raises(pytest.skip.Exception, match="stochastic"):
        params[1].values[0].run()
    mutant = vector_params(golden, UnbiasedVariance())
    assert [p.id for p in mutant][:2] == ["layer_norm-vectors.known_answer-float64",
                                          "layer_norm-vectors.known_answer-float32"]
    with pytest.raises(pytest.fail.Exception, match="case layer_norm-"):
        mutant[0].values[0].run()
