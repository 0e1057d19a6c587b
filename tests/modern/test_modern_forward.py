"""The modern primitives' references (spec: Algorithms 25, 27, 28) against independent
formulations written the way real libraries write them: Meta's complex-number rotary for the
interleaved layout, `transformers`' rotate_half for half_split, torch.nn.RMSNorm, and SwiGLU
as a one-liner; plus the typed errors for bad hyperparameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reference_numpy as ref
import torch_impl
from formal_transformers.errors import ConfigError, SpecShapeError
from formal_transformers.rope import Rope, RopeScaling
from reference_numpy.alibi import alibi_slopes as ref_alibi_slopes
from reference_numpy.rope import rope_frequencies
from torch_impl.alibi import alibi_slopes as torch_alibi_slopes
from torch_impl.rope import rope_frequencies as torch_rope_frequencies

RNG = np.random.default_rng(0)


def meta_complex_rope(X: np.ndarray, positions: np.ndarray, theta: float) -> np.ndarray:
    """Meta's reference: consecutive features (2i, 2i+1) as one complex number times
    exp(i p omega_i). X: (d, l) columns."""
    d = X.shape[0]
    omega = 1.0 / theta ** (np.arange(0, d, 2) / d)
    z = X[0::2] + 1j * X[1::2]  # (d/2, l)
    z = z * np.exp(1j * np.outer(omega, positions))
    out = np.empty_like(X)
    out[0::2], out[1::2] = z.real, z.imag
    return out


def test_interleaved_rope_is_meta_complex_multiplication():
    X, p = RNG.standard_normal((8, 5)), np.array([0, 3, 7, 8, 40])
    Y = ref.rope(X, p, Rope(layout="interleaved", theta=500000.0))
    np.testing.assert_allclose(Y, meta_complex_rope(X, p, 500000.0), rtol=0, atol=1e-13)


def test_half_split_rope_is_the_interleaved_one_after_the_pair_permutation():
    X, p = RNG.standard_normal((6, 4)), np.array([1, 2, 5, 9])
    pi = np.array([0, 3, 1, 4, 2, 5])  # pi(2i) = i, pi(2i + 1) = i + d/2
    half = ref.rope(X, p, Rope(layout="half_split"))
    inter = ref.rope(X[pi], p, Rope(layout="interleaved"))
    np.testing.assert_allclose(inter, half[pi], rtol=0, atol=1e-14)


def test_partial_rotary_passes_the_remaining_features_through():
    X, p = RNG.standard_normal((6, 3)), np.array([4, 5, 6])
    Y = ref.rope(X, p, Rope(fraction=4 / 6))
    np.testing.assert_array_equal(Y[4:], X[4:])
    np.testing.assert_allclose(Y[:4], ref.rope(X[:4], p, Rope()), atol=1e-15)


def test_llama3_scaling_bands_match_the_published_rule():
    """Wavelengths below L/beta keep omega, above L/alpha divide by kappa, between mix."""
    s = RopeScaling("llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                    original_max_position=256)
    base = rope_frequencies(6, Rope(theta=10000.0))
    scaled = rope_frequencies(6, Rope(theta=10000.0, scaling=s))
    lam = 2 * np.pi / base  # 6.28 (kept), 135 (mixed), 2920 (divided)
    assert lam[0] < 64 < lam[1] < 256 < lam[2]
    smooth = (256 / lam[1] - 1.0) / 3.0
    np.testing.assert_allclose(scaled, [base[0], (1 - smooth) * base[1] / 8 + smooth * base[1],
                                        base[2] / 8], rtol=1e-15)
    torch_omega = torch_rope_frequencies(6, Rope(theta=1e4, scaling=s))
    np.testing.assert_allclose(torch_omega.numpy(), scaled, rtol=1e-15)


def test_torch_rope_accepts_heads_and_per_row_positions():
    X = torch.randn(2, 3, 4, 6, dtype=torch.float64)
    p = torch.tensor([[0, 1, 2, 3], [5, 6, 7, 8]])
    Y = torch_impl.rope(X, p, Rope(layout="interleaved"))
    for b in range(2):
        for h in range(3):
            expected = ref.rope(X[b, h].numpy().T, p[b].numpy(), Rope(layout="interleaved")).T
            np.testing.assert_allclose(Y[b, h].numpy(), expected, atol=1e-14)


@pytest.mark.parametrize("bad", [dict(layout="complex"), dict(theta=1.0), dict(fraction=0.0),
                                 dict(fraction=1.5)])
def test_bad_rope_hyperparameters_are_config_errors(bad):
    with pytest.raises(ConfigError):
        Rope(**bad)


def test_odd_rotated_feature_count_and_bad_positions_are_typed_errors():
    with pytest.raises(ConfigError, match="even"):
        ref.rope(np.ones((5, 2)), np.array([0, 1]), Rope())
    with pytest.raises(SpecShapeError, match=r"\(l,\) = \(2,\)"):
        ref.rope(np.ones((4, 2)), np.array([0, 1, 2]), Rope())
    with pytest.raises(SpecShapeError):
        torch_impl.rope(torch.ones(1, 2, 4), torch.tensor([0]), Rope())


@pytest.mark.parametrize("offset", [False, True])
def test_rmsnorm_is_torch_nn_rmsnorm_with_the_gain(offset):
    e, gamma = RNG.standard_normal(7), RNG.standard_normal(7)
    layer = torch.nn.RMSNorm(7, eps=1e-3, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(gamma + (1.0 if offset else 0.0)))
    expected = layer(torch.from_numpy(e)).detach().numpy()
    np.testing.assert_allclose(ref.rmsnorm(e, gamma, 1e-3, offset), expected, rtol=1e-14)
    np.testing.assert_allclose(torch_impl.rmsnorm(torch.from_numpy(e), torch.from_numpy(gamma),
                                                  1e-3, offset).numpy(), expected, rtol=1e-14)


def test_rmsnorm_rejects_a_non_bool_offset():
    with pytest.raises(ConfigError, match="offset"):
        ref.rmsnorm(np.ones(3), np.ones(3), 1e-5, 1)


@pytest.mark.parametrize("activation", ["silu", "gelu", "gelu_tanh"])
def test_gated_mlp_is_down_of_activated_gate_times_up(activation):
    X = RNG.standard_normal((4, 3))
    Wg, Wu = RNG.standard_normal((5, 4)), RNG.standard_normal((5, 4))
    Wd = RNG.standard_normal((4, 5))
    t = torch.from_numpy
    phi = {"silu": torch.nn.functional.silu, "gelu": torch.nn.functional.gelu,
           "gelu_tanh": lambda x: torch.nn.functional.gelu(x, approximate="tanh")}[activation]
    expected = (t(Wd) @ (phi(t(Wg) @ t(X)) * (t(Wu) @ t(X)))).numpy()
    np.testing.assert_allclose(ref.gated_mlp(X, Wg, Wu, Wd, activation), expected, rtol=1e-12)
    got = torch_impl.gated_mlp(t(X.T.copy()), t(Wg), t(Wu), t(Wd), activation).numpy().T
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_gated_mlp_rejects_the_plain_mlp_activation_relu():
    with pytest.raises(ConfigError, match="silu"):
        ref.gated_mlp(np.ones((2, 1)), np.ones((3, 2)), np.ones((3, 2)), np.ones((2, 3)), "relu")


def test_alibi_slopes_for_six_heads_follow_the_reference_code_rule():
    """H = 6: the four slopes of 4 heads, then slopes 0 and 2 of 8 heads (spec: Alg 26 L3)."""
    expected = [2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3]
    np.testing.assert_allclose(ref_alibi_slopes(6), expected, rtol=1e-15)
    np.testing.assert_allclose(torch_alibi_slopes(6).numpy(), expected, rtol=1e-15)
    np.testing.assert_allclose(ref_alibi_slopes(8), [2.0 ** -k for k in range(1, 9)], rtol=1e-15)


def test_torch_alibi_is_query_major_and_equals_the_reference_transposed():
    p_x, p_z = np.array([3, 4, 5]), np.array([0, 1, 2, 3, 4, 5])
    bias = torch_impl.alibi(torch.from_numpy(p_x), torch.from_numpy(p_z), 3, torch.float64)
    assert bias.shape == (3, 3, 6)
    np.testing.assert_allclose(bias.numpy().transpose(0, 2, 1), ref.alibi(p_x, p_z, 3),
                               rtol=1e-15)
    assert ref.alibi(p_x, p_z, 3)[0, 5, 2] == 0.0  # key and query both at position 5
    for form in ("symmetric", "key_position"):
        bias = torch_impl.alibi(torch.from_numpy(p_x), torch.from_numpy(p_z), 3, torch.float64,
                                form)
        np.testing.assert_allclose(bias.numpy().transpose(0, 2, 1),
                                   ref.alibi(p_x, p_z, 3, form), rtol=1e-15)
    m = ref_alibi_slopes(3)
    np.testing.assert_allclose(ref.alibi(p_x, p_z, 3, "key_position")[:, 4, 0], m * 4)
    np.testing.assert_allclose(ref.alibi(p_x, p_z, 3, "symmetric")[:, 5, 0], -m * 2)


def test_sinusoidal_is_vaswani_and_phuong_hutter_by_its_hyperparameters():
    p, d_e, l_max = np.array([0, 1, 7]), 6, 16
    E = ref.sinusoidal_embedding(p, d_e)
    i = np.arange(d_e // 2)
    np.testing.assert_allclose(E[0::2], np.sin(np.outer(10000.0 ** (-2 * i / d_e), p)))
    np.testing.assert_allclose(E[1::2], np.cos(np.outer(10000.0 ** (-2 * i / d_e), p)))
    # Phuong & Hutter: W_p[2i-1, t] = sin(t / l_max^(2i/d_e)), i from 1, 1-based rows
    E_ph = ref.sinusoidal_embedding(p, d_e, base=float(l_max), index_offset=1)
    for i1 in range(1, d_e // 2 + 1):
        np.testing.assert_allclose(E_ph[2 * i1 - 2], np.sin(p / l_max ** (2 * i1 / d_e)))
        np.testing.assert_allclose(E_ph[2 * i1 - 1], np.cos(p / l_max ** (2 * i1 / d_e)))
    torch_E = torch_impl.sinusoidal_embedding(torch.from_numpy(p), d_e, dtype=torch.float64)
    np.testing.assert_allclose(torch_E.numpy().T, E, rtol=1e-15, atol=1e-15)


def test_sinusoidal_rejects_odd_sizes_and_bad_offsets():
    with pytest.raises(ConfigError, match="even"):
        ref.sinusoidal_embedding(np.array([0]), 5)
    with pytest.raises(ConfigError, match="index_offset"):
        ref.sinusoidal_embedding(np.array([0]), 4, index_offset=2)
