"""The modern decoder's mutants are caught by the laws they name, and the hookable adapter
they break is itself conforming (conformance/mutants/modern_decoder.py)."""

from __future__ import annotations

import pytest

from conformance.mutants import modern_decoder
from conformance.runner import run

MUTANTS = [modern_decoder.RopeLayoutSwapped, modern_decoder.GQATiled,
           modern_decoder.RingWindowOffByOne, modern_decoder.ScoresScaledByModelWidth]


def test_the_hookable_modern_decoder_passes_what_it_declares():
    results = run(modern_decoder.ModernTorch(), "ci", 0, only=("modern_d_transformer",))
    ran = [r for r in results if r.status != "not covered"]
    assert len(ran) >= 5
    assert all(r.status == "passed" for r in ran), [(r.property, r.reason) for r in ran
                                                    if r.status != "passed"]


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.__name__)
def test_each_modern_mutant_is_caught_by_what_it_names(mutant):
    results = run(mutant(), "ci", 0, only=mutant.only, shrink=False)
    failed = {r.property for r in results if r.status == "failed"}
    assert not [r for r in results if r.status == "error"]
    assert set(mutant.caught_by) <= failed, failed
