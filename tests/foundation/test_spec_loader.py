"""The spec loader (formal_transformers/spec.py): the catalogue loads, and malformed files are
rejected with an error naming the file and the field (issue 2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from formal_transformers.errors import SpecFormatError
from formal_transformers.spec import load_algorithm, load_catalogue, load_properties, spec_root

EXEMPLAR = spec_root() / "algorithms" / "04-attention.md"


@pytest.fixture
def spec_copy(tmp_path: Path) -> Path:
    """A private copy of the spec holding only the exemplar algorithm, to corrupt at will."""
    root = tmp_path / "spec"
    (root / "algorithms").mkdir(parents=True)
    for name in ("schema.json", "properties.md", "notation.md"):
        shutil.copy(spec_root() / name, root / name)
    shutil.copy(EXEMPLAR, root / "algorithms" / EXEMPLAR.name)
    return root


def corrupt(root: Path, old: str, new: str, name: str = EXEMPLAR.name) -> Path:
    path = root / "algorithms" / name
    text = path.read_text()
    assert old in text, f"fixture text {old!r} not found in {name}"
    path.write_text(text.replace(old, new, 1))
    return path


def test_catalogue_loads_and_is_numbered_uniquely():
    catalogue = load_catalogue()
    assert [a.number for a in catalogue] == sorted({a.number for a in catalogue})
    for alg in catalogue:
        assert alg.inputs and alg.outputs and alg.pseudocode, alg.id


def test_every_algorithm_file_round_trips_to_json():
    for alg in load_catalogue():
        data = alg.to_json()
        for key in ("id", "number", "title", "inputs", "outputs", "parameters",
                    "hyperparameters", "pseudocode"):
            assert key in data
        assert [p["line"] for p in data["pseudocode"]] == list(range(1, len(alg.pseudocode) + 1))


def test_pseudocode_lines_carry_their_nesting_depth():
    alg = load_algorithm(EXEMPLAR)
    assert alg.line(5).text.startswith("for")
    assert alg.line(6).depth == alg.line(5).depth + 1
    with pytest.raises(KeyError):
        alg.line(len(alg.pseudocode) + 1)


@pytest.mark.parametrize("old,new,field", [
    ("id: attention\n", "", "id"),
    ("number: 4\n", "number: four\n", "number"),
    ("number: 4\n", "number: 5\n", "number"),
    ("kind: forward\n", "kind: sideways\n", "kind"),
    ("origin: Phuong & Hutter 2022, Algorithm 4\n", "origin: somewhere\n", "origin"),
    ("    name: V_tilde\n", "", "outputs.0.name"),
    ("meaning: primary sequence", "meaning: ''\n    unused: primary sequence", "inputs.0"),
    ("title: Attention\n", "title: Attention\ncolour: blue\n", "colour"),
    ("  $S \\gets K^\\top Q$", "     $S \\gets K^\\top Q$", "pseudocode.L4"),
    ("  $S \\gets K^\\top Q$", "  $S \\gets K^\\top Q", "pseudocode.L4"),
    ("  - softmax.normalised\n", "  - softmax.not_a_law\n", "properties"),
])
def test_malformed_algorithm_file_names_file_and_field(spec_copy, old, new, field):
    path = corrupt(spec_copy, old, new)
    with pytest.raises(SpecFormatError) as info:
        load_catalogue(spec_copy)
    assert info.value.file == str(path)
    assert info.value.field.startswith(field), info.value
    assert path.name in str(info.value) and field.split(".")[0] in str(info.value)


def test_missing_front_matter_is_rejected(spec_copy):
    path = spec_copy / "algorithms" / EXEMPLAR.name
    path.write_text("# Attention\n\nno front matter\n")
    with pytest.raises(SpecFormatError, match="front matter"):
        load_catalogue(spec_copy)


def test_invalid_yaml_is_rejected(spec_copy):
    corrupt(spec_copy, "title: Attention\n", "title: [unclosed\n")
    with pytest.raises(SpecFormatError, match="invalid YAML"):
        load_catalogue(spec_copy)


def test_empty_prose_is_rejected(spec_copy):
    path = spec_copy / "algorithms" / EXEMPLAR.name
    text = path.read_text()
    path.write_text(text[: text.index("\n---\n") + 5])
    with pytest.raises(SpecFormatError, match="prose"):
        load_catalogue(spec_copy)


def test_duplicate_ids_are_rejected(spec_copy):
    shutil.copy(spec_copy / "algorithms" / EXEMPLAR.name, spec_copy / "algorithms" / "99-copy.md")
    corrupt(spec_copy, "number: 4\n", "number: 99\n", name="99-copy.md")
    with pytest.raises(SpecFormatError, match="duplicate id 'attention'"):
        load_catalogue(spec_copy)


def test_backward_entry_must_name_an_existing_forward(spec_copy):
    corrupt(spec_copy, "kind: forward\n", "kind: backward\nforward: no_such_algorithm\n")
    with pytest.raises(SpecFormatError) as info:
        load_catalogue(spec_copy)
    assert info.value.field == "forward"


def test_property_catalogue_rejects_duplicates_and_bad_ids(spec_copy):
    path = spec_copy / "properties.md"
    text = path.read_text()
    path.write_text(text.replace("  - id: causal.zero_jacobian", "  - id: causal.non_leakage", 1))
    with pytest.raises(SpecFormatError, match="duplicate id"):
        load_properties(spec_copy)
    path.write_text(text.replace("  - id: causal.zero_jacobian", "  - id: CausalJacobian", 1))
    with pytest.raises(SpecFormatError) as info:
        load_properties(spec_copy)
    assert info.value.field.endswith(".id")


def test_every_listed_property_exists():
    properties = load_properties()
    for alg in load_catalogue():
        assert set(alg.properties) <= set(properties), alg.id
