"""`formal-transformers train` and `sample` (issue 8): the command line end to end, with
tiny models so each call takes a second or two."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from formal_transformers.checkpoint import load_checkpoint
from formal_transformers.cli import main

TINY = ["--d-e", "16", "--heads", "2", "--layers", "1", "--d-mlp", "32"]


def train_cli(*args: str) -> int:
    return main(["train", *TINY, "--eval-every", "2", *args])


def sample_json(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(["sample", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_train_decoder_then_sample_with_the_kv_cache(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_cli("--source", "markov", "--steps", "4", "--out", str(out)) == 0
    text = capsys.readouterr().out
    assert "val_loss" in text and "entropy rate" in text and str(out) in text
    assert {p.name for p in out.iterdir()} == {"checkpoint", "metrics.json", "loss_curve.png"}
    result = sample_json(capsys, "--checkpoint", str(out), "--prompt", "abc",
                         "--max-new-tokens", "5", "--temperature", "0")
    assert result["prompt"] == "abc" and len(result["tokens"]) == 5
    assert set(result["text"]) <= set("abcdefgh") and len(result["text"]) == 5
    again = sample_json(capsys, "--checkpoint", str(out / "checkpoint"), "--prompt", "abc",
                        "--max-new-tokens", "5", "--temperature", "0")
    assert again["tokens"] == result["tokens"]  # greedy is deterministic


def test_train_resumes_when_out_holds_a_run(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert train_cli("--source", "copy", "--length", "6", "--steps", "2", "--out", out) == 0
    assert load_checkpoint(out).run["source"]["max_len"] == 6
    capsys.readouterr()
    assert main(["train", "--out", out, "--steps", "3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 3 and summary["source"] == "copy"
    assert [r["step"] for r in summary["history"]] == [2, 3]  # each call logs its last step
    result = sample_json(capsys, "--checkpoint", out, "--prompt", "abca", "--temperature", "0")
    assert result["step"] == 3 and result["expected"] == "abca"
    assert isinstance(result["correct"], bool) and result["tokens"][0] == 10  # bos


def test_sample_from_the_encoder_fills_only_the_masks(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert train_cli("--source", "masked-markov", "--steps", "2", "--out", out) == 0
    result = sample_json(capsys, "--checkpoint", out, "--prompt", "ab_d_f", "--seed", "3")
    assert result["masked_positions"] == [2, 4]
    filled = result["text"]
    assert filled[:2] == "ab" and filled[3] == "d" and filled[5] == "f"
    assert "_" not in filled


def test_text_file_trains_a_character_level_decoder(tmp_path, capsys):
    f = tmp_path / "poem.txt"
    f.write_text("the cat sat on the mat. " * 30)
    out = str(tmp_path / "run")
    assert train_cli("--text", str(f), "--length", "16", "--steps", "2", "--out", out) == 0
    result = sample_json(capsys, "--checkpoint", out, "--prompt", "the ", "--max-new-tokens",
                         "8")
    assert len(result["text"]) == 8 and set(result["text"]) <= set("the casonm.")


@pytest.mark.parametrize("arch", ["decoder", "modern-decoder"])
def test_reference_implementation_trains_from_the_cli(tmp_path, capsys, arch):
    """The modern decoder through its hand-written backward (Algorithm 66)."""
    out = str(tmp_path / "run")
    assert train_cli("--source", "markov", "--arch", arch, "--impl", "reference",
                     "--optimizer", "sgd", "--steps", "2", "--batch-size", "2", "--length", "8",
                     "--out", out) == 0
    assert "val_loss" in capsys.readouterr().out
    checkpoint = load_checkpoint(out)
    assert checkpoint.run["impl"] == "reference" and checkpoint.run["model"]["arch"] == arch


def test_unknown_source_is_rejected_with_the_known_ones(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--source", "zipf"])
    assert exc.value.code == 2
    assert "invalid choice: 'zipf'" in capsys.readouterr().err


def test_empty_text_file_is_a_clear_error_and_writes_nothing(tmp_path, capsys):
    f = tmp_path / "empty.txt"
    f.write_text("")
    out = tmp_path / "run"
    assert main(["train", "--text", str(f), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "SourceError" in err and "empty.txt" in err and "0 characters" in err
    assert not out.exists()


def test_sample_without_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["sample", "--checkpoint", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "CheckpointError" in err and "no checkpoint found" in err


def test_training_another_architecture_into_a_run_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_cli("--source", "markov", "--steps", "2", "--out", str(out)) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["train", "--arch", "encoder", "--source", "masked-markov",
                 "--out", str(out)]) == 2
    assert "decoder architecture, not the encoder" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_negative_temperature_is_a_config_error(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert train_cli("--source", "markov", "--steps", "1", "--out", out) == 0
    assert main(["sample", "--checkpoint", out, "--temperature", "-1"]) == 2
    assert "--temperature must be a finite number >= 0, got -1.0" in capsys.readouterr().err


def test_ctrl_c_stops_training_after_the_step_with_a_checkpoint(tmp_path):
    """The first SIGINT lets `train` finish its step, evaluate and checkpoint, then exit 0."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "formal_transformers", "train", "--source", "markov",
           *TINY, "--steps", "100000", "--checkpoint-every", "1", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint" / "state.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    step = load_checkpoint(out).step
    assert 1 <= step < 100000
    assert f"interrupted at step {step}" in stderr


@pytest.mark.parametrize(("flags", "message"), [
    (["--steps", "0"], "--steps must be an integer >= 1, got 0"),
    (["--lr", "-0.1"], "--lr must be a finite number > 0, got -0.1"),
    (["--heads", "3"], "d_e must be divisible by H"),
    # issue 15: zero is a value (never "not given"): the same error as a negative value
    (["--heads", "0"], "--heads must be an integer >= 1, got 0"),
    (["--heads", "-1"], "--heads must be an integer >= 1, got -1"),
    (["--d-e", "0"], "--d-e must be an integer >= 1, got 0"),
    (["--layers", "0"], "--layers must be an integer >= 1, got 0"),
    (["--d-mlp", "0"], "--d-mlp must be an integer >= 1, got 0"),
    (["--length", "0"], "--length must be an integer >= 1, got 0"),
    (["--length", "1"], "--length must be >= 2 for the decoder"),
    (["--seed", "-1"], "--seed must be an integer >= 0, got -1"),
    (["--lr", "0"], "--lr must be a finite number > 0, got 0.0"),
    (["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
    (["--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
    (["--checkpoint-every", "0"], "--checkpoint-every must be an integer >= 1, got 0"),
])
def test_bad_settings_are_config_errors_and_write_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert main(["train", "--source", "markov", *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "ConfigError" in err and message in err
    assert not out.exists()


def test_text_file_trains_a_masked_character_encoder(tmp_path, capsys):
    f = tmp_path / "poem.txt"
    f.write_text("the cat sat on the mat. " * 30)
    out = str(tmp_path / "run")
    assert train_cli("--arch", "encoder", "--text", str(f), "--length", "12", "--steps", "2",
                     "--out", out) == 0
    assert "val_loss" in capsys.readouterr().out
    result = sample_json(capsys, "--checkpoint", out, "--prompt", "the c_t", "--temperature",
                         "0")
    assert result["masked_positions"] == [5]
    assert result["text"][:5] == "the c" and result["text"][6] == "t"
    assert result["text"][5] in set("the casonm.")
