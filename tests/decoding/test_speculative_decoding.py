"""Algorithm 61 (spec/algorithms/61-speculative-decoding.md): the reference's exact law over
(continuation, accepted counts) has the target's law as its marginal (the losslessness
theorem, checked by enumeration), greedy speculative decoding is greedy decoding of the target,
torch_impl with both KV caches reproduces the reference, and bad input is a typed error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conformance.properties.speculative import speculative_law, target_law
from formal_transformers.canonical import random_parameters
from formal_transformers.errors import ConfigError, SequenceLengthError
from formal_transformers.hyperparameters import DTransformerConfig
from formal_transformers.sampling_config import SamplingConfig
from reference_numpy.speculative import d_transformer_model, memoised, speculative_decoding
from torch_impl.models import DTransformer
from torch_impl.speculative import speculative_decoding as torch_speculative


def pair(seed: int, N_V: int = 3, l_max: int = 6):
    target = DTransformerConfig(N_V=N_V, l_max=l_max, d_e=4, d_mlp=4, L=2, H=2)
    draft = DTransformerConfig(N_V=N_V, l_max=l_max, d_e=2, d_mlp=3, L=1, H=1)
    rng = np.random.default_rng(seed)
    return target, random_parameters(target, rng, 1.5), draft, random_parameters(draft, rng, 1.5)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("S", [SamplingConfig(), SamplingConfig(tau=0.6, top_k=2),
                               SamplingConfig(top_p=0.7, order="truncation_first", tau=2.0)])
def test_the_exact_law_of_speculative_decoding_has_the_targets_law_as_marginal(k, S):
    tc, tp, dc, dp = pair(k)
    target, draft = memoised(d_transformer_model(tp, tc)), memoised(d_transformer_model(dp, dc))
    law = speculative_law(target, draft, (1,), 3, k, S)
    marginal: dict[tuple, float] = {}
    for (y, _), w in law.items():
        marginal[y] = marginal.get(y, 0.0) + w
    want = target_law(target, (1,), 3, S)
    assert abs(sum(law.values()) - 1) < 1e-12
    assert max(abs(marginal.get(y, 0.0) - w) for y, w in want.items()) < 1e-12


def greedy_target(params, config, x, l_gen):
    x = list(x)
    for _ in range(l_gen):
        x.append(int(np.argmax(d_transformer_model(params, config)(np.array(x))[:, -1])))
    return np.array(x[-l_gen:])


@pytest.mark.parametrize("seed", range(4))
def test_greedy_speculative_decoding_is_greedy_decoding_of_the_target(seed):
    tc, tp, dc, dp = pair(seed, N_V=5)
    for k in (1, 2, 4):
        y, A = speculative_decoding(np.array([seed % 5]), d_transformer_model(tp, tc),
                                    d_transformer_model(dp, dc), 5, k, None,
                                    np.random.default_rng(0), tc.l_max)
        np.testing.assert_array_equal(y, greedy_target(tp, tc, [seed % 5], 5))
        assert len(y) == 5 and sum(A) + len(A) == 5


def test_a_draft_equal_to_the_target_is_always_accepted():
    tc, tp, _, _ = pair(0)
    model = d_transformer_model(tp, tc)
    y, A = speculative_decoding(np.array([0]), model, model, 5, 2, SamplingConfig(),
                                np.random.default_rng(3), tc.l_max)
    # kappa = 2 (3 tokens with the bonus), then min(2, 5 - 3 - 1) = 1: every proposal accepted
    assert A.tolist() == [2, 1]
    assert len(y) == 5


@pytest.mark.parametrize("seed", range(3))
def test_torch_with_both_kv_caches_reproduces_the_reference_greedily(seed):
    tc, tp, dc, dp = pair(seed, N_V=6)
    T = DTransformer.from_canonical(tc, tp).double()
    D = DTransformer.from_canonical(dc, dp).double()
    prompt = np.array([[seed % 6, 1], [2, 3]])
    for k in (1, 3):
        y, accepted = torch_speculative(T, D, torch.as_tensor(prompt), 4, k)
        for b in range(2):
            want, A = speculative_decoding(prompt[b], d_transformer_model(tp, tc),
                                           d_transformer_model(dp, dc), 4, k, None,
                                           np.random.default_rng(0), tc.l_max)
            np.testing.assert_array_equal(y[b].numpy(), want)
            assert accepted[b] == A.tolist()


def test_greedy_torch_decoding_draws_no_randomness():
    """Greedy rounds compare argmaxes (torch_impl/speculative.py): no draw from one-hot
    distributions, so the global torch generator is left as it was."""
    tc, tp, dc, dp = pair(5, N_V=6)
    T, D = DTransformer.from_canonical(tc, tp), DTransformer.from_canonical(dc, dp)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    y, _ = torch_speculative(T, D, torch.tensor([1, 2]), 4, 2)
    assert torch.equal(torch.get_rng_state(), before) and y.shape == (4,)


def test_torch_draws_like_the_reference_from_a_numpy_generator():
    tc, tp, dc, dp = pair(7)
    T = DTransformer.from_canonical(tc, tp).double()
    D = DTransformer.from_canonical(dc, dp).double()
    S = SamplingConfig(tau=0.8)
    for seed in range(5):
        y, A = torch_speculative(T, D, torch.tensor([2]), 5, 2, S, np.random.default_rng(seed))
        want, A_ref = speculative_decoding(np.array([2]), d_transformer_model(tp, tc),
                                           d_transformer_model(dp, dc), 5, 2, S,
                                           np.random.default_rng(seed), tc.l_max)
        np.testing.assert_array_equal(y.numpy(), want)
        assert A[0] == A_ref.tolist()


def test_bad_input_is_a_typed_error():
    tc, tp, dc, dp = pair(0)
    model = d_transformer_model(tp, tc)
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="draft length k"):
        speculative_decoding(np.array([0]), model, model, 2, 0, None, rng, tc.l_max)
    with pytest.raises(SequenceLengthError, match="l_max"):
        speculative_decoding(np.array([0, 1]), model, model, 6, 1, None, rng, tc.l_max)
    with pytest.raises(ConfigError, match="SamplingConfig"):
        speculative_decoding(np.array([0]), model, model, 2, 1, 0.7, rng, tc.l_max)
    T = DTransformer.from_canonical(tc, tp)
    with pytest.raises(ConfigError, match="draft length k"):
        torch_speculative(T, T, torch.tensor([0]), 2, 0)
    with pytest.raises(SequenceLengthError, match="l_max"):
        torch_speculative(T, T, torch.tensor([0]), 7, 2)
