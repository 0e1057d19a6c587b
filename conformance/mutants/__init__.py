"""The mutant catalogue: deliberately broken implementations that the suite must catch.

Each mutant is a small adapter subclass that breaks one thing, with two class attributes:
``only`` (the ``--only`` selection to verify it on -- algorithm or property ids -- to keep the
run short) and ``caught_by`` (the
properties that must fail for it). A mutant with ``exit_status = 3`` (and ``caught_by = ()``)
must instead make verify check nothing and say so. tests/conformance/test_mutants.py runs
``verify`` on every one and checks both; it also checks that every property of the suite
catches some mutant.
Try one by hand::

    formal-transformers verify --impl conformance.mutants.attention:MissingScale --only attention
"""

from __future__ import annotations

from conformance.mutants import (
    attention,
    attention_variants,
    decode,
    decoder,
    evidence,
    modern_backward,
    modern_decoder,
    modern_position_wise,
    padding,
    position_wise,
    positions,
    rope,
    sampling,
    speculative,
    training_memory,
    variants,
    vision,
)

MODULES = (attention, position_wise, decoder, training_memory, evidence, sampling, speculative,
           rope, modern_position_wise, positions, attention_variants, vision, variants, padding,
           decode, modern_decoder, modern_backward)


def catalogue() -> list[type]:
    """Every mutant class (those with ``caught_by``), in module order."""
    out = []
    for module in MODULES:
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == module.__name__ \
                    and "caught_by" in vars(value):
                out.append(value)
    return out
