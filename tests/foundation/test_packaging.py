"""Issue 15, "install and package": what a user installing the distribution gets -- licence,
metadata, citation, typed packages, the tutorial's example adapters -- and what the sdist holds.
The slow test builds both distributions and checks them away from the checkout."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from datetime import date
from pathlib import Path

import pytest
import yaml

from conformance.adapter import load_adapter

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("formal_transformers", "reference_numpy", "torch_impl", "conformance")


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_license_file_is_the_mit_licence_the_metadata_states():
    assert pyproject()["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert pyproject()["license-files"] == ["LICENSE"]


def test_metadata_has_urls_classifiers_keywords_and_a_bench_extra():
    meta = pyproject()
    assert {"Homepage", "Repository", "Issues", "Changelog"} <= set(meta["urls"])
    assert all(u.startswith("https://") for u in meta["urls"].values())
    assert "Typing :: Typed" in meta["classifiers"] and len(meta["keywords"]) >= 5
    assert any(r.startswith("transformers") for r in meta["optional-dependencies"]["bench"])
    assert (ROOT / "CHANGELOG.md").read_text().startswith("# Changelog")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_is_marked_typed(package):
    assert (ROOT / package / "py.typed").is_file()


def test_citation_has_a_release_date_and_the_repository():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert date.fromisoformat(str(cff["date-released"]))
    assert cff["repository-code"] == pyproject()["urls"]["Repository"]
    assert cff["version"] == pyproject()["version"]


def test_the_tutorials_adapters_are_importable_from_the_package_not_the_checkout():
    """examples/README.md's `--impl` names resolve inside the distribution (no top-level
    `examples` module, which an installed wheel does not have)."""
    readme = (ROOT / "examples" / "README.md").read_text()
    names = set(re.findall(r"--impl ([\w.]+:\w+)", readme)) - {"mypackage.adapters:MyAttention"}
    names = {n for n in names if not n.startswith("hf:")}  # hf:DIR names a saved model
    assert {n for n in names if n.startswith("conformance.examples.")} >= {
        "conformance.examples.torch_multihead_attention:TorchMultiheadAttention",
        "conformance.examples.torch_encoder_layer:TorchEncoder",
        "conformance.examples.torch_sdpa_gqa:TorchSDPAGQA"}
    for name in names:
        assert name.startswith("conformance."), name
        assert load_adapter(name).algorithms
    assert not (ROOT / "examples" / "__init__.py").exists()


def test_verify_sh_installs_no_dev_tools_and_says_what_it_does():
    text = (ROOT / "scripts" / "verify.sh").read_text()
    assert 'EXTRAS="" bash scripts/setup.sh' in text and "echo" in text
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert setup.count('say "') >= 4


@pytest.mark.slow
def test_wheel_and_sdist_hold_what_an_install_needs(tmp_path):
    """Build both; the wheel has py.typed, the licence and the example adapters; the sdist
    ships no tests (they need the checkout) but all the wheel is built from."""
    for kind in ("wheel", "sdist"):
        subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", kind, "-d",
                        str(tmp_path)], cwd=ROOT, check=True, capture_output=True)
    wheel = zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist()
    for package in PACKAGES:
        assert f"{package}/py.typed" in wheel
    assert "conformance/examples/torch_multihead_attention.py" in wheel
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in wheel)
    with tarfile.open(next(tmp_path.glob("*.tar.gz"))) as tar:
        sdist = tar.getnames()
    top = sdist[0].split("/")[0]
    rel = {n.split("/", 1)[1] for n in sdist if "/" in n}
    assert not any(n.startswith("tests/") for n in rel)
    for needed in ("pyproject.toml", "LICENSE", "CHANGELOG.md", "CITATION.cff",
                   "spec/algorithms/04-attention.md", "conformance/examples/__init__.py"):
        assert needed in rel, (top, needed)
