"""Load and validate the spec: spec/algorithms/*.md, spec/properties.md, spec/notation.md.

Every algorithm file is Markdown with YAML front matter validated against spec/schema.json,
then against the cross-file rules below. Any defect raises SpecFormatError naming the file and
the field. The spec ships inside the wheel (``formal_transformers/_spec``); in a source
checkout it is read from the top-level ``spec/``.

Pseudocode is a block of lines, numbered from 1 in order of appearance; two spaces of
indentation are one level of nesting (the body of a ``for`` or ``if``). Math is written in
``$...$``; comments in ``/* ... */``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from formal_transformers.errors import SpecFormatError

_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n(.*)\Z", re.DOTALL)
_FILENAME = re.compile(r"^(\d{2,})-[a-z0-9-]+\.md$")


def spec_root() -> Path:
    """Directory holding the spec: the packaged copy if installed, else the checkout's spec/."""
    packaged = Path(__file__).parent / "_spec"
    if (packaged / "algorithms").is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "spec"


@dataclass(frozen=True)
class Symbol:
    """One input, output, parameter or hyperparameter of a signature."""

    symbol: str
    name: str
    type: str
    meaning: str
    shape: tuple[str | int, ...] | None = None


@dataclass(frozen=True)
class PseudocodeLine:
    """Line ``number`` (1-based) of an algorithm, nested ``depth`` levels deep."""

    number: int
    depth: int
    text: str


@dataclass(frozen=True)
class Algorithm:
    """One algorithm of the catalogue, as its spec file states it."""

    id: str
    number: int
    title: str
    name: str
    origin: str
    kind: str
    summary: str
    signature: str
    inputs: tuple[Symbol, ...]
    outputs: tuple[Symbol, ...]
    parameters: tuple[Symbol, ...]
    hyperparameters: tuple[Symbol, ...]
    pseudocode: tuple[PseudocodeLine, ...]
    properties: tuple[str, ...]
    body: str
    path: Path
    forward: str | None = None

    def line(self, number: int) -> PseudocodeLine:
        """Pseudocode line ``number`` (1-based); KeyError if it does not exist."""
        if not 1 <= number <= len(self.pseudocode):
            raise KeyError(f"{self.id} has lines 1..{len(self.pseudocode)}, not {number}")
        return self.pseudocode[number - 1]

    def to_json(self) -> dict[str, Any]:
        def syms(items: tuple[Symbol, ...]) -> list[dict[str, Any]]:
            return [{k: (list(v) if isinstance(v, tuple) else v)
                     for k, v in s.__dict__.items() if v is not None} for s in items]

        return {
            "id": self.id, "number": self.number, "title": self.title, "name": self.name,
            "origin": self.origin, "kind": self.kind, "summary": self.summary,
            "signature": self.signature, "forward": self.forward,
            "inputs": syms(self.inputs), "outputs": syms(self.outputs),
            "parameters": syms(self.parameters), "hyperparameters": syms(self.hyperparameters),
            "pseudocode": [{"line": p.number, "depth": p.depth, "text": p.text}
                           for p in self.pseudocode],
            "properties": list(self.properties),
        }


@dataclass(frozen=True)
class Property:
    """One law of spec/properties.md: a stable id, a title and a formal statement."""

    id: str
    title: str
    statement: str
    applies_to: tuple[str, ...] = field(default=())


def split_front_matter(path: Path) -> tuple[dict[str, Any], str]:
    """Parse ``---``-delimited YAML front matter; SpecFormatError on anything malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecFormatError(str(path), "<file>", f"cannot be read ({exc})") from None
    m = _FRONT_MATTER.match(text)
    if not m:
        raise SpecFormatError(str(path), "<front matter>",
                              "file must start with '---', YAML front matter, and '---'")
    try:
        data = yaml.safe_load(m.group(1))
    except yaml.YAMLError as exc:
        raise SpecFormatError(str(path), "<front matter>", f"invalid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise SpecFormatError(str(path), "<front matter>", "must be a YAML mapping")
    return data, m.group(2)


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return json.loads((spec_root() / "schema.json").read_text(encoding="utf-8"))


def _field_path(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        missing = re.search(r"'([^']+)' is a required property", error.message)
        if missing:
            return f"{path}.{missing.group(1)}" if path else missing.group(1)
    if error.validator == "additionalProperties":
        extra = re.search(r"\('([^']+)'", error.message)
        if extra:
            return f"{path}.{extra.group(1)}" if path else extra.group(1)
    return path or "<front matter>"


def parse_pseudocode(source: str, where: str) -> tuple[PseudocodeLine, ...]:
    """Number the lines of a pseudocode block and read their nesting from the indentation."""
    lines: list[PseudocodeLine] = []
    depth_prev = 0
    for raw in source.rstrip("\n").split("\n"):
        if not raw.strip():
            raise SpecFormatError(where, f"pseudocode.L{len(lines) + 1}", "empty line")
        indent = len(raw) - len(raw.lstrip(" "))
        if indent % 2 or "\t" in raw[: indent + 1]:
            raise SpecFormatError(where, f"pseudocode.L{len(lines) + 1}",
                                  "indent with multiples of two spaces")
        depth = indent // 2
        if depth > depth_prev + 1:
            raise SpecFormatError(where, f"pseudocode.L{len(lines) + 1}",
                                  f"nested {depth} levels under a line of depth {depth_prev}")
        text = raw.strip()
        if text.count("$") % 2:
            raise SpecFormatError(where, f"pseudocode.L{len(lines) + 1}", "unbalanced '$'")
        lines.append(PseudocodeLine(len(lines) + 1, depth, text))
        depth_prev = depth
    return tuple(lines)


def _symbols(items: list[dict[str, Any]]) -> tuple[Symbol, ...]:
    return tuple(Symbol(symbol=i["symbol"], name=i["name"], type=i["type"], meaning=i["meaning"],
                        shape=tuple(i["shape"]) if "shape" in i else None) for i in items)


def load_algorithm(path: str | Path) -> Algorithm:
    """Load one spec/algorithms file, validated against the schema."""
    path = Path(path)
    data, body = split_front_matter(path)
    errors = sorted(jsonschema.Draft202012Validator(_schema()).iter_errors(data),
                    key=lambda e: list(e.absolute_path))
    if errors:
        raise SpecFormatError(str(path), _field_path(errors[0]), errors[0].message)
    m = _FILENAME.match(path.name)
    if not m or int(m.group(1)) != data["number"]:
        raise SpecFormatError(str(path), "number",
                              f"file name must be 'NN-slug.md' with NN = number ({data['number']})")
    if data["kind"] == "backward" and "forward" not in data:
        raise SpecFormatError(str(path), "forward", "a backward entry must name its forward id")
    if not body.strip():
        raise SpecFormatError(str(path), "<prose>", "the prose after the front matter is empty")
    return Algorithm(
        id=data["id"], number=data["number"], title=data["title"], name=data["name"],
        origin=data["origin"], kind=data["kind"], summary=data["summary"],
        signature=data["signature"], inputs=_symbols(data["inputs"]),
        outputs=_symbols(data["outputs"]), parameters=_symbols(data["parameters"]),
        hyperparameters=_symbols(data["hyperparameters"]),
        pseudocode=parse_pseudocode(data["pseudocode"], str(path)),
        properties=tuple(data["properties"]), body=body.strip() + "\n", path=path,
        forward=data.get("forward"),
    )


def load_properties(root: Path | None = None) -> dict[str, Property]:
    """Read the property catalogue from the front matter of spec/properties.md."""
    path = (root or spec_root()) / "properties.md"
    data, _ = split_front_matter(path)
    items = data.get("properties")
    if not isinstance(items, list) or not items:
        raise SpecFormatError(str(path), "properties", "must be a non-empty list")
    props: dict[str, Property] = {}
    for i, item in enumerate(items):
        where = f"properties.{i}"
        if not isinstance(item, dict):
            raise SpecFormatError(str(path), where, "must be a mapping")
        for key in ("id", "title", "statement"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise SpecFormatError(str(path), f"{where}.{key}", "must be a non-empty string")
        if not re.fullmatch(r"[a-z_]+\.[a-z_]+", item["id"]):
            raise SpecFormatError(str(path), f"{where}.id", "must look like 'family.law'")
        if item["id"] in props:
            raise SpecFormatError(str(path), f"{where}.id", f"duplicate id {item['id']!r}")
        props[item["id"]] = Property(item["id"], item["title"], item["statement"].strip(),
                                     tuple(item.get("applies_to", ())))
    return props


def load_catalogue(root: Path | None = None) -> list[Algorithm]:
    """Every algorithm, sorted by number, with the cross-file rules checked.

    Rules: ids and numbers are unique; every property id exists in spec/properties.md;
    a backward entry's ``forward`` names an algorithm of kind forward.
    """
    root = root or spec_root()
    files = sorted((root / "algorithms").glob("*.md"))
    if not files:
        raise SpecFormatError(str(root / "algorithms"), "<directory>", "holds no algorithm files")
    algorithms = [load_algorithm(f) for f in files]
    properties = load_properties(root)
    by_id: dict[str, Algorithm] = {}
    numbers: dict[int, Path] = {}
    for alg in algorithms:
        if alg.id in by_id:
            raise SpecFormatError(str(alg.path), "id", f"duplicate id {alg.id!r} "
                                  f"(also in {by_id[alg.id].path.name})")
        if alg.number in numbers:
            raise SpecFormatError(str(alg.path), "number", f"duplicate number {alg.number} "
                                  f"(also in {numbers[alg.number].name})")
        by_id[alg.id], numbers[alg.number] = alg, alg.path
        for i, pid in enumerate(alg.properties):
            if pid not in properties:
                raise SpecFormatError(str(alg.path), f"properties.{i}",
                                      f"unknown property id {pid!r} (not in properties.md)")
    for alg in algorithms:
        if alg.forward is not None and (alg.forward not in by_id
                                        or by_id[alg.forward].kind != "forward"):
            raise SpecFormatError(str(alg.path), "forward",
                                  f"{alg.forward!r} is not the id of a forward algorithm")
    return sorted(algorithms, key=lambda a: a.number)


def find_algorithm(key: str, root: Path | None = None) -> Algorithm:
    """Look an algorithm up by id, number or name (case-insensitive); KeyError if absent."""
    for alg in load_catalogue(root):
        if key.lower() in (alg.id, str(alg.number), alg.name.lower()):
            return alg
    raise KeyError(key)
