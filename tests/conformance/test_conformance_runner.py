"""The runner behind verify (conformance/runner.py), the assertion helpers and the statistics:
selection, reproducibility, and failure reports that explain themselves."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conformance.adapters.reference import ReferenceAdapter
from conformance.adapters.torch_adapter import TorchAdapter
from conformance.assertions import PropertyViolation, Tolerance, assert_close, assert_exact
from conformance.bound import Bound
from conformance.mutants.attention import MissingScale
from conformance.properties.sampling import chi_square, chi_square_sf, tempered
from conformance.registry import all_checks
from conformance.runner import run, select
from formal_transformers.errors import ConfigError
from formal_transformers.spec import load_properties


class Seen:
    max_error = 0.0

    def observe(self, error, ratio=None, measure=None):
        self.max_error = max(self.max_error, error)


def test_only_selects_by_property_family_or_algorithm():
    checks = all_checks()
    assert {c.property for c in select(checks, ["mask"])} == {"mask.no_influence",
                                                              "mask.all_ones_equals_none"}
    assert {c.algorithm for c in select(checks, ["layer_norm"])} == {"layer_norm",
                                                                     "layer_norm_backward"}
    assert {c.property for c in select(checks, ["softmax.normalised"])} == {"softmax.normalised"}
    with pytest.raises(ConfigError, match="--only nonsense: not a property id"):
        select(checks, ["nonsense"])


def test_a_failure_reports_statement_spec_line_and_shrunk_counterexample():
    (r,) = [r for r in run(MissingScale(), "ci", only=["attention"])
            if r.property == "reference.forward_agreement" and r.dtype == "float64"]
    assert r.status == "failed"
    assert r.statement == load_properties()["reference.forward_agreement"].statement
    assert r.spec_line.startswith("Algorithm 4 (Attention), 04-attention.md L7:")
    assert "attention output differs at (b=0" in r.reason and "tolerance" in r.reason
    assert "sizes {'B': 1," in r.counterexample  # shrunk to a single sequence
    assert r.expected and r.observed


def test_a_seed_reproduces_a_run():
    def once(seed):
        return [(r.examples, r.max_error) for r in
                run(ReferenceAdapter(), "quick", seed, only=["layer_norm"])]
    assert once(3) == once(3)


def test_assert_close_names_the_index_the_values_and_the_tolerance():
    expected = np.zeros((2, 3))
    observed = expected.copy()
    observed[1, 2] = 0.5
    with pytest.raises(PropertyViolation) as info:
        assert_close(Seen(), "Y", observed, expected, Tolerance(1e-5, 1e-5), ("b", "i"))
    message = str(info.value)
    assert "Y differs at (b=1, i=2): observed 0.5, expected 0" in message
    assert "1 of 6 entries out of tolerance" in message and "atol 1e-05" in message


def test_assert_close_treats_nan_as_a_difference_and_exact_means_exact():
    with pytest.raises(PropertyViolation, match="observed nan"):
        assert_close(Seen(), "Y", np.array([np.nan]), np.array([1.0]), Tolerance(1e-3, 1e-3))
    with pytest.raises(PropertyViolation, match="exact equality required"):
        assert_exact(Seen(), "dX", np.array([0.0, 1e-300]), np.zeros(2))


def test_chi_square_survival_function_matches_known_quantiles():
    assert chi_square_sf(3.841458820694124, 1) == pytest.approx(0.05, rel=1e-9)
    assert chi_square_sf(18.307038053275146, 10) == pytest.approx(0.05, rel=1e-9)
    assert chi_square_sf(0.0, 4) == 1.0


def test_chi_square_accepts_the_right_law_and_rejects_a_wrong_one():
    rng = np.random.default_rng(0)
    q = tempered(np.array([0.5, 0.3, 0.15, 0.05]), 0.5)
    counts = np.bincount(rng.choice(4, 2000, p=q), minlength=4)
    assert chi_square(counts, q)[2] > 1e-3
    wrong = np.bincount(rng.choice(4, 2000, p=tempered(q, 2.0)), minlength=4)
    assert chi_square(wrong, q)[2] < 1e-6


def test_the_notes_of_a_check_reach_the_result_the_table_lines_and_the_json():
    from hypothesis import strategies as st

    from conformance import report
    from conformance.registry import Check, Profile
    from conformance.runner import run_check

    def fn(ctx, case):
        ctx.notes.append("sub-case skipped: d_z = 1")
        ctx.notes.append(f"example {case}")
        ctx.observe(0.0)

    check = Check("structure.distribution", "unembedding", fn,
                  lambda a, c, d: st.integers(0, 9))
    result = run_check(check, Bound(TorchAdapter()), "float64", Profile("t", 20, 10), 0,
                       False, None)
    assert result.status == "passed"
    assert result.notes[0] == "sub-case skipped: d_z = 1"  # each note once, in order
    assert len(result.notes) <= 6 and result.notes.count("sub-case skipped: d_z = 1") == 1
    assert result.to_json()["notes"] == result.notes
    lines = report.note_lines([result])
    assert lines[0] == "unembedding / structure.distribution (float64): sub-case skipped: d_z = 1"
    assert "notes" not in dataclasses.replace(result, notes=[]).to_json()


def test_a_fixed_shape_decoder_fixes_batch_and_prompt_length_in_constrain():
    """constrain sees B, the prompt length l and l_gen of inference cases (the context length
    l_z for Algorithm 15) beside the config fields, and the cases follow what it returns."""
    class FixedShape(TorchAdapter):
        algorithms = ("d_inference", "d_decode", "ed_inference", "ed_decode")
        prompts: list = []

        def constrain(self, algorithm, sizes):
            inference = "l_gen" in sizes or ("l_z" in sizes and "l" not in sizes)  # D or ED
            fixed = {"B": 2, "l": 3, "l_gen": 2, "l_z": 4, "l_max": 6} if inference else {}
            return sizes | {k: v for k, v in fixed.items() if k in sizes}

        def d_inference(self, prompt, params, config, l_gen, tau, seed):
            type(self).prompts.append(prompt.shape)
            return super().d_inference(prompt, params, config, l_gen, tau, seed)

        def ed_decode(self, z, params, config, l_gen, bos_token, z_real=None):
            if z_real is None:
                type(self).prompts.append(z.shape)
            return super().ed_decode(z, params, config, l_gen, bos_token, z_real)

    results = run(FixedShape(), "quick", 0, only=["kv_cache.equivalence"], shrink=False)
    assert all(r.status == "passed" for r in results if r.status != "not covered"), [
        (r.algorithm, r.reason) for r in results]
    assert {r.algorithm for r in results if r.status == "passed"} == {"d_inference",
                                                                       "ed_inference"}
    assert set(FixedShape.prompts) == {(2, 3), (2, 4)}
