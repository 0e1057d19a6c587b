"""Checks of numeric command-line flags, shared by every command.

A flag that is given is used as given: 0 is a value, never "not given" (``args.x is None`` is
the only test for absence). A value outside the flag's domain is a ConfigError naming the flag
-- the same error for 0 as for any other out-of-range value -- before any work starts.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping

from formal_transformers.errors import ConfigError


def dest(flag: str) -> str:
    """The argparse destination of a flag: '--d-e' -> 'd_e', '--N_V' -> 'N_V'."""
    return flag.lstrip("-").replace("-", "_")


def check_minimum(args: argparse.Namespace, minimums: Mapping[str, int | float]) -> None:
    """Every given flag of ``minimums`` ({'--heads': 1, ...}) is a finite number >= its
    minimum; else ConfigError '--heads must be an integer >= 1, got 0'."""
    for flag, low in minimums.items():
        value = getattr(args, dest(flag), None)
        if value is None:
            continue
        if not math.isfinite(value) or value < low:
            kind = "an integer" if isinstance(value, int) else "a finite number"
            raise ConfigError(f"{flag} must be {kind} >= {low}, got {value!r}")


def check_finite_positive(args: argparse.Namespace, flags: tuple[str, ...]) -> None:
    """Every given flag of ``flags`` is a finite number > 0."""
    for flag in flags:
        value = getattr(args, dest(flag), None)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{flag} must be a finite number > 0, got {value!r}")
