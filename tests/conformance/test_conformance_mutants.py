"""The suite proves its power: every mutant of conformance/mutants is caught by verify, by the
properties it names, and every property of the suite catches at least one mutant."""

from __future__ import annotations

import pytest

from conformance.mutants import catalogue
from conformance.mutants.decoder import ComposedDecoder
from conformance.mutants.sampling import ComposedSampler
from conformance.mutants.speculative import ComposedSpeculative
from conformance.registry import all_checks
from conformance.runner import nothing_checked, run
from formal_transformers.spec import load_properties

MUTANTS = catalogue()


def test_the_catalogue_holds_at_least_25_mutants_each_documented():
    assert len(MUTANTS) >= 25
    for mutant in MUTANTS:
        assert mutant.__doc__ and mutant.only, mutant.__name__
        assert mutant.caught_by or getattr(mutant, "exit_status", None) == 3, mutant.__name__


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.__name__)
def test_verify_catches_the_mutant_by_the_properties_it_names(mutant):
    results = run(mutant(), "ci", 0, only=mutant.only, shrink=False)
    if getattr(mutant, "exit_status", None) == 3:
        assert results and nothing_checked(results), f"{mutant.__name__} was checked"
        return
    failed = {r.property for r in results if r.status == "failed"}
    errors = [f"{r.algorithm}/{r.property}: {r.reason}" for r in results if r.status == "error"]
    assert not errors, f"{mutant.__name__} breaks the protocol instead of a law: {errors}"
    missing = set(mutant.caught_by) - failed
    assert not missing, (f"{mutant.__name__} ({mutant.__doc__.strip()}) was not caught by "
                         f"{sorted(missing)}; failed: {sorted(failed)}")


def test_every_property_catches_some_mutant():
    caught = {p for mutant in MUTANTS for p in mutant.caught_by}
    checked = {c.property for c in all_checks()}
    assert checked <= set(load_properties()), "every check is a law of spec/properties.md"
    assert checked - caught == set(), f"properties that catch no mutant: {checked - caught}"


@pytest.mark.parametrize("base, profile, at_least", [
    (ComposedDecoder, "ci", 12), (ComposedSampler, "ci", 6), (ComposedSpeculative, "quick", 4)],
    ids=lambda v: v.__name__ if isinstance(v, type) else str(v))
def test_the_composed_adapters_the_mutants_break_are_themselves_conforming(base, profile,
                                                                          at_least):
    results = run(base(), profile, 0, only=base.only)
    ran = [r for r in results if r.status != "not covered"]
    assert len(ran) >= at_least
    assert all(r.status == "passed" for r in ran), [
        (r.algorithm, r.property, r.reason) for r in ran if r.status != "passed"]
