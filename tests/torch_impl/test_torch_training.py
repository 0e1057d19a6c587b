"""Training machinery: the batch objective's normalisation, gradient accumulation, the spec's
gradient-descent step, AdamW, bf16 autocast, and the CUDA fast paths (skipped without a GPU).
Spec: Algorithms 11-13 (torch_impl/training.py states the normalisation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_cases import assert_close, random_parameters

import torch_impl as ti
from formal_transformers.errors import ConfigError
from formal_transformers.hyperparameters import DTransformerConfig, ETransformerConfig
from torch_impl.models import model_from_canonical
from torch_impl.training import (
    accumulate_gradients,
    d_losses,
    e_losses,
    make_adamw,
    train_step,
)

D = DTransformerConfig(N_V=11, l_max=10, d_e=8, d_mlp=12, L=2, H=2)


def needs_cuda(test):
    """Marked ``cuda`` and skipped, with the reason shown, where no CUDA device exists."""
    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
    return pytest.mark.cuda(skip(test))


def _model(config=D, dtype=None):
    params = random_parameters(config, np.random.default_rng(0))
    return model_from_canonical(config, params, dtype=dtype), params


def _batch(B=4, l=6, seed=0):
    return (torch.randint(0, 11, (B, l), generator=torch.Generator().manual_seed(seed)),)


def test_the_batch_objective_is_the_mean_of_the_spec_per_sequence_losses():
    """train_step's objective for B sequences = (1/B) sum_b of Algorithm 13's loss of b."""
    model, _ = _model()
    (x,) = _batch()
    per_sequence = [float(d_losses(model, (x[b:b + 1],)).detach()) for b in range(4)]
    objective = accumulate_gradients(model, d_losses, (x,))
    assert objective == pytest.approx(np.mean(per_sequence), rel=1e-12)


@pytest.mark.parametrize("micro", [1, 3])
def test_gradient_accumulation_over_micro_batches_gives_the_full_batch_gradient(micro):
    full, _ = _model()
    split, _ = _model()
    batch = _batch(B=5)
    accumulate_gradients(full, d_losses, batch)
    accumulate_gradients(split, d_losses, batch, micro_batch_size=micro)
    g_full, g_split = full.canonical_grads(), split.canonical_grads()
    for name in g_full:
        assert_close(g_split[name], g_full[name], name, "gradient accumulation", 1e-12)


def test_a_plain_gradient_descent_step_is_theta_minus_eta_grad():
    model, params = _model()
    ref_model, _ = _model()
    batch = _batch()
    accumulate_gradients(ref_model, d_losses, batch)
    grads = ref_model.canonical_grads()
    train_step(model, 0.1, d_losses, batch)
    after = model.to_canonical()
    for name in params:
        assert_close(after[name], params[name] - 0.1 * grads[name], name, "Alg 13 L6", 1e-12)


def test_adamw_decays_matrices_only_and_moves_every_parameter():
    model, params = _model(dtype=torch.float32)
    opt = make_adamw(model, lr=1e-2, weight_decay=0.1)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in decayed) == (p.ndim >= 2), name
    assert not opt.defaults["fused"]  # CPU: the foreach kernel
    train_step(model, opt, d_losses, _batch())
    after = model.to_canonical()
    assert all(not np.array_equal(after[k], params[k].astype(np.float32)) for k in params
               if not k.endswith("b_k"))  # b_k: zero gradient (softmax ignores a shift)


def test_bf16_autocast_on_cpu_gives_nearly_the_float32_loss():
    model, _ = _model(dtype=torch.float32)
    batch = _batch()
    exact = accumulate_gradients(model, d_losses, batch)
    mixed = accumulate_gradients(model, d_losses, batch, autocast_dtype=torch.bfloat16)
    assert mixed == pytest.approx(exact, rel=5e-2)


def test_masked_language_model_loss_counts_only_masked_positions():
    config = ETransformerConfig(N_V=11, l_max=10, d_e=8, d_mlp=12, L=1, H=2)
    model, _ = _model(config)
    (x,) = _batch(B=2)
    none = torch.zeros_like(x, dtype=torch.bool)
    assert torch.equal(e_losses(model, (x, none), 10), torch.zeros(2, dtype=torch.float64))
    some = none.clone()
    some[0, 2] = True
    loss = e_losses(model, (x, some), 10)
    assert loss[0] > 0 and loss[1] == 0


def test_training_hyperparameters_are_checked():
    _, params = _model()
    data = [np.array([1, 2, 3])]
    with pytest.raises(ConfigError, match="eta"):
        ti.d_training(data, params, D, -0.1, 1)
    with pytest.raises(ConfigError, match="N_epochs"):
        ti.d_training(data, params, D, 0.1, 0)
    config = ETransformerConfig(N_V=11, l_max=10, d_e=8, d_mlp=12, L=1, H=2)
    e_params = random_parameters(config, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="rng must be a numpy.random.Generator"):
        ti.e_training(data, e_params, config, 0.1, 1, 0.2, 0, rng=torch.Generator())
    with pytest.raises(ConfigError, match="p_mask"):
        ti.e_training(data, e_params, config, 0.1, 1, 1.5, 0, np.random.default_rng(0))


@needs_cuda
def test_cuda_bf16_training_step_with_fused_adamw_runs_and_agrees_with_cpu_loss():
    cpu, params = _model(dtype=torch.float32)
    gpu = model_from_canonical(D, params, dtype=torch.float32, device="cuda")
    opt = make_adamw(gpu)
    assert opt.defaults["fused"]
    batch = _batch()
    loss = train_step(gpu, opt, d_losses, [t.cuda() for t in batch],
                      autocast_dtype=torch.bfloat16)
    assert loss == pytest.approx(accumulate_gradients(cpu, d_losses, batch), rel=5e-2)


@needs_cuda
def test_cuda_kv_cache_decoding_matches_uncached_decoding():
    model, _ = _model(dtype=torch.float32)
    model = model.cuda()
    prompt = _batch(B=2, l=3)[0].cuda()
    assert torch.equal(ti.d_inference(model, prompt, 6, greedy=True),
                       ti.d_inference(model, prompt, 6, greedy=True, use_cache=False))
