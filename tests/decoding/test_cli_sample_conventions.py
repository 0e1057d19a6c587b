"""`formal-transformers sample` takes every sampling convention of Algorithm 60 as a flag
(--top-k, --top-p, --min-p, --temperature-order); a value of 0 is checked, never read as
"off", and every invalid value is a typed error naming the flag (exit 2)."""

from __future__ import annotations

import json

import pytest

from formal_transformers.cli import main

TINY = ["--d-e", "16", "--heads", "2", "--layers", "1", "--d-mlp", "32"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("sampling") / "run")
    assert main(["train", *TINY, "--eval-every", "2", "--source", "markov", "--steps", "2",
                 "--out", out]) == 0
    return out


def sample_json(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(["sample", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_top_k_one_is_greedy_and_the_conventions_are_reported(run_dir, capsys):
    greedy = sample_json(capsys, "--checkpoint", run_dir, "--prompt", "ab", "--temperature", "0",
                         "--max-new-tokens", "6")
    top1 = sample_json(capsys, "--checkpoint", run_dir, "--prompt", "ab", "--top-k", "1",
                       "--max-new-tokens", "6", "--seed", "4")
    assert top1["tokens"] == greedy["tokens"]
    assert top1["top_k"] == 1 and top1["top_p"] == 1.0 and top1["min_p"] == 0.0
    assert top1["temperature_order"] == "temperature_first"


def test_every_flag_combines_and_the_seed_reproduces_the_sample(run_dir, capsys):
    flags = ["--checkpoint", run_dir, "--prompt", "ab", "--top-k", "3", "--top-p", "0.9",
             "--min-p", "0.05", "--temperature", "0.7", "--temperature-order",
             "truncation_first", "--max-new-tokens", "6", "--seed", "2"]
    first, again = sample_json(capsys, *flags), sample_json(capsys, *flags)
    assert first["tokens"] == again["tokens"] and len(first["tokens"]) == 6
    assert first["temperature_order"] == "truncation_first"


@pytest.mark.parametrize("flags, message", [
    (["--top-k", "0"], "--top-k: SamplingConfig.top_k must be an integer >= 1"),
    (["--top-p", "0"], "--top-p: SamplingConfig.top_p must be a number in (0, 1]"),
    (["--top-p", "1.5"], "--top-p: SamplingConfig.top_p must be a number in (0, 1]"),
    (["--min-p", "-0.1"], "--min-p: SamplingConfig.min_p must be a number in [0, 1]"),
    (["--temperature-order", "last"], "--temperature-order: SamplingConfig.order must be one"),
    (["--top-k", "0", "--temperature", "0"], "--top-k"),
])
def test_invalid_convention_values_are_config_errors_naming_the_flag(run_dir, capsys, flags,
                                                                     message):
    capsys.readouterr()
    assert main(["sample", "--checkpoint", run_dir, *flags]) == 2
    assert message in capsys.readouterr().err
