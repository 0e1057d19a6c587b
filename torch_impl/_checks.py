"""Input checks of the functional API in (batch, length, features) layout.

Thin compositions of formal_transformers.validation (the one place that words the errors),
so that torch_impl raises the same typed errors as reference_numpy for the same defects.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from formal_transformers.errors import MaskError, SpecDTypeError, SpecShapeError
from formal_transformers.validation import (
    Dim,
    check_array,
    check_length,
    check_mask,
    check_shape,
    check_tokens,
)


def check_tensor(name: str, x: object, shape: Sequence[Dim], dtype: torch.dtype | None = None
                 ) -> None:
    """A finite floating torch tensor of the given shape (and dtype, when given)."""
    if not isinstance(x, torch.Tensor):
        raise SpecDTypeError(f"{name} must be a torch.Tensor of shape "
                             f"{tuple(shape)}, got {type(x).__name__}")
    if dtype is not None and x.dtype != dtype and x.dtype.is_floating_point:
        raise SpecDTypeError(f"{name} must have the dtype of the input ({dtype}), got {x.dtype}")
    check_array(name, x, shape)


def check_features(name: str, x: object, dtype: torch.dtype | None = None) -> None:
    """A finite floating tensor (..., d) with at least one axis: features on the last axis."""
    check_tensor(name, x, (None,) * (max(getattr(x, "ndim", 1), 1) - 1) + ("d",), dtype)


def check_parameters(specs: Sequence[tuple[str, object, Sequence[Dim]]], dtype: torch.dtype
                     ) -> None:
    """Every (name, tensor, shape) triple passes check_tensor with the common dtype."""
    for name, x, shape in specs:
        check_tensor(name, x, shape, dtype)


def check_token_batch(name: str, x: object, N_V: int, l_max: int) -> None:
    """A (B, l) integer tensor of token ids in [0, N_V) with 1 <= l <= l_max."""
    if not isinstance(x, torch.Tensor):
        raise SpecDTypeError(f"{name} must be a torch.Tensor of token ids with shape (B, l), "
                             f"got {type(x).__name__}")
    check_shape(name, x, ("B", "l"))
    check_length(f"{name} (axis 1)", x.shape[1], l_max)
    if x.shape[0] < 1:
        raise SpecShapeError(f"{name} must hold at least one sequence (B >= 1), got shape "
                             f"{tuple(x.shape)}")
    check_tokens(name, x, N_V)


def check_batched_mask(mask: object, B: int, l_z: int, l_x: int) -> None:
    """A bool mask (l_z, l_x) or (B, l_z, l_x), Mask[t_z, t_x] as in the spec (Algorithm 4),
    with no all-zero column (a query that attends to nothing has an undefined softmax)."""
    if not isinstance(mask, torch.Tensor):
        raise MaskError(f"mask must be a torch.Tensor of dtype torch.bool and shape (l_z, l_x) "
                        f"= {(l_z, l_x)} (or (B, l_z, l_x)), got {type(mask).__name__}")
    shape = (l_z, l_x) if mask.ndim == 2 else (B, l_z, l_x)
    check_mask("mask", mask, shape)
    empty = ~mask.any(dim=-2)  # type: ignore[union-attr]
    if bool(empty.any()):
        where = tuple(int(i) for i in torch.nonzero(empty)[0])
        raise MaskError(f"mask column {where[-1]} (index {where}) is all zeros: query token "
                        f"{where[-1]} attends to nothing and its softmax is undefined "
                        "(spec: Algorithm 4, edge cases)")
