"""`bench` speculative (torch_impl/bench_speculative.py), smoke test only: the quick run trains
a tiny pair, times both decoders in the same run and checks greedy identity; the speed-up
itself is measured by `formal-transformers bench --only speculative`, not in CI."""

from __future__ import annotations

from torch_impl.bench_speculative import bench_speculative, bench_speculative_sampled


def test_quick_speculative_benches_report_same_run_ratios_and_acceptance_rates():
    greedy = bench_speculative(quick=True, repeats=1)
    sampled = bench_speculative_sampled(quick=True, repeats=1)
    assert greedy.details["same_tokens"] is True  # greedy speculative = greedy target
    for result in (greedy, sampled):
        assert result.ratio == result.theirs.median / result.ours.median > 0
        assert 0 <= result.details["acceptance_rate"] <= 1
        assert result.details["parameters"]["draft"] < result.details["parameters"]["target"]
