"""The torch models compute the reference's architectures, training-loss gradients, training
runs and samples (spec: Algorithms 8-15; properties reference.forward_agreement,
reference.gradient_agreement, training.step_agreement, sampling.seed_reproducible).

Gradients: torch autograd (float64) against reference_numpy's hand-written chained backward
passes (reference_numpy.training ``*_loss_and_grad``), entry by entry, to 1e-10."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_cases import SETTINGS, TOLERANCE, assert_close, configs, random_parameters, seeds

import reference_numpy as ref
import torch_impl as ti
from reference_numpy import training as ref_training
from torch_impl.models import model_from_canonical
from torch_impl.training import d_losses, e_losses, ed_losses

ARCHS = ("decoder", "encoder", "encoder-decoder")
SPEC = {"decoder": "Algorithm 10", "encoder": "Algorithm 9", "encoder-decoder": "Algorithm 8"}


@st.composite
def model_cases(draw, arch: str, min_len: int = 1):
    config = draw(configs(arch))
    rng = np.random.default_rng(draw(seeds))
    params = random_parameters(config, rng)
    B = draw(st.integers(1, 2))
    l_x, l_z = draw(st.integers(min_len, config.l_max)), draw(st.integers(1, config.l_max))
    x, z = rng.integers(0, config.N_V, (B, l_x)), rng.integers(0, config.N_V, (B, l_z))
    return config, params, x, z


def _reference_P(arch, config, params, x, z):
    if arch == "decoder":
        return np.stack([ref.d_transformer(x_b, params, config).T for x_b in x])
    if arch == "encoder":
        return np.stack([ref.e_transformer(x_b, params, config).T for x_b in x])
    return np.stack([ref.ed_transformer(z_b, x_b, params, config).T
                     for z_b, x_b in zip(z, x, strict=True)])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("arch", ARCHS)
@SETTINGS
@given(data=st.data())
def test_architecture_outputs_agree_with_the_reference(arch, dtype, data):
    """P of a batch equals the reference's P of each sequence (spec: Algorithms 8-10)."""
    config, params, x, z = data.draw(model_cases(arch))
    cast = {k: v.astype(np.float32 if dtype == torch.float32 else np.float64)
            for k, v in params.items()}
    fn = ti.REGISTRY[{"decoder": "d_transformer", "encoder": "e_transformer",
                      "encoder-decoder": "ed_transformer"}[arch]]
    args = (torch.as_tensor(x),) if arch != "encoder-decoder" else (torch.as_tensor(z),
                                                                   torch.as_tensor(x))
    P = fn(*args, cast, config)
    assert P.dtype == dtype
    assert_close(P, _reference_P(arch, config, params, x, z), "P", SPEC[arch],
                 TOLERANCE[dtype])


def _torch_loss_and_grads(arch, config, params, x, z, masked, mask_token):
    model = model_from_canonical(config, params)
    X = torch.as_tensor(x)[None]
    if arch == "decoder":
        loss = d_losses(model, (X,))
    elif arch == "encoder":
        loss = e_losses(model, (X, torch.as_tensor(masked)[None]), mask_token)
    else:
        loss = ed_losses(model, (torch.as_tensor(z)[None], X))
    loss.sum().backward()
    return float(loss.sum().detach()), model.canonical_grads()


@pytest.mark.parametrize("arch", ARCHS)
@SETTINGS
@given(data=st.data())
def test_autograd_gradients_of_the_training_losses_agree_with_the_hand_written_ones(arch, data):
    """Every canonical gradient of the loss of Algorithms 11-13 (one sequence), float64."""
    config, params, x, z = data.draw(model_cases(arch, min_len=2))  # at least one target
    x, z = x[0], z[0]
    masked = np.random.default_rng(len(x)).random(len(x)) < 0.5
    mask_token = config.N_V - 1
    loss, grads = _torch_loss_and_grads(arch, config, params, x, z, masked, mask_token)
    if arch == "decoder":
        r_loss, r_grads = ref_training.d_loss_and_grad(x, params, config)
    elif arch == "encoder":
        r_loss, r_grads = ref_training.e_loss_and_grad(x, masked, params, config, mask_token)
    else:
        r_loss, r_grads = ref_training.ed_loss_and_grad(z, x, params, config)
    assert_close(loss, r_loss, "loss", SPEC[arch], 1e-10)
    assert list(grads) == list(r_grads)
    for name, g in r_grads.items():
        assert_close(grads[name], g, f"gradient of {name}", f"training loss of {SPEC[arch]}",
                     1e-10)


def _data(config, rng, n=2):
    return [rng.integers(0, config.N_V, rng.integers(1, config.l_max + 1)) for _ in range(n)]


@pytest.mark.parametrize("arch", ARCHS)
@settings(SETTINGS, max_examples=4)
@given(data=st.data())
def test_spec_training_runs_give_the_reference_parameters(arch, data):
    """Two epochs of the spec's gradient descent over two sequences (Algorithms 11-13)."""
    config, params, _, _ = data.draw(model_cases(arch))
    rng = np.random.default_rng(0)
    seqs = _data(config, rng)
    if arch == "decoder":
        out, exp = (m.d_training(seqs, params, config, 0.05, 2) for m in (ti, ref))
    elif arch == "encoder-decoder":
        pairs = list(zip(_data(config, rng), seqs, strict=True))
        out, exp = (m.ed_training(pairs, params, config, 0.05, 2) for m in (ti, ref))
    else:
        out, exp = (m.e_training(seqs, params, config, 0.05, 2, 0.5, 0,
                                 np.random.default_rng(3)) for m in (ti, ref))
    for name in params:
        assert_close(out[name], exp[name], name, f"training by {SPEC[arch]}", 1e-10)


@pytest.mark.parametrize("use_cache", [True, False], ids=["kv-cache", "no-cache"])
@SETTINGS
@given(data=st.data(), tau=st.sampled_from([0.5, 1.0, 3.0]))
def test_sampling_with_a_numpy_generator_reproduces_the_reference_tokens(use_cache, data, tau):
    """Same seed, same tokens as reference_numpy (spec: Algorithms 14-15): the torch models
    draw from a numpy.random.Generator exactly as the reference does."""
    config, params, x, z = data.draw(model_cases("decoder"))
    l_gen = config.l_max - x.shape[1] + 1
    model = model_from_canonical(config, params)
    got = ti.d_inference(model, torch.as_tensor(x[0]), l_gen, tau,
                         np.random.default_rng(5), use_cache=use_cache)
    exp = ref.d_inference(x[0], params, config, l_gen, tau, np.random.default_rng(5))
    np.testing.assert_array_equal(got.numpy(), exp)
    config, params, x, z = data.draw(model_cases("encoder-decoder"))
    model = model_from_canonical(config, params)
    got = ti.ed_inference(model, torch.as_tensor(z[0]), tau, np.random.default_rng(6), 0, 1,
                          config.l_max, use_cache=use_cache)
    exp = ref.ed_inference(z[0], params, config, tau, np.random.default_rng(6), 0, 1,
                           config.l_max)
    np.testing.assert_array_equal(got.numpy(), exp)
