"""Golden vectors (conformance/vectors.py, `formal-transformers vectors`): complete, schema-valid,
byte-identical on re-writing, passed by the reference and torch_impl, failed by mutants."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from conformance import vectors
from conformance.adapters.reference import ReferenceAdapter
from conformance.mutants.attention import MaskIgnored, SoftmaxOverQueries
from conformance.mutants.modern_position_wise import GeGLUTanhForExact
from conformance.runner import run
from formal_transformers.cli import main
from formal_transformers.spec import load_catalogue

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "spec" / "vectors.schema.json").read_text())


STOCHASTIC = {"d_inference", "ed_inference", "sampling", "speculative_decoding"}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vectors")
    vectors.write(out)
    return out


def test_every_algorithm_is_written_or_says_why(written):
    index = json.loads((written / "index.json").read_text())
    jsonschema.validate(index, SCHEMA)
    done = {a["algorithm"] for a in index["algorithms"]}
    skipped = {a["algorithm"]: a["reason"] for a in index["not_written"]}
    catalogue = {a.id for a in load_catalogue()}
    assert catalogue <= done | set(skipped), catalogue - done - set(skipped)
    assert not done & set(skipped)
    assert set(skipped) >= STOCHASTIC  # sampling has no known answer; the reason says so
    broken = {a: r for a, r in skipped.items() if a not in STOCHASTIC}
    assert all(r.startswith("error: the cases could not be built") for r in broken.values())
    for alg in broken:  # the writer builds every case the suite itself can build
        results = run(ReferenceAdapter(), "quick", only=[alg])
        assert not any(r.status == "passed" for r in results if r.algorithm == alg), \
            f"the suite draws cases of {alg} but the vectors writer could not: {broken[alg]}"
    assert {"d_transformer_backward", "e_transformer_backward"} <= done
    for entry in index["algorithms"]:
        assert (written / entry["file"]).is_file()
        kinds = {c["kind"] for c in entry["cases"]}
        assert len(entry["cases"]) >= 4, entry["algorithm"]
        if any("mask" in c for c in entry["cases"]):
            assert "single_entry_mask" in kinds, entry["algorithm"]
        if entry["algorithm"] in ("attention", "mhattention", "unembedding", "d_transformer"):
            assert "extreme_logits" in kinds
        if entry["algorithm"] in ("mlp", "gated_mlp", "mlp_backward", "gated_mlp_backward"):
            activations = {c["hyperparameters"]["activation"] for c in entry["cases"]}
            assert len(activations) == 3, (entry["algorithm"], activations)
        if entry["algorithm"].endswith("_backward"):
            assert all(c["gradients"] and "upstream" in c for c in entry["cases"])


def test_length_one_is_among_the_cases(written):
    index = json.loads((written / "index.json").read_text())
    for entry in index["algorithms"]:
        lengths = [c["sizes"].get("l", c["sizes"].get("l_x")) for c in entry["cases"]]
        if "training" in entry["kind"] or "extra" in entry["kind"] or set(lengths) == {None}:
            continue  # training and the architectures' VJPs draw l >= 2; images have no l
        assert 1 in lengths, (entry["algorithm"], lengths)


def test_rewriting_gives_identical_bytes(written, tmp_path):
    # another process, another hash seed: nothing may depend on either
    env = os.environ | {"PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "formal_transformers", "vectors", "--out",
                    str(tmp_path), "--only", "attention", "layer_norm_backward", "d_training",
                    "sliding_window_mask"], check=True, env=env, capture_output=True)
    again = json.loads((tmp_path / "index.json").read_text())
    first = {a["algorithm"]: a for a in json.loads((written / "index.json").read_text())
             ["algorithms"]}
    for entry in again["algorithms"]:
        assert entry == first[entry["algorithm"]]
        assert (tmp_path / entry["file"]).read_bytes() == (written / entry["file"]).read_bytes()
    vectors.write(tmp_path / "full")  # in this process too, every file
    for path in written.iterdir():
        assert (tmp_path / "full" / path.name).read_bytes() == path.read_bytes(), path.name


def test_the_reference_passes_every_written_case(written):
    results = vectors.check(written, ReferenceAdapter())
    statuses = {(r.algorithm, r.dtype): r.status for r in results}
    assert all(s == "passed" for k, s in statuses.items() if k[1] is not None), statuses
    assert all(r.examples >= 4 for r in results if r.status == "passed")
    skipped = {e["algorithm"] for e in json.loads((written / "index.json").read_text())
               ["not_written"]}
    assert {r.algorithm for r in results if r.status == "not covered"} == skipped


def test_torch_impl_passes_in_both_dtypes_on_the_cli(written, capsys):
    code = main(["vectors", "--check", str(written), "--impl", "torch"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "float32" in out and "0 failed" in out


@pytest.mark.parametrize("mutant, alg", [(SoftmaxOverQueries, "attention"),
                                         (MaskIgnored, "attention"),
                                         (GeGLUTanhForExact, "gated_mlp")])
def test_a_mutant_fails_the_vectors(written, mutant, alg):
    results = vectors.check(written, mutant())
    failed = {r.algorithm for r in results if r.status == "failed"}
    assert alg in failed, [(r.algorithm, r.status, r.reason) for r in results]
    bad = next(r for r in results if r.algorithm == alg and r.status == "failed")
    assert f"case {alg}-" in bad.counterexample and bad.reason


def test_cli_exit_codes(written, tmp_path):
    assert main(["vectors", "--out", str(tmp_path / "some"), "--only", "attention",
                 "sampling"]) == 0
    assert main(["vectors", "--check", str(written), "--impl",
                 "conformance.mutants.attention:SoftmaxOverQueries"]) == 1
    report = tmp_path / "r.json"
    assert main(["vectors", "--check", str(written), "--impl", "reference",
                 "--json", str(report)]) == 0
    assert json.loads(report.read_text())["summary"]["failed"] == 0
    assert main(["vectors", "--check", str(tmp_path), "--impl", "reference"]) == 2  # no index
    assert main(["vectors", "--check", str(tmp_path / "some"), "--impl", "reference"]) == 0
    nothing = tmp_path / "ln"
    vectors.write(nothing, only=["layer_norm"])
    assert main(["vectors", "--check", str(nothing), "--impl",
                 "conformance.examples.torch_sdpa_gqa:TorchSDPAGQA"]) == 3  # declares no layer_norm
