"""`formal-transformers bench --quick` smoke test: the command runs, prints its table and
writes ratios measured in the same run (the real measurement is not a CI test)."""

from __future__ import annotations

import json

import pytest
import torch

from formal_transformers.cli import main


def test_bench_quick_writes_ratios_against_baselines_measured_in_the_same_run(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--only", "reference", "gpt2_decode",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["quick"] is True and report["environment"]["threads"] >= 1
    # where and when: date, commit, machine, and the flags the figures were measured with
    assert report["run"]["date"] and "machine" in report["run"]
    assert report["run"]["options"]["quick"] is True
    by_name = {r["name"]: r for r in report["results"]}
    assert list(by_name) == ["reference", "gpt2_decode"]
    for r in by_name.values():
        assert r["ratio"] == r["theirs"]["median"] / r["ours"]["median"] > 0
    decode = by_name["gpt2_decode"]["details"]
    assert decode["same_tokens"] is True
    # the weight-reading floor is timed in the same run, and every decoder is a fraction of it
    assert decode["floor_ms_per_step"] > 0 and decode["floor_target"] == 0.95
    # the floor is the faster of the two weight layouts, both timed in the run
    by_layout = decode["floor_ms_per_step_by_layout"]
    assert set(by_layout) == {"out_in", "in_out"}
    assert decode["floor_ms_per_step"] == min(by_layout.values())
    assert by_layout[decode["floor_layout"]] == decode["floor_ms_per_step"]
    for who in ("ours", "eager", "baseline"):
        assert decode[f"fraction_of_floor_{who}"] > 0  # single steps
        assert decode[f"fraction_of_floor_per_call_{who}"] > 0  # whole generate calls
        assert decode[f"step_ms_{who}"] > 0
    assert "ratio = baseline time / torch_impl time" in capsys.readouterr().out


def test_an_unknown_benchmark_name_is_an_error_naming_the_known_ones(capsys):
    assert main(["bench", "--only", "nonsense"]) == 2
    assert "gpt2_forward" in capsys.readouterr().err


def test_gpu_benchmarks_without_cuda_say_so_instead_of_inventing_figures(capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: tests/torch_impl/test_torch_training.py runs it")
    assert main(["bench", "--no-cpu", "--gpu-train"]) == 2
    assert "need a CUDA device" in capsys.readouterr().err
