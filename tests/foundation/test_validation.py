"""Input checks shared by the reference and torch (formal_transformers/validation.py): each
bad input gets its typed error, for NumPy arrays and torch tensors alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from formal_transformers.errors import (
    MaskError,
    NonFiniteError,
    SequenceLengthError,
    SpecDTypeError,
    SpecShapeError,
    TokenRangeError,
)
from formal_transformers.validation import (
    check_finite,
    check_floating,
    check_length,
    check_mask,
    check_shape,
    check_tokens,
)

BACKENDS = [np.asarray, torch.as_tensor]


@pytest.mark.parametrize("to", BACKENDS)
def test_shape_check_names_argument_and_expected_shape(to):
    check_shape("W_q", to(np.zeros((2, 3))), (2, "d_x"))
    with pytest.raises(SpecShapeError, match=r"W_q must have shape \(2, 4\), got \(2, 3\)"):
        check_shape("W_q", to(np.zeros((2, 3))), (2, 4))
    with pytest.raises(SpecShapeError, match="got list"):
        check_shape("X", [[1.0]], ("d", "l"))


@pytest.mark.parametrize("to", BACKENDS)
def test_non_finite_values_are_rejected(to):
    check_finite("X", to(np.ones(3)))
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(NonFiniteError, match="X must be finite"):
            check_finite("X", to(np.array([1.0, bad])))


@pytest.mark.parametrize("to", BACKENDS)
def test_tokens_must_be_integers_in_the_vocabulary(to):
    check_tokens("x", to(np.array([0, 4])), N_V=5)
    with pytest.raises(TokenRangeError, match=r"\[0, 4\], found 5"):
        check_tokens("x", to(np.array([0, 5])), N_V=5)
    with pytest.raises(TokenRangeError, match="found -1"):
        check_tokens("x", to(np.array([-1, 2])), N_V=5)
    with pytest.raises(SpecDTypeError, match="integer token ids"):
        check_tokens("x", to(np.array([0.0, 1.0])), N_V=5)


def test_lengths_must_fit_the_context():
    check_length("x", 8, l_max=8)
    with pytest.raises(SequenceLengthError, match="longer than the context size l_max = 8"):
        check_length("x", 9, l_max=8)
    with pytest.raises(SequenceLengthError, match="empty"):
        check_length("x", 0, l_max=8)


@pytest.mark.parametrize("to", BACKENDS)
def test_masks_must_be_boolean_of_the_right_shape(to):
    check_mask("Mask", to(np.ones((3, 2), dtype=bool)), (3, 2))
    with pytest.raises(MaskError, match=r"shape \(l_z, l_x\) = \(3, 2\), got \(2, 3\)"):
        check_mask("Mask", to(np.ones((2, 3), dtype=bool)), (3, 2))
    with pytest.raises(MaskError, match="boolean dtype"):
        check_mask("Mask", to(np.ones((3, 2))), (3, 2))


@pytest.mark.parametrize("to", BACKENDS)
def test_floating_check_rejects_integers(to):
    check_floating("X", to(np.ones(2)))
    with pytest.raises(SpecDTypeError, match="floating-point"):
        check_floating("X", to(np.ones(2, dtype=np.int64)))
