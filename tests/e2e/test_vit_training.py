"""`train --source images` (issue 17): a ViT reaches within 1 point of the Bayes-optimal
accuracy of the template source on held-out images (the same images the Bayes rule is scored
on), with the progress bar, checkpoint, metrics, loss curve and resume of every run; `classify`
shows its predictions beside the Bayes classes; the NumPy reference trains it too."""

from __future__ import annotations

import json

from formal_transformers.checkpoint import load_checkpoint
from formal_transformers.cli import main
from formal_transformers.training_run import plan_run, train


def test_vit_trains_to_within_one_point_of_the_bayes_accuracy(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--source", "images", "--steps", "1000", "--eval-every", "500",
                 "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    final = summary["final"]
    assert final["bayes_accuracy"] - final["val_accuracy"] <= 0.01, final
    assert {p.name for p in out.iterdir()} == {"checkpoint", "metrics.json", "loss_curve.png"}
    assert {lim["metric"] for lim in summary["limits"]} == {"val_accuracy", "val_loss"}

    assert main(["train", "--out", str(out), "--steps", "1010", "--json"]) == 0  # resumes
    assert json.loads(capsys.readouterr().out)["step"] == 1010
    plot = tmp_path / "attention.png"
    assert main(["classify", "--checkpoint", str(out), "--n", "16", "--json", "--plot",
                 str(plot)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["n"] == 16 and len(result["rows"]) == 16
    assert result["agree_with_bayes"] >= 12  # the trained model mostly decides as Bayes does
    assert main(["sample", "--checkpoint", str(out)]) == 2  # a classifier: use classify
    assert "classify" in capsys.readouterr().err


def test_the_reference_trains_the_vit_with_its_hand_written_gradients(tmp_path):
    run = plan_run("images", impl="reference", steps=3, batch_size=4, eval_every=3,
                   model={"d_e": 8, "H": 2, "L": 1, "d_mlp": 8})
    result = train(run, tmp_path / "ref")
    assert result["step"] == 3 and "val_accuracy" in result["final"]
    assert load_checkpoint(tmp_path / "ref").config.arch == "vit"
