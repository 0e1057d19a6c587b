"""`formal-transformers spec` (issue 2): list, show one algorithm, JSON; and the spec ships
inside the wheel so that a non-editable install can read it."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from formal_transformers import render
from formal_transformers.cli import main
from formal_transformers.spec import load_catalogue
from formal_transformers.unimath import to_unicode

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
    assert "Algorithm 4: Attention" in out and to_unicode(alg.signature) in out
    for line in alg.pseudocode:
        assert f"{line.number}: {'  ' * line.depth}{to_unicode(line.text)}" in out


def test_spec_id_renders_the_math_as_unicode_text_not_latex(capsys):
    """Issue 15: the terminal shows ℝ, ←, ℓ and subscripts, never raw LaTeX; --json keeps
    the LaTeX."""
    for alg in load_catalogue():
        render.algorithm(alg)  # what `spec ID` prints
        out = capsys.readouterr().out
        assert "\\" not in out and "$" not in out, (alg.id, out)
    assert main(["spec", "attention"]) == 0
    out = capsys.readouterr().out
    assert "Q ← W_q X + b_q 𝟏ᵀ" in out and "ℝ^(dₓ × ℓₓ)" in out
    assert "return V\u0303 = V · softmax(S / √dₐₜₜₙ)" in out
    assert main(["spec", "attention", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "\\gets" in data[0]["signature"]


@pytest.mark.parametrize("tex, text", [
    (r"$\mathbb{R}^{d_x \times \ell_x}$", "ℝ^(dₓ × ℓₓ)"),
    (r"\ell_{max}", "ℓₘₐₓ"), (r"W^{-1}", "W⁻¹"), (r"K^\top Q", "Kᵀ Q"),
    (r"\hat{y} \gets \tilde{V}", "y\u0302 ← V\u0303"), (r"\mathcal{W}_{qkv}", "𝒲_qkv"),
    (r"\sqrt{d}", "√d"), (r"\frac{a + b}{2}", "(a + b)/2"),
    (r"\{0, 1\}", "{0, 1}"), (r"\theta, \gamma, \epsilon", "θ, γ, ε"),
    (r"for $t \in [\ell]$: /* a comment */", "for t ∈ [ℓ]: /* a comment */"),
])
def test_unicode_rendering_of_the_spec_latex(tex, text):
    assert to_unicode(tex) == text


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
