"""The modern decoder's mutants are caught by the laws they name, and the hookable adapters
they break are themselves conforming (conformance/mutants/modern_decoder.py, and
modern_backward.py, whose mutants the catalogue test runs)."""

from __future__ import annotations

import pytest

from conformance.mutants import modern_backward, modern_decoder
from conformance.runner import run

MUTANTS = [modern_decoder.RopeLayoutSwapped, modern_decoder.GQATiled,
           modern_decoder.RingWindowOffByOne, modern_decoder.ScoresScaledByModelWidth]


def test_the_hookable_modern_decoder_passes_what_it_declares():
    results = run(modern_decoder.ModernTorch(), "ci", 0, only=("modern_d_transformer",))
    ran = [r for r in results if r.status != "not covered"]
    assert len(ran) >= 5
    assert all(r.status == "passed" for r in ran), [(r.property, r.reason) for r in ran
                                                    if r.status != "passed"]


def test_the_hookable_modern_backward_passes_what_it_declares():
    """Its gradient (Algorithm 66) and training step through the build hook are correct, so
    each mutant of modern_backward.py is caught for its own broken rule."""
    results = run(modern_backward.ModernBackwardTorch(), "ci", 0,
                  only=("modern_d_transformer_backward",))
    assert {r.property for r in results if r.status == "passed"} == {
        "gradient.finite_difference", "reference.gradient_agreement", "training.step_agreement"}
    assert all(r.status == "passed" for r in results), [(r.property, r.reason) for r in results
                                                        if r.status != "passed"]


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.__name__)
def test_each_modern_mutant_is_caught_by_what_it_names(mutant):
    results = run(mutant(), "ci", 0, only=mutant.only, shrink=False)
    failed = {r.property for r in results if r.status == "failed"}
    assert not [r for r in results if r.status == "error"]
    assert set(mutant.caught_by) <= failed, failed
