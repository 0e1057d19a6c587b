"""Working memory (spec/memory.md section 5): the unit costs the formulas rely on."""

from __future__ import annotations

import numpy as np
import pytest

from formal_transformers.canonical import init_parameters, parameter_count
from formal_transformers.hyperparameters import DTransformerConfig
from formal_transformers.memory.measure import traced_peak
from formal_transformers.memory.working import (
    REFERENCE_PHI_PRIME_BYTES,
    matrix_parameter_count,
    reference_update_working,
)
from reference_numpy.activations import activation_derivative
from reference_numpy.training import gradient_step


@pytest.mark.parametrize("activation", list(REFERENCE_PHI_PRIME_BYTES))
def test_reference_phi_prime_uses_the_stated_bytes_per_entry(activation):
    """(M26): reference_numpy evaluates phi'(U) with the temporaries the table states."""
    n = 50_000
    U = np.random.default_rng(0).normal(size=(250, n // 250))
    _, peak = traced_peak(lambda: activation_derivative(activation)(U))
    per_entry = peak / n
    assert per_entry == pytest.approx(REFERENCE_PHI_PRIME_BYTES[activation], rel=0.03), (
        f"{activation}': {per_entry:.2f} bytes per entry, table says "
        f"{REFERENCE_PHI_PRIME_BYTES[activation]}")


def test_reference_update_working_is_the_measured_gradient_step():
    """(M27): theta - eta * grad, entry by entry, within 1 % (the rest is the new dict and
    the array headers, Python objects of a few kB)."""
    c = DTransformerConfig(N_V=200, l_max=16, d_e=128, d_mlp=256, L=2, H=4)
    params = init_parameters(c, np.random.default_rng(0))
    grads = init_parameters(c, np.random.default_rng(1))
    _, peak = traced_peak(lambda: gradient_step(params, grads, 0.1))
    assert peak == pytest.approx(reference_update_working(c), rel=0.01)


def test_matrix_parameters_exclude_biases_and_layer_norm_parameters():
    c = DTransformerConfig(N_V=5, l_max=3, d_e=4, d_mlp=6, L=1, H=2)
    vectors = 3 * 4 + 4 + 6 + 4 + 3 * 2 * 4  # b_q, b_k, b_v; b_o; b_mlp1, b_mlp2; 3 layer norms
    assert matrix_parameter_count(c) == parameter_count(c) - vectors
