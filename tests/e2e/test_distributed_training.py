"""`train --distributed ddp|fsdp --nproc N` (issue 16): the whole training loop on local gloo
ranks -- same per-step objectives, parameters and AdamW moments as one process on the global
batch (to a reduction-order tolerance, torch_impl/distributed.py), the same progress bar,
metrics and canonical checkpoints, resumable with another process count or in one process."""

from __future__ import annotations

import json

import numpy as np
import pytest

from formal_transformers.checkpoint import load_checkpoint
from formal_transformers.cli import main
from formal_transformers.distributed_run import train_distributed
from formal_transformers.errors import ConfigError
from formal_transformers.training_run import plan_run, train

TINY = {"d_e": 16, "H": 2, "L": 2, "d_mlp": 32}


def _run(**settings):
    base = dict(steps=6, batch_size=8, eval_every=3, log_every=1, checkpoint_every=3,
                warmup=2, lr=1e-2)
    return plan_run("markov", model=TINY, source_options={"n_validation": 64},
                    **(base | settings))


def _objectives(summary):
    return [r["train_objective"] for r in summary["history"]]


def _assert_same_run(a_dir, b_dir, param_tol, state_tol):
    a, b = load_checkpoint(a_dir), load_checkpoint(b_dir)
    assert a.step == b.step and a.params.keys() == b.params.keys()
    for name in a.params:
        np.testing.assert_allclose(a.params[name], b.params[name], rtol=0, atol=param_tol,
                                   err_msg=name)
    assert a.optimizer.keys() == b.optimizer.keys()
    for name in a.optimizer:
        if name.startswith("m."):  # first moments: gradients averaged in another order
            np.testing.assert_allclose(a.optimizer[name], b.optimizer[name], rtol=0,
                                       atol=state_tol, err_msg=name)
    if "step" in b.optimizer:
        np.testing.assert_array_equal(a.optimizer["step"], b.optimizer["step"])


@pytest.mark.parametrize("strategy", ["fsdp", "ddp"])
def test_distributed_run_equals_one_process_and_checkpoints_alike(tmp_path, strategy):
    run = _run(optimizer="sgd")
    single = train(run, tmp_path / "one")
    records = []
    dist = train_distributed(run, tmp_path / strategy, strategy=strategy, nproc=2,
                             on_record=lambda state, record: records.append(record))
    assert [r["step"] for r in records] == list(range(1, 7))  # rank 0 saw every record
    assert dist["step"] == single["step"] == 6
    np.testing.assert_allclose(_objectives(dist), _objectives(single), rtol=1e-6)
    np.testing.assert_allclose(dist["final"]["val_loss"], single["final"]["val_loss"],
                               rtol=1e-6)
    _assert_same_run(tmp_path / strategy, tmp_path / "one", param_tol=1e-6, state_tol=0)
    assert json.loads((tmp_path / strategy / "metrics.json").read_text())["step"] == 6


def test_fsdp_adamw_run_resumes_in_one_process_and_with_another_process_count(tmp_path):
    """AdamW moments travel through the canonical checkpoint: 2 ranks for 3 steps, then one
    process for 3 more, equals one process for all 6, and equals 1 -> 2 ranks as well."""
    run = _run(optimizer="adamw")
    train(run, tmp_path / "one")
    train_distributed(run, tmp_path / "a", strategy="fsdp", nproc=2, until=3)
    assert load_checkpoint(tmp_path / "a").step == 3
    train(run, tmp_path / "a")
    train(run, tmp_path / "b", until=3)
    train_distributed(run, tmp_path / "b", strategy="fsdp", nproc=2)
    # AdamW normalises b_k's gradient, zero in exact arithmetic, so its rounding noise
    # becomes steps of size lr: compare b_k at that scale, everything else to rounding.
    for d in ("a", "b"):
        a, one = load_checkpoint(tmp_path / d), load_checkpoint(tmp_path / "one")
        assert a.step == one.step == 6
        for name in a.params:
            tol = 6 * 1e-2 if name.endswith("b_k") else 1e-4
            np.testing.assert_allclose(a.params[name], one.params[name], rtol=0, atol=tol,
                                       err_msg=f"{d}: {name}")
        np.testing.assert_array_equal(a.optimizer["step"], [6.0])


def test_cli_trains_distributed_with_progress_metrics_and_the_summary(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--source", "markov", "--d-e", "16", "--heads", "2", "--layers", "1",
                 "--d-mlp", "32", "--steps", "4", "--batch-size", "8", "--eval-every", "2",
                 "--distributed", "fsdp", "--nproc", "2", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 4 and "val_loss" in summary["final"]
    assert {p.name for p in out.iterdir()} == {"checkpoint", "metrics.json", "loss_curve.png"}


@pytest.mark.parametrize(("flags", "message"), [
    (["--distributed", "fsdp", "--nproc", "3", "--batch-size", "8"], "divisible by --nproc 3"),
    (["--distributed", "ddp", "--nproc", "0"], "--nproc must be an integer >= 1, got 0"),
    (["--distributed", "fsdp", "--impl", "reference"], "torch_impl only"),
    (["--nproc", "2"], "--nproc needs --distributed"),
])
def test_cli_refuses_what_cannot_run_distributed_before_starting(tmp_path, capsys, flags,
                                                                 message):
    out = tmp_path / "run"
    assert main(["train", "--source", "markov", "--steps", "2", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert "ConfigError: " in err and message in err
    assert not out.exists()  # nothing was written, no process was started


def test_distributed_run_refuses_an_uneven_batch_before_spawning(tmp_path):
    with pytest.raises(ConfigError, match="--batch-size 8 must be divisible by --nproc 3"):
        train_distributed(_run(), tmp_path / "x", strategy="fsdp", nproc=3)


def test_the_vit_trains_on_fsdp_ranks_like_one_process(tmp_path):
    """Every architecture, not only the token models: FSDP gathers the ViT's canonical
    parameters for its checkpoint and evaluates on the whole held-out set."""
    run = plan_run("images", steps=3, batch_size=8, eval_every=3, log_every=1, warmup=1,
                   lr=1e-2, optimizer="sgd", model={"d_e": 8, "H": 2, "L": 1, "d_mlp": 8},
                   source_options={"n_validation": 64})
    single = train(run, tmp_path / "one")
    dist = train_distributed(run, tmp_path / "fsdp", strategy="fsdp", nproc=2)
    np.testing.assert_allclose(_objectives(dist), _objectives(single), rtol=1e-6)
    np.testing.assert_allclose(dist["final"]["val_loss"], single["final"]["val_loss"],
                               rtol=1e-6)
    _assert_same_run(tmp_path / "fsdp", tmp_path / "one", param_tol=1e-6, state_tol=0)


@pytest.mark.parametrize("strategy", ["fsdp", "ddp"])
def test_the_modern_decoder_trains_on_two_ranks_like_one_process(tmp_path, strategy):
    """Algorithm 65 (RMSNorm, RoPE, gated MLP, G < H kv heads) scaled out like the D
    transformer: the same objectives, the same canonical parameters (and AdamW moments)."""
    run = plan_run("markov", arch="modern-decoder", steps=3, batch_size=8, eval_every=3,
                   log_every=1, checkpoint_every=3, warmup=1, lr=1e-2, optimizer="adamw",
                   model={"d_e": 16, "H": 4, "G": 2, "L": 2, "d_mlp": 32},
                   source_options={"n_validation": 32})
    single = train(run, tmp_path / "one")
    dist = train_distributed(run, tmp_path / strategy, strategy=strategy, nproc=2)
    np.testing.assert_allclose(_objectives(dist), _objectives(single), rtol=1e-6)
    np.testing.assert_allclose(dist["final"]["val_loss"], single["final"]["val_loss"],
                               rtol=1e-6)
    a, b = load_checkpoint(tmp_path / strategy), load_checkpoint(tmp_path / "one")
    assert a.params.keys() == b.params.keys() and "layers.0.mha.W_k" in a.params
    assert a.params["layers.0.mha.W_k"].shape[0] == 2  # G kv heads, not H
    assert len(set(_objectives(single))) == 3  # three different steps were compared
    for name in a.params:
        # no biases here (the b_k case above): AdamW's steps are normalised, so reduction-order
        # rounding of a small gradient grows, but stays far below the lr-sized steps
        np.testing.assert_allclose(a.params[name], b.params[name], rtol=0, atol=5e-5,
                                   err_msg=name)
