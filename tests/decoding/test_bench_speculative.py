"""`bench` speculative (torch_impl/bench_speculative.py), smoke test only: the quick run trains
a tiny pair, times both decoders in the same run and checks greedy identity; the speed-up
itself is measured by `formal-transformers bench --only speculative`, not in CI."""

from __future__ import annotations

import pytest

import torch_impl.bench_speculative as bench
from formal_transformers.errors import BenchmarkCheckError
from torch_impl.bench_speculative import (
    bench_speculative,
    bench_speculative_sampled,
    rounds_report,
)

STEP_COSTS = ("target_step_ms", "target_verify_ms", "draft_step_ms")


def test_quick_speculative_benches_report_same_run_ratios_and_acceptance_rates():
    greedy = bench_speculative(quick=True, repeats=1)
    sampled = bench_speculative_sampled(quick=True, repeats=1)
    assert greedy.details["same_tokens"] is True  # greedy speculative = greedy target
    for result in (greedy, sampled):
        d = result.details
        assert result.ratio == result.theirs.median / result.ours.median > 0
        assert 0 <= d["acceptance_rate"] <= 1
        assert 1 <= d["tokens_per_round"] <= d["k"] + 1
        assert d["rounds"] * d["tokens_per_round"] == pytest.approx(d["prompts"] * d["l_gen"])
        assert all(d[name] > 0 for name in STEP_COSTS)
        assert d["parameters"]["draft"] < d["parameters"]["target"]
        for role in ("target", "draft"):
            t = d["training"][role]
            assert t["excess_nats"] == pytest.approx(t["val_loss"] - t["entropy_rate"], abs=2e-4)


def test_rounds_report_counts_proposals_as_algorithm_61_line_3_does():
    # l_gen = 6, k = 4: kappa = 4 (2 accepted, 3 tokens), then min(4, 6 - 3 - 1) = 2 (both
    # accepted, 3 tokens); a second row: kappa 4 all accepted (5 tokens), then kappa 0
    r = rounds_report([[2, 2], [4, 0]], k=4, l_gen=6)
    assert r["proposed"] == 4 + 2 + 4 + 0
    assert r["acceptance_rate"] == (2 + 2 + 4) / 10
    assert r["rounds"] == 4 and r["tokens_per_round"] == 12 / 4


def test_greedy_tokens_other_than_the_targets_fail_the_benchmark(monkeypatch):
    real = bench.speculative_decoding

    def off_by_one(*args, **kwargs):
        y, accepted = real(*args, **kwargs)
        return (y + 1) % 2, accepted
    monkeypatch.setattr(bench, "speculative_decoding", off_by_one)
    with pytest.raises(BenchmarkCheckError, match="other tokens"):
        bench_speculative(quick=True, repeats=1)
