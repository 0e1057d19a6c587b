"""Search that reaches real regimes (issue 12): within the ci budget some examples of every
architecture check -- forward, training and inference -- have sequences of 16 tokens or
more, and a failure's report keeps its size (largest error of the run, shrunk example's
error, each as a multiple of the tolerance)."""

from __future__ import annotations

import dataclasses

import pytest

from conformance.adapters.reference import ReferenceAdapter
from conformance.bound import Bound
from conformance.mutants.evidence import CausalMaskWithWindow
from conformance.registry import PROFILES, all_checks
from conformance.runner import run, run_check

ARCH = ("d_transformer", "e_transformer", "ed_transformer", "d_training", "e_training",
        "ed_training", "d_inference", "ed_inference")
CHECKS = [c for c in all_checks() if c.algorithm in ARCH and c.property != "memory.parameter_count"]


def _length(case) -> int:
    """The longest token sequence an example makes the adapter process."""
    d = case.data
    if "prompt" in d:  # a sampling check may generate a single token after the prompt
        return d["prompt"].shape[1] + 1
    if "l_max_gen" in d:  # the context, or bos and one sampled token at least
        return max(d["z"].shape[1], 2)
    return max(d["x"].shape[1], d["z"].shape[1] if "z" in d else 0)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.key)
def test_every_architecture_check_reaches_sixteen_tokens_within_the_ci_budget(check):
    lengths = []
    probe = dataclasses.replace(check, fn=lambda ctx, case: lengths.append(_length(case)))
    result = run_check(probe, Bound(ReferenceAdapter()), "float64", PROFILES["ci"], 0)
    assert result.status == "passed" and lengths
    assert max(lengths) >= 16, f"{check.key}: longest example {max(lengths)} tokens"
    assert min(lengths) <= 6, "short examples are drawn too"


def test_a_window_on_the_causal_mask_is_caught_and_its_size_reported():
    (r,) = [r for r in run(CausalMaskWithWindow(), "ci", 0,
                           only=["reference.forward_agreement"])
            if r.algorithm == "d_transformer" and r.dtype == "float64"]
    assert r.status == "failed"
    assert "'l': " in r.counterexample and r.case.sizes["l"] > CausalMaskWithWindow.WINDOW
    assert r.max_ratio >= r.shrunk_ratio > 1 and r.max_error >= r.shrunk_error
    assert r.measure == "abs error"
