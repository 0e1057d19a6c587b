"""`formal-transformers spec` (issue 2): list, show one algorithm, JSON; and the spec ships
inside the wheel so that a non-editable install can read it."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from formal_transformers.cli import main
from formal_transformers.spec import load_catalogue

ROOT = Path(__file__).resolve().parents[2]


def test_spec_lists_every_algorithm(capsys):
    assert main(["spec"]) == 0
    out = capsys.readouterr().out
    for alg in load_catalogue():
        assert alg.id in out and str(alg.number) in out


def test_spec_id_prints_signature_and_numbered_pseudocode(capsys):
    assert main(["spec", "attention"]) == 0
    out = capsys.readouterr().out
    alg = next(a for a in load_catalogue() if a.id == "attention")
    assert "Algorithm 4: Attention" in out and alg.signature in out
    for line in alg.pseudocode:
        assert f"{line.number}: {'  ' * line.depth}{line.text}" in out


def test_spec_json_has_the_promised_fields(capsys):
    assert main(["spec", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data) == len(load_catalogue())
    for item in data:
        for key in ("id", "number", "title", "inputs", "outputs", "parameters",
                    "hyperparameters", "pseudocode"):
            assert key in item
        assert item["inputs"] and item["outputs"] and item["pseudocode"]


def test_spec_lookup_by_number_and_unknown_id(capsys):
    assert main(["spec", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == "attention"
    assert main(["spec", "no_such_thing"]) == 2
    assert "no algorithm 'no_such_thing'" in capsys.readouterr().err


def test_console_script_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "formal_transformers", "spec", "--json"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)


@pytest.mark.slow
def test_wheel_ships_the_spec_and_reads_it_without_the_checkout(tmp_path):
    """Build the wheel, unpack it away from the checkout and load the catalogue from it."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True)
    wheel = next(tmp_path.glob("formal_transformers-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "formal_transformers/_spec/algorithms/04-attention.md" in names
    assert "formal_transformers/_spec/schema.json" in names
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    code = ("import json, formal_transformers.spec as s; "
            "print(json.dumps([str(s.spec_root()), len(s.load_catalogue())]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True, env={"PYTHONPATH": str(unpacked)}).stdout
    root, count = json.loads(out)
    assert root.startswith(str(unpacked)) and count == len(load_catalogue())
