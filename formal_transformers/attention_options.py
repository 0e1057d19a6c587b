"""Checks of the hyperparameters of the modern attention primitives (spec: Algorithms 40-49).

Shared by reference_numpy and torch_impl so that both raise the same ConfigError /
SpecShapeError, naming the hyperparameter and the expected range, for the same bad value.
"""

from __future__ import annotations

import math

import numpy as np

from formal_transformers.errors import ConfigError, SpecShapeError

QK_NORM_AXES = ("per_head", "projection")


def check_positive_int(name: str, value: object, low: int = 1) -> int:
    """An int >= low (ConfigError naming ``name`` otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_block_sparse(b: object, c: object) -> tuple[int, int]:
    """Block size b >= 1 and summary positions 1 <= c <= b (spec: Algorithm 43)."""
    b, c = check_positive_int("b", b), check_positive_int("c", c)
    if c > b:
        raise ConfigError(f"c (summary positions per block) must be <= b = {b}, got {c}")
    return b, c


def check_groups(H: int, G: int) -> None:
    """G kv heads must divide H query heads, both >= 1 (spec: Algorithm 40)."""
    if H < 1 or G < 1 or H % G:
        raise SpecShapeError(f"the number of kv heads G (axis 0 of W_k) must divide the number "
                             f"of query heads H (axis 0 of W_q), both >= 1; got H = {H}, "
                             f"G = {G}")


def _number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.floating,
                                                               np.integer))


def check_cap(c: object) -> float:
    """The soft cap c: a finite number > 0 (spec: Algorithm 46)."""
    if not _number(c) or not math.isfinite(c) or c <= 0:
        raise ConfigError(f"the soft cap c must be a finite number > 0, got {c!r}")
    return float(c)


def check_qk_norm_options(axis: object, eps: object) -> float:
    """axis in QK_NORM_AXES and eps a finite number >= 0 (spec: Algorithm 44); returns eps."""
    if axis not in QK_NORM_AXES:
        raise ConfigError(f"axis must be one of {QK_NORM_AXES}, got {axis!r}")
    if not _number(eps) or not math.isfinite(eps) or eps < 0:
        raise ConfigError(f"eps must be a finite number >= 0, got {eps!r}")
    return float(eps)


def check_heads(H: object, rows: int) -> int:
    """H >= 1 dividing the ``rows`` of a stacked-heads matrix (spec: Algorithm 44)."""
    if isinstance(H, bool) or not isinstance(H, (int, np.integer)) or H < 1 or rows % H:
        raise ConfigError(f"H must be an integer >= 1 dividing the {rows} stacked rows, "
                          f"got {H!r}")
    return int(H)
