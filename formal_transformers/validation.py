"""Input checks shared by reference_numpy and torch_impl (duck-typed over NumPy and torch).

Each check raises a typed error from formal_transformers.errors whose message names the
argument, what the spec expects and what was received. Nothing is broadcast silently.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import numpy as np

from formal_transformers.errors import (
    ConfigError,
    MaskError,
    NonFiniteError,
    SequenceLengthError,
    SpecDTypeError,
    SpecShapeError,
    TokenRangeError,
)

Dim = int | str | None  # an int must match; a str or None is a free (named) dimension


def _is_torch(x: object) -> bool:
    torch = sys.modules.get("torch")  # never imports torch itself; traceable by torch.compile
    return torch is not None and isinstance(x, torch.Tensor)


def check_shape(name: str, x: object, expected: Sequence[Dim]) -> None:
    """``x.shape`` must equal ``expected``; a str or None entry matches any size.

    Example: ``check_shape("X", X, ("d_x", "l_x"))`` checks only the rank,
    ``check_shape("W_q", W_q, (d_attn, d_x))`` checks both sizes.
    """
    shape = getattr(x, "shape", None)
    if shape is None:
        raise SpecShapeError(f"{name} must be an array of shape {_fmt(expected)}, "
                             f"got {type(x).__name__}")
    shape = tuple(shape)
    ok = len(shape) == len(expected) and all(
        not isinstance(e, int) or e == s for e, s in zip(expected, shape, strict=False))
    if not ok:
        raise SpecShapeError(f"{name} must have shape {_fmt(expected)}, got {shape}")


def _fmt(expected: Sequence[Dim]) -> str:
    inner = ", ".join("?" if e is None else str(e) for e in expected)
    return f"({inner},)" if len(expected) == 1 else f"({inner})"


def check_finite(name: str, x: object) -> None:
    """No NaN or Inf in a floating-point array (skipped while torch.compile traces: the check
    reads data, a graph break)."""
    if _is_torch(x):
        import torch

        if torch.compiler.is_compiling():
            return
        bad = not bool(torch.isfinite(x).all())  # type: ignore[arg-type]
    else:
        bad = not bool(np.isfinite(np.asarray(x)).all())
    if bad:
        raise NonFiniteError(f"{name} must be finite, but it holds NaN or Inf")


def check_floating(name: str, x: object) -> None:
    """A real floating-point array (float16/bfloat16/float32/float64)."""
    if _is_torch(x):
        ok = x.dtype.is_floating_point  # type: ignore[attr-defined]
    else:
        ok = np.issubdtype(np.asarray(x).dtype, np.floating)
    if not ok:
        raise SpecDTypeError(f"{name} must be a floating-point array, got dtype {x.dtype}")  # type: ignore[attr-defined]


def check_tokens(name: str, x: object, N_V: int) -> None:
    """Integer token ids in the vocabulary [N_V] = {0, ..., N_V - 1}."""
    if _is_torch(x):
        import torch

        is_int = not x.dtype.is_floating_point and x.dtype != torch.bool  # type: ignore[attr-defined]
        arr = x
    else:
        arr = np.asarray(x)
        is_int = np.issubdtype(arr.dtype, np.integer)
    if not is_int:
        raise SpecDTypeError(f"{name} must hold integer token ids, got dtype {arr.dtype}")
    if arr.numel() if _is_torch(arr) else arr.size:  # type: ignore[union-attr]
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= N_V:
            bad = lo if lo < 0 else hi
            raise TokenRangeError(
                f"{name} must hold token ids in [0, N_V - 1] = [0, {N_V - 1}], found {bad}")


def check_length(name: str, length: int, l_max: int) -> None:
    """A sequence length in 1..l_max (the context size)."""
    if length < 1:
        raise SequenceLengthError(f"{name} must hold at least one token, got an empty sequence")
    if length > l_max:
        raise SequenceLengthError(
            f"{name} has length {length}, longer than the context size l_max = {l_max}")


def check_mask(name: str, Mask: object, shape: tuple[int, int]) -> None:
    """A boolean matrix Mask in {0,1}^{l_z x l_x} (spec: Algorithm 4)."""
    got = tuple(getattr(Mask, "shape", ()))
    if got != tuple(shape):
        raise MaskError(f"{name} must be a boolean matrix of shape (l_z, l_x) = {shape}, got {got}")
    if _is_torch(Mask):
        import torch

        is_bool = Mask.dtype == torch.bool  # type: ignore[attr-defined]
    else:
        is_bool = np.asarray(Mask).dtype == np.bool_
    if not is_bool:
        raise MaskError(f"{name} must have a boolean dtype, got {Mask.dtype}")  # type: ignore[attr-defined]


def check_layer_norm_eps(eps: object) -> float:
    """The layer-norm stabiliser epsilon: a finite real number >= 0 (ConfigError otherwise);
    0 is Phuong & Hutter's algorithm (spec: Algorithm 6)."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)) \
            or not math.isfinite(eps) or eps < 0:
        raise ConfigError(f"layer_norm_eps must be a finite number >= 0, got {eps!r}")
    return float(eps)


def check_array(name: str, x: object, expected: Sequence[Dim]) -> None:
    """A finite floating-point array of the given shape: check_shape, check_floating and
    check_finite in that order (the checks every real-valued input of the spec gets)."""
    check_shape(name, x, expected)
    check_floating(name, x)
    check_finite(name, x)


def check_position(name: str, t: object, l_max: int) -> None:
    """A position index t in [l_max] = {0, ..., l_max - 1} (spec: Algorithm 2)."""
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
        raise SpecDTypeError(f"{name} must be an integer position, got {type(t).__name__} {t!r}")
    if not 0 <= t < l_max:
        raise SequenceLengthError(
            f"{name} must be a position in [0, l_max - 1] = [0, {l_max - 1}], got {t}")


def check_token_id(name: str, v: object, N_V: int) -> None:
    """One integer token id (a Python or NumPy integer scalar, not a bool) in [N_V]."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise SpecDTypeError(f"{name} must be one integer token id, got {type(v).__name__} {v!r}")
    check_tokens(name, np.asarray(v), N_V)
