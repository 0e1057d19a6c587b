"""Traceability (ARCHITECTURE.md, spec/): every pseudocode line of every algorithm is cited by
the reference (``# Alg N Lk``), no citation points at a line that does not exist, and every
algorithm has a reference function, a torch function and at least one property."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from conformance.coverage import parse_citations
from formal_transformers.spec import load_catalogue

ROOT = Path(__file__).resolve().parent.parent


def reference_citations() -> dict[int, dict[int, list[str]]]:
    where: dict[int, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted((ROOT / "reference_numpy").rglob("*.py")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for number, k in parse_citations(line):
                where[number][k].append(f"{path.relative_to(ROOT)}:{lineno}")
    return where


def test_citation_parser_expands_ranges_and_lists():
    assert parse_citations("x = 1  # Alg 4 L5-6, L8") == [(4, 5), (4, 6), (4, 8)]
    assert parse_citations("# Alg 12 L3") == [(12, 3)]
    assert parse_citations("no citation here") == []


@pytest.mark.parametrize("alg", load_catalogue(), ids=lambda a: f"{a.number}-{a.id}")
def test_every_pseudocode_line_is_cited_by_the_reference(alg):
    cited = reference_citations().get(alg.number, {})
    missing = [line.number for line in alg.pseudocode if line.number not in cited]
    assert not missing, (f"Algorithm {alg.number} ({alg.id}): lines {missing} of "
                         f"{alg.path.name} are not cited by any '# Alg {alg.number} Lk' comment "
                         "in reference_numpy/")


def test_every_citation_points_at_an_existing_line():
    catalogue = {a.number: a for a in load_catalogue()}
    bad = []
    for number, lines in reference_citations().items():
        for k, places in lines.items():
            if number not in catalogue or k > len(catalogue[number].pseudocode):
                bad += [f"{p}: Alg {number} L{k}" for p in places]
    assert not bad, "citations of lines that do not exist:\n" + "\n".join(bad)


@pytest.mark.parametrize("alg", load_catalogue(), ids=lambda a: f"{a.number}-{a.id}")
def test_every_algorithm_has_reference_and_torch_functions_and_a_property(alg):
    import reference_numpy
    import torch_impl

    assert alg.properties, f"{alg.id} lists no property"
    assert callable(getattr(reference_numpy, "REGISTRY", {}).get(alg.id)), (
        f"reference_numpy.REGISTRY has no function for algorithm {alg.id!r}")
    assert callable(getattr(torch_impl, "REGISTRY", {}).get(alg.id)), (
        f"torch_impl.REGISTRY has no function for algorithm {alg.id!r}")
