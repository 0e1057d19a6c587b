"""Issue 15, what a new user meets on the command line: output paths checked before the work,
flags that mean what they say, typed errors instead of tracebacks. Tiny models, few steps."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest

from formal_transformers.checkpoint import STATE_FILE, load_checkpoint
from formal_transformers.cli import main
from formal_transformers.cli.train_cmd import graceful_interrupt
from formal_transformers.training_run import Interrupt, plan_run, train

TINY = ["--d-e", "16", "--heads", "2", "--layers", "1", "--d-mlp", "32", "--eval-every", "2"]


def train_cli(*args: str) -> int:
    return main(["train", *TINY, *args])


def err_of(capsys) -> str:
    return capsys.readouterr().err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One trained run per architecture (2 steps each), shared read-only by the tests."""
    root = tmp_path_factory.mktemp("runs")
    made = {}
    for name, flags in (("decoder", ["--source", "markov", "--length", "8"]),
                        ("encoder-decoder", ["--source", "reverse", "--length", "5"]),
                        ("encoder", ["--source", "masked-markov", "--length", "8"])):
        out = root / name
        assert train_cli(*flags, "--steps", "2", "--out", str(out)) == 0
        made[name] = str(out)
    return made


# -- output paths: validated before the run ----------------------------------------------

@pytest.mark.parametrize("argv", [
    ["verify", "--only", "layer_norm"],
    ["memory", "--preset", "tiny-decoder"],
    ["bench", "--only", "reference"],
    ["spec", "attention"],
    ["train", *TINY, "--source", "markov", "--steps", "1"],
])
@pytest.mark.parametrize("where", ["/dev/null", "DIR", "LINK"])
def test_every_json_path_is_checked_before_any_work(tmp_path, capsys, argv, where):
    if where == "DIR":
        where = str(tmp_path)
    elif where == "LINK":
        (tmp_path / "target").write_text("keep")
        os.symlink(tmp_path / "target", tmp_path / "link.json")
        where = str(tmp_path / "link.json")
    extra = ["--out", str(tmp_path / "run")] if argv[0] == "train" else []
    assert main([*argv, *extra, "--json", where]) == 2
    err = err_of(capsys)
    assert "OutputPathError" in err and "--json" in err
    assert not (tmp_path / "run").exists()  # the run never started
    if where.endswith("link.json"):
        assert (tmp_path / "target").read_text() == "keep"


def test_sample_json_path_is_checked_before_sampling(tmp_path, capsys, runs):
    assert main(["sample", "--checkpoint", runs["decoder"], "--json", str(tmp_path)]) == 2
    assert "OutputPathError" in err_of(capsys)


def test_json_is_a_path_on_every_command_and_dash_is_stdout(tmp_path, capsys, runs):
    out = tmp_path / "sample.json"
    assert main(["sample", "--checkpoint", runs["decoder"], "--prompt", "ab",
                 "--max-new-tokens", "2", "--json", str(out)]) == 0
    assert len(json.loads(out.read_text())["tokens"]) == 2
    assert main(["spec", "attention", "--json", str(tmp_path / "spec.json")]) == 0
    assert json.loads((tmp_path / "spec.json").read_text())[0]["id"] == "attention"
    assert main(["memory", "--preset", "tiny-decoder", "--json", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["config"]["arch"] == "decoder"
    capsys.readouterr()
    assert main(["memory", "--preset", "tiny-decoder", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["arch"] == "decoder"


@pytest.mark.parametrize("kind", ["file", "symlink", "unwritable"])
def test_train_out_must_be_a_directory_or_new_and_writable(tmp_path, capsys, kind):
    out = tmp_path / "run"
    if kind == "file":
        out.write_text("mine")
    elif kind == "symlink":
        (tmp_path / "elsewhere").mkdir()
        out.symlink_to(tmp_path / "elsewhere")
    else:
        out = Path("/proc/formal-transformers-run")
    assert train_cli("--source", "markov", "--steps", "1", "--out", str(out)) == 2
    assert "OutputPathError" in err_of(capsys)
    if kind == "symlink":
        assert not any((tmp_path / "elsewhere").iterdir())


def test_leftovers_of_a_killed_run_are_cleaned_at_the_next_checkpoint(tmp_path, runs):
    import shutil
    import subprocess
    import sys

    out = tmp_path / "run"
    shutil.copytree(runs["decoder"], out)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that no longer runs: the writer was killed
    (out / f".checkpoint.tmp-{proc.pid}-abc123").mkdir()
    (out / f".metrics.json.{proc.pid}.abcd1234.tmp").write_text("{")
    assert main(["train", "--out", str(out), "--steps", "3"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint", "loss_curve.png",
                                                     "metrics.json"]


# -- training flags -------------------------------------------------------------------------

def test_diverging_training_stops_with_a_typed_error_keeping_the_last_finite_checkpoint(
        tmp_path, capsys):
    out = tmp_path / "run"
    code = train_cli("--source", "markov", "--length", "8", "--steps", "40", "--lr", "1e6",
                     "--warmup", "20", "--checkpoint-every", "1", "--out", str(out))
    assert code == 2
    err = err_of(capsys)
    assert "TrainingDivergedError" in err and "diverged" in err
    ck = load_checkpoint(out)
    assert 1 <= ck.step < 40 and f"step {ck.step})" in err
    assert all(np.isfinite(v).all() for v in ck.params.values())
    metrics = (out / "metrics.json").read_text()
    json.loads(metrics, parse_constant=pytest.fail)


def test_resume_refuses_a_changed_length_and_steps_below_the_runs_step(tmp_path, capsys, runs):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(runs["decoder"], out)
    before = {p.name: p.read_bytes() for p in (out / "checkpoint").iterdir()}
    assert main(["train", "--out", str(out), "--length", "12"]) == 2
    err = err_of(capsys)
    assert "CheckpointError" in err and "--length 8, not 12" in err
    assert main(["train", "--out", str(out), "--steps", "1"]) == 2
    err = err_of(capsys)
    assert "--steps 1 is below the step the run" in err and "(2)" in err
    assert {p.name: p.read_bytes() for p in (out / "checkpoint").iterdir()} == before
    assert main(["train", "--out", str(out), "--length", "8", "--steps", "3"]) == 0  # same: ok
    assert load_checkpoint(out).step == 3


def test_a_text_path_is_stored_absolute_and_resumes_from_another_directory(
        tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("abcabcabd " * 40)
    monkeypatch.chdir(tmp_path)
    assert train_cli("--text", "notes.txt", "--length", "8", "--steps", "2", "--out",
                     str(tmp_path / "run")) == 0
    assert load_checkpoint(tmp_path / "run").run["source"]["path"] == str(
        tmp_path / "notes.txt")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["train", "--out", str(tmp_path / "run"), "--steps", "3"]) == 0
    assert main(["train", "--out", str(tmp_path / "run"), "--text", "../notes.txt",
                 "--steps", "4"]) == 0


def test_a_text_holding_the_encoders_mask_character_is_refused(tmp_path, capsys):
    (tmp_path / "code.py").write_text("snake_case = 1\n" * 20)
    assert train_cli("--arch", "encoder", "--text", str(tmp_path / "code.py"), "--steps", "1",
                     "--out", str(tmp_path / "run")) == 2
    err = err_of(capsys)
    assert "SourceError" in err and "mask character '_'" in err
    assert not (tmp_path / "run").exists()


def test_a_hand_edited_state_json_is_a_checkpoint_error_not_a_traceback(tmp_path, capsys, runs):
    import shutil

    for edit in ({"step": "two"}, {"run": {"arch": "decoder"}}, {"history": 3},
                 {"run": "x"}, {"files": ["params.safetensors"]}):
        out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        shutil.copytree(runs["decoder"], out)
        f = out / "checkpoint" / STATE_FILE
        f.write_text(json.dumps(json.loads(f.read_text()) | edit))
        assert main(["train", "--out", str(out), "--steps", "3"]) == 2, edit
        assert main(["sample", "--checkpoint", str(out)]) == 2, edit
        err = err_of(capsys)
        assert "CheckpointError" in err and "Traceback" not in err, (edit, err)
    out = tmp_path / "lr"
    shutil.copytree(runs["decoder"], out)
    f = out / "checkpoint" / STATE_FILE
    state = json.loads(f.read_text())
    state["run"]["lr"] = "fast"
    f.write_text(json.dumps(state))
    assert main(["train", "--out", str(out), "--steps", "3"]) == 2
    assert "CheckpointError" in err_of(capsys)


def test_a_second_ctrl_c_outside_a_step_checkpoints_the_last_completed_step(tmp_path):
    """The second Ctrl-C arriving during an evaluation (here: a progress callback) interrupts
    at once, and the steps since the last periodic checkpoint are saved, not lost."""
    run = plan_run("markov", steps=50, model={"d_e": 16, "H": 2, "L": 1, "d_mlp": 32},
                   source_options={"length": 8, "n_validation": 16}, log_every=1,
                   eval_every=0, checkpoint_every=5)
    stop = Interrupt()

    def second_ctrl_c(state, record):
        if state.step == 7:
            stop.hits = 2
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(run, tmp_path / "run", on_record=second_ctrl_c, stop=stop)
    assert load_checkpoint(tmp_path / "run").step == 7 == stop.saved_step


def test_the_ctrl_c_handler_never_raises_inside_a_step_until_the_third():
    with graceful_interrupt() as state:
        state.stepping = True
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        assert state.hits == 2  # inside a step: noted, the step finishes
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        state.hits, state.stepping = 1, False
        with pytest.raises(KeyboardInterrupt):  # a second one outside a step: at once
            os.kill(os.getpid(), signal.SIGINT)


def test_a_run_stopped_by_the_second_ctrl_c_skips_the_evaluation(tmp_path):
    run = plan_run("markov", steps=50, model={"d_e": 16, "H": 2, "L": 1, "d_mlp": 32},
                   source_options={"length": 8, "n_validation": 16}, log_every=1,
                   eval_every=1, checkpoint_every=50)
    stop = Interrupt()

    def press_twice(state, record):
        if state.step == 3:
            stop.hits = 2  # both arrived during step 4
    result = train(run, tmp_path / "run", on_record=press_twice, stop=stop)
    assert result["step"] == 4 and "val_loss" not in result["history"][-1]
    assert load_checkpoint(tmp_path / "run").step == 4


# -- sample -----------------------------------------------------------------------------

def test_sample_flags_mean_what_they_say(capsys, runs):
    cases = [
        (["--checkpoint", runs["decoder"], "--prompt", ""], "--prompt is empty"),
        (["--checkpoint", runs["decoder"], "--max-new-tokens", "0"],
         "--max-new-tokens must be an integer >= 1, got 0"),
        (["--checkpoint", runs["decoder"], "--seed", "-1"], "--seed must be an integer >= 0"),
        (["--checkpoint", runs["decoder"], "--prompt", "ab", "--max-new-tokens", "99"],
         "room for at most 7 new tokens"),
        (["--checkpoint", runs["encoder-decoder"], "--prompt", "abc", "--max-new-tokens",
          "99"], "exceeds the encoder-decoder's l_max"),
        (["--checkpoint", runs["encoder"], "--prompt", "ab_d", "--max-new-tokens", "3"],
         "--max-new-tokens does not apply to the encoder"),
    ]
    for argv, message in cases:
        assert main(["sample", *argv]) == 2, argv
        err = err_of(capsys)
        assert "ConfigError" in err and message in err and "l_gen" not in err, (argv, err)


def test_the_encoder_decoder_honours_max_new_tokens(tmp_path, runs):
    out = tmp_path / "s.json"
    for n in (1, 2):
        assert main(["sample", "--checkpoint", runs["encoder-decoder"], "--prompt", "abcd",
                     "--max-new-tokens", str(n), "--temperature", "0", "--json",
                     str(out)]) == 0
        tokens = json.loads(out.read_text())["tokens"]
        assert 2 <= len(tokens) <= 1 + n  # bos plus at most n generated


# -- memory and bench ---------------------------------------------------------------------

@pytest.mark.parametrize(("flags", "message"), [
    (["--seq", "0"], "--seq must be an integer >= 1, got 0"),
    (["--new-tokens", "0"], "--new-tokens must be an integer >= 1, got 0"),
    (["--batch", "0"], "--batch must be an integer >= 1, got 0"),
    (["--d_e", "0"], "--d_e must be an integer >= 1, got 0"),
])
def test_memory_zero_valued_flags_are_config_errors(capsys, flags, message):
    assert main(["memory", "--preset", "tiny-decoder", *flags]) == 2
    err = err_of(capsys)
    assert "ConfigError" in err and message in err


def test_memory_measure_on_cuda_without_cuda_is_a_config_error(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert main(["memory", "--preset", "tiny-decoder", "--measure", "--device", "cuda"]) == 2
    assert "needs a CUDA device" in err_of(capsys)


def test_bench_quick_prints_no_verdict(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench", "--quick", "--only", "reference", "gpt2_decode", "--json",
                 str(out)]) == 0
    text = capsys.readouterr().out
    assert not re.search(r"\bmet\b", text) and "no verdict" in text
    assert all(r["met_target"] is None for r in json.loads(out.read_text())["results"])


def test_bench_without_transformers_says_what_to_install(capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "transformers" else real(name, *a))
    assert main(["bench", "--quick"]) == 2
    err = err_of(capsys)
    assert "pip install 'formal-transformers[bench]'" in err and "--only reference" in err


def test_verify_writes_no_hypothesis_directory_into_the_cwd(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HYPOTHESIS_STORAGE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    from hypothesis.configuration import set_hypothesis_home_dir, storage_directory

    try:
        assert main(["verify", "--profile", "quick", "--only", "layer_norm"]) == 0
        # Hypothesis's storage points into the user cache (it creates the directory only when
        # something is stored, which a derandomized profile without a database never does)
        where = storage_directory(intent_to_write=False).home_directory
    finally:
        set_hypothesis_home_dir(None)
    assert not (tmp_path / "work" / ".hypothesis").exists()
    assert Path(where) == tmp_path / "cache" / "formal-transformers" / "hypothesis"
