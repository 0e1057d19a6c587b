"""The three architectures of reference_numpy (spec: Algorithms 8-10,
spec/algorithms/08-ed-transformer.md, 09-e-transformer.md, 10-d-transformer.md): the laws of
spec/properties.md that apply to them, agreement with the independent torch implementation,
and a typed error for every bad input.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from formal_transformers.errors import (
    NonFiniteError,
    ParameterFileError,
    SequenceLengthError,
    SpecDTypeError,
    SpecShapeError,
    TokenRangeError,
)
from formal_transformers.hyperparameters import (
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
)
from reference_numpy import REGISTRY
from reference_numpy.architectures import (
    causal_mask,
    d_transformer,
    e_transformer,
    ed_transformer,
)

from .arch_strategies import ARCH_SETTINGS, d_cases, e_cases, ed_cases, random_parameters
from .assertions import assert_allclose

SPEC = {"d": "spec: Algorithm 10", "e": "spec: Algorithm 9", "ed": "spec: Algorithm 8"}


def assert_columns_are_distributions(P: np.ndarray, N_V: int, l_x: int, spec: str) -> None:
    assert P.shape == (N_V, l_x), f"P has shape {P.shape}, expected (N_V, l_x) = {(N_V, l_x)}"
    assert np.all(P >= 0), f"P has a negative entry {P.min()} ({spec}, last line)"
    assert_allclose(P.sum(axis=0), np.ones(l_x), "column sums of P", f"{spec}, last line",
                    rtol=0, atol=1e-12)


@ARCH_SETTINGS
@given(case=d_cases(), data=st.data())
def test_d_transformer_columns_are_distributions(case, data):
    """structure.distribution for Algorithm 10."""
    l_x = data.draw(st.integers(1, case.config.l_max))
    P = d_transformer(case.tokens(l_x), case.params, case.config)
    assert_columns_are_distributions(P, case.config.N_V, l_x, SPEC["d"])


@ARCH_SETTINGS
@given(case=e_cases(), data=st.data())
def test_e_transformer_columns_are_distributions(case, data):
    """structure.distribution for Algorithm 9 (with and without the embedding layer norm)."""
    l_x = data.draw(st.integers(1, case.config.l_max))
    P = e_transformer(case.tokens(l_x), case.params, case.config)
    assert_columns_are_distributions(P, case.config.N_V, l_x, SPEC["e"])


@ARCH_SETTINGS
@given(case=ed_cases(), data=st.data())
def test_ed_transformer_columns_are_distributions(case, data):
    """structure.distribution for Algorithm 8, with l_z and l_x drawn independently."""
    l_z, l_x = (data.draw(st.integers(1, case.config.l_max)) for _ in range(2))
    P = ed_transformer(case.tokens(l_z, offset=2), case.tokens(l_x), case.params, case.config)
    assert_columns_are_distributions(P, case.config.N_V, l_x, SPEC["ed"])


def _diverging_pair(case, data, l_x: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Two sequences that agree on x[0 : t+1] and differ at every later position."""
    t = data.draw(st.integers(0, l_x - 2), label="t")
    x = case.tokens(l_x)
    x_prime = x.copy()
    x_prime[t + 1:] = (x[t + 1:] + 1) % case.config.N_V
    return x, x_prime, t


@ARCH_SETTINGS
@given(case=d_cases(), data=st.data())
def test_decoder_output_ignores_future_tokens(case, data):
    """causal.non_leakage for Algorithm 10: P[:, :t+1] depends on x[0 : t+1] only."""
    l_x = data.draw(st.integers(2, case.config.l_max))
    x, x_prime, t = _diverging_pair(case, data, l_x)
    P, P_prime = (d_transformer(s, case.params, case.config) for s in (x, x_prime))
    assert_allclose(P_prime[:, :t + 1], P[:, :t + 1], f"columns 0..{t} of P",
                    "spec: Algorithm 10 L6, causal mask", rtol=0, atol=1e-13)


@pytest.mark.parametrize("seed", [0, 1])
def test_decoder_output_depends_on_every_earlier_token(seed):
    """The converse that makes non-leakage meaningful: changing x[t] changes every column
    t' >= t (the causal mask keeps t_z <= t_x, it does not block more)."""
    config = DTransformerConfig(N_V=6, l_max=5, d_e=4, d_mlp=5, L=2, H=2)
    params = random_parameters(config, np.random.default_rng(seed))
    x = np.array([1, 4, 2, 0, 3])
    P = d_transformer(x, params, config)
    for t in range(5):
        x_prime = x.copy()
        x_prime[t] = (x[t] + 1) % config.N_V
        moved = np.abs(d_transformer(x_prime, params, config) - P).max(axis=0)
        blind = np.flatnonzero(moved[t:] <= 1e-9) + t
        assert blind.size == 0, f"x[{t}] does not reach columns {blind}"


@ARCH_SETTINGS
@given(case=ed_cases(), data=st.data())
def test_ed_decoder_output_ignores_future_target_tokens(case, data):
    """causal.non_leakage for the decoder side of Algorithm 8 (same context z)."""
    l_x = data.draw(st.integers(2, case.config.l_max))
    l_z = data.draw(st.integers(1, case.config.l_max))
    z = case.tokens(l_z, offset=2)
    x, x_prime, t = _diverging_pair(case, data, l_x)
    P, P_prime = (ed_transformer(z, s, case.params, case.config) for s in (x, x_prime))
    assert_allclose(P_prime[:, :t + 1], P[:, :t + 1], f"columns 0..{t} of P",
                    "spec: Algorithm 8 L13, causal mask", rtol=0, atol=1e-13)


@pytest.mark.parametrize("seed", [0, 1])
def test_ed_every_output_column_sees_the_whole_context(seed):
    """Cross-attention uses the all-ones mask (Algorithm 8 L15): changing any one context
    token changes every column of P, the first included."""
    config = EDTransformerConfig(N_V=6, l_max=4, d_e=4, d_mlp=5, L_enc=1, L_dec=2, H=2)
    params = random_parameters(config, np.random.default_rng(seed))
    z, x = np.array([2, 5, 1, 0]), np.array([3, 1, 4])
    P = ed_transformer(z, x, params, config)
    for t in range(len(z)):
        z_prime = z.copy()
        z_prime[t] = (z[t] + 1) % config.N_V
        moved = np.abs(ed_transformer(z_prime, x, params, config) - P).max(axis=0)
        assert np.all(moved > 1e-9), f"columns {np.flatnonzero(moved <= 1e-9)} ignore z[{t}]"


@ARCH_SETTINGS
@given(case=e_cases(), data=st.data())
def test_encoder_is_permutation_equivariant_without_positions(case, data):
    """permutation.equivariance for Algorithm 9 with W_p = 0: permuting the tokens permutes
    the columns of P in the same way."""
    params = {**case.params, "W_p": np.zeros_like(case.params["W_p"])}
    l_x = data.draw(st.integers(1, case.config.l_max))
    x = case.tokens(l_x)
    perm = case.rng(3).permutation(l_x)
    P = e_transformer(x, params, case.config)
    P_perm = e_transformer(x[perm], params, case.config)
    assert_allclose(P_perm, P[:, perm], "P of the permuted sequence",
                    "spec: Algorithm 9 L6, Mask = 1", rtol=1e-10, atol=1e-12)


def test_causal_mask_lets_each_query_see_itself_and_earlier_tokens():
    """Mask[t_z, t_x] = [t_z <= t_x] (Algorithm 10 L6, Algorithm 8 L13)."""
    M = causal_mask(4)
    assert M.dtype == np.bool_
    assert all(M[t_z, t_x] == (t_z <= t_x) for t_z in range(4) for t_x in range(4))


def test_embedding_layer_norm_variant_is_used_only_when_enabled():
    """Algorithm 9 L4: with embedding_layer_norm, emb_ln.* exist and change P."""
    base = dict(N_V=5, l_max=4, d_e=4, d_mlp=3, L=1, H=2)
    config = ETransformerConfig(**base, embedding_layer_norm=True)
    params = random_parameters(config, np.random.default_rng(0))
    x = [0, 3, 1]
    P = e_transformer(x, params, config)
    P_shifted = e_transformer(x, {**params, "emb_ln.beta": params["emb_ln.beta"] + 1.0}, config)
    assert not np.allclose(P, P_shifted), "emb_ln.beta had no effect on P"
    with pytest.raises(ParameterFileError, match="emb_ln"):
        e_transformer(x, params, ETransformerConfig(**base))


# ---------------------------------------------------------------------------------------------
# Agreement with the independent torch implementation (reference.forward_agreement)


def _torch_P(arch: str, case, *sequences: np.ndarray) -> np.ndarray:
    import torch_impl

    tensors = [torch.as_tensor(s, dtype=torch.long)[None, :] for s in sequences]
    P = torch_impl.REGISTRY[f"{arch}_transformer"](*tensors, case.params, case.config)
    return P[0].detach().numpy().T  # (l_x, N_V) -> the spec's (N_V, l_x)


@ARCH_SETTINGS
@given(case=st.one_of(d_cases(), e_cases()), data=st.data())
def test_single_stack_models_agree_with_torch_impl_in_float64(case, data):
    """reference.forward_agreement for Algorithms 9-10 (float64: 1e-10)."""
    arch = "d" if isinstance(case.config, DTransformerConfig) else "e"
    x = case.tokens(data.draw(st.integers(1, case.config.l_max)))
    P = REGISTRY[f"{arch}_transformer"](x, case.params, case.config)
    assert_allclose(_torch_P(arch, case, x), P, "torch_impl P", SPEC[arch], rtol=1e-10,
                    atol=1e-10)


@ARCH_SETTINGS
@given(case=ed_cases(), data=st.data())
def test_ed_transformer_agrees_with_torch_impl_in_float64(case, data):
    """reference.forward_agreement for Algorithm 8 (float64: 1e-10)."""
    z = case.tokens(data.draw(st.integers(1, case.config.l_max)), offset=2)
    x = case.tokens(data.draw(st.integers(1, case.config.l_max)))
    P = ed_transformer(z, x, case.params, case.config)
    assert_allclose(_torch_P("ed", case, z, x), P, "torch_impl P", SPEC["ed"], rtol=1e-10,
                    atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Bad input: a typed error naming the argument


CONFIGS = {
    "d": DTransformerConfig(N_V=5, l_max=4, d_e=4, d_mlp=3, L=1, H=2),
    "e": ETransformerConfig(N_V=5, l_max=4, d_e=4, d_mlp=3, L=1, H=2),
    "ed": EDTransformerConfig(N_V=5, l_max=4, d_e=4, d_mlp=3, L_enc=1, L_dec=1, H=2),
}


def _run(arch: str, params, x, z=(1, 2)):
    config = CONFIGS[arch]
    if arch == "ed":
        return ed_transformer(z, x, params, config)
    return REGISTRY[f"{arch}_transformer"](x, params, config)


@pytest.fixture(params=sorted(CONFIGS))
def arch(request):
    return request.param


@pytest.fixture
def params(arch):
    return random_parameters(CONFIGS[arch], np.random.default_rng(1))


@pytest.mark.parametrize("x,error,match", [
    ([0, 5, 1], TokenRangeError, r"x must hold token ids in \[0, N_V - 1\] = \[0, 4\], found 5"),
    ([0, -1], TokenRangeError, "found -1"),
    ([0, 1, 2, 3, 4], SequenceLengthError, "x has length 5, longer than .* l_max = 4"),
    ([], SequenceLengthError, "x must hold at least one token"),
    ([[0, 1], [1, 2]], SpecShapeError, "x must have shape"),
    ([0.0, 1.0], SpecDTypeError, "x must hold integer token ids"),
])
def test_bad_token_sequence_raises_typed_error(arch, params, x, error, match):
    with pytest.raises(error, match=match):
        _run(arch, params, x)


@pytest.mark.parametrize("z,match", [([0, 9], "z must hold token ids"),
                                     ([], "z must hold at least one token"),
                                     ([0] * 5, "z has length 5")])
def test_bad_context_sequence_raises_typed_error(z, match):
    params = random_parameters(CONFIGS["ed"], np.random.default_rng(1))
    with pytest.raises((TokenRangeError, SequenceLengthError), match=match):
        _run("ed", params, [0, 1], z=z)


def test_non_finite_parameter_raises_naming_it(arch, params):
    bad = {**params, "W_u": params["W_u"].copy()}
    bad["W_u"][0, 0] = np.nan
    with pytest.raises(NonFiniteError, match="W_u must be finite"):
        _run(arch, bad, [0, 1])
    bad["W_u"][0, 0] = np.inf
    with pytest.raises(NonFiniteError, match="W_u"):
        _run(arch, bad, [0, 1])


def test_missing_parameter_raises_naming_it(arch, params):
    name = "W_p"
    with pytest.raises(ParameterFileError, match=f"missing entry '{name}'"):
        _run(arch, {k: v for k, v in params.items() if k != name}, [0, 1])


def test_misshaped_parameter_raises_naming_it(arch, params):
    name = next(k for k in params if k.endswith("W_q"))
    bad = {**params, name: params[name][:, :, :-1]}
    with pytest.raises(ParameterFileError, match=rf"entry '{name}' has shape .* expected"):
        _run(arch, bad, [0, 1])


def test_extra_parameter_raises_naming_it(arch, params):
    with pytest.raises(ParameterFileError, match="unexpected entry 'W_extra'"):
        _run(arch, {**params, "W_extra": np.zeros(3)}, [0, 1])


def test_integer_parameter_raises_dtype_error(arch, params):
    with pytest.raises(SpecDTypeError, match="W_e must be a floating-point array"):
        _run(arch, {**params, "W_e": params["W_e"].astype(np.int64)}, [0, 1])


def test_parameters_that_are_not_arrays_raise_typed_errors(arch, params):
    with pytest.raises(SpecDTypeError, match=r"params\['W_u'\] must be a NumPy array, got list"):
        _run(arch, {**params, "W_u": params["W_u"].tolist()}, [0, 1])
    with pytest.raises(ParameterFileError, match="params must be a mapping"):
        _run(arch, None, [0, 1])


def test_float32_parameters_are_computed_in_float64(arch, params):
    """The reference is float64 throughout: float32 entries are widened, not mixed."""
    as32 = {k: v.astype(np.float32) for k, v in params.items()}
    widened = {k: v.astype(np.float64) for k, v in as32.items()}
    P = _run(arch, as32, [0, 1, 2])
    assert P.dtype == np.float64
    assert_allclose(P, _run(arch, widened, [0, 1, 2]), "P from float32 parameters",
                    "reference_numpy: float64", rtol=0, atol=0)
