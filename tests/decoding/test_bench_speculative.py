"""`bench` speculative (torch_impl/bench_speculative.py), smoke test only: the quick run trains
a tiny pair, times both decoders in the same run and checks greedy identity; the speed-up
itself is measured by `formal-transformers bench --only speculative`, not in CI."""

from __future__ import annotations

from torch_impl.bench_speculative import bench_speculative


def test_quick_speculative_bench_reports_a_same_run_ratio_and_acceptance_rates():
    result = bench_speculative(quick=True, repeats=1)
    d = result.details
    assert d["same_tokens"] is True  # greedy speculative = greedy target, on the trained pair
    assert result.ratio == result.theirs.median / result.ours.median > 0
    assert 0 <= d["acceptance_rate_greedy"] <= 1 and 0 <= d["acceptance_rate_sampled_tau_1"] <= 1
    assert d["parameters"]["draft"] < d["parameters"]["target"]
