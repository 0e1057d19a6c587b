"""Checkpoints (issue 8): exact resume, and every damaged or foreign checkpoint is a clear
CheckpointError that leaves the run directory untouched."""

from __future__ import annotations

import json

import numpy as np
import pytest

from formal_transformers.checkpoint import (
    CHECKPOINT_DIR,
    OLD_DIR,
    OPTIMIZER_FILE,
    STATE_FILE,
    load_checkpoint,
)
from formal_transformers.errors import CheckpointError
from formal_transformers.sampling import sample
from formal_transformers.training_run import plan_resume, plan_run, train

TINY = {"d_e": 16, "H": 2, "d_mlp": 32}


def tiny_run(source="markov", steps=12, **settings):
    options = {"markov": {"length": 16, "n_validation": 32},
               "masked-markov": {"length": 10, "n_validation": 32},
               "reverse": {"max_len": 5, "n_validation_per_length": 4}}[source]
    return plan_run(source, steps=steps, model=TINY, source_options=options, log_every=2,
                    eval_every=6, checkpoint_every=5, **settings)


def snapshot(directory):
    """Bytes of every file under a directory, by relative path."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("source", "optimizer"), [("markov", "adamw"), ("markov", "sgd"),
                                                   ("masked-markov", "adamw"),
                                                   ("reverse", "adamw")])
def test_resumed_run_equals_uninterrupted_run_bit_for_bit(tmp_path, source, optimizer):
    run = tiny_run(source, optimizer=optimizer, lr=3e-3 if optimizer == "adamw" else 1e-2)
    straight = train(run, tmp_path / "a")
    train(run, tmp_path / "b", until=7)  # stops between two checkpoints
    assert load_checkpoint(tmp_path / "b").step == 7
    resumed = train(run, tmp_path / "b")
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name], err_msg=name)
    assert a.optimizer.keys() == b.optimizer.keys()
    for name in a.optimizer:
        np.testing.assert_array_equal(a.optimizer[name], b.optimizer[name], err_msg=name)
    assert straight["final"] == resumed["final"]
    assert (optimizer == "sgd") == (not (tmp_path / "a" / CHECKPOINT_DIR / OPTIMIZER_FILE)
                                    .exists())


def test_run_directory_holds_checkpoint_metrics_and_plot(tmp_path):
    result = train(tiny_run(), tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["step"] == 12 and metrics["limits"][0]["label"] == "entropy rate"
    assert metrics["final"]["val_loss"] == result["final"]["val_loss"]
    assert (tmp_path / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


def test_missing_checkpoint_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        sample(tmp_path / "nowhere")


@pytest.mark.parametrize("victim", ["params.safetensors", "optimizer.safetensors",
                                    "config.json", "state.json"])
def test_truncated_checkpoint_is_refused_and_nothing_is_overwritten(tmp_path, victim):
    run = tiny_run()
    train(run, tmp_path, until=5)
    f = tmp_path / CHECKPOINT_DIR / victim
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError, match=f"{victim}.*(truncated|modified)"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match=victim):
        train(run, tmp_path)
    with pytest.raises(CheckpointError, match=victim):
        sample(tmp_path)
    assert snapshot(tmp_path) == before


def test_checkpoint_of_another_architecture_is_refused_and_nothing_is_overwritten(tmp_path):
    train(tiny_run("markov"), tmp_path, until=5)
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError, match="decoder architecture, not the encoder"):
        train(tiny_run("masked-markov"), tmp_path)
    with pytest.raises(CheckpointError, match="decoder architecture, not the encoder-decoder"):
        plan_resume(tmp_path, arch="encoder-decoder")
    with pytest.raises(CheckpointError, match="trained on source 'markov', not --source copy"):
        plan_resume(tmp_path, source="copy")
    assert snapshot(tmp_path) == before


def test_resuming_with_other_settings_is_refused(tmp_path):
    train(tiny_run(), tmp_path, until=5)
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError, match=r"different settings \(lr\)"):
        train(tiny_run(lr=1e-4), tmp_path)
    assert snapshot(tmp_path) == before
    longer = plan_resume(tmp_path, steps=14)  # the step count may grow
    assert train(longer, tmp_path)["step"] == 14


def test_output_directory_with_foreign_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="not empty and holds no checkpoint"):
        train(tiny_run(), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_interrupted_swap_is_recovered_from_the_previous_checkpoint(tmp_path):
    train(tiny_run(), tmp_path, until=5)
    (tmp_path / CHECKPOINT_DIR).rename(tmp_path / OLD_DIR)  # killed between the two renames
    assert load_checkpoint(tmp_path).step == 5
    assert (tmp_path / CHECKPOINT_DIR / STATE_FILE).is_file()


def test_state_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    train(tiny_run(), tmp_path, until=5)
    (tmp_path / CHECKPOINT_DIR / STATE_FILE).write_text('{"format": "something-else/9"}')
    with pytest.raises(CheckpointError, match=r"missing \['step', 'run', 'files'\]"):
        load_checkpoint(tmp_path)


def test_stop_request_ends_the_run_with_a_checkpoint_it_resumes_from(tmp_path):
    run = tiny_run()
    straight = train(run, tmp_path / "a")
    stopped = train(run, tmp_path / "b", stop=lambda: True)  # e.g. Ctrl-C during step 1
    assert stopped["step"] == 1 and load_checkpoint(tmp_path / "b").step == 1
    assert "val_loss" in stopped["final"]  # evaluated where it stopped
    assert train(run, tmp_path / "b")["final"] == straight["final"]
