"""torch_impl's modern primitives in bfloat16 against the float64 reference, within the
documented bound |y - y_ref| <= 2^-6 (|y_ref| + max(1, max |y_ref|)) (torch_impl/__init__.py),
and on CUDA equal to the CPU result when a GPU is present (skipped otherwise)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reference_numpy as ref
import torch_impl
from formal_transformers.rope import Rope, RopeScaling

RNG = np.random.default_rng(3)
BOUND = 2.0 ** -6


def _within_bf16_bound(got: torch.Tensor, expected: np.ndarray) -> None:
    got = got.to(torch.float64).numpy()
    scale = np.abs(expected) + max(1.0, float(np.abs(expected).max()))
    worst = float(np.max(np.abs(got - expected) / scale))
    assert worst <= BOUND, f"largest scaled error {worst:.3g} > 2^-6"


def _cases():
    X = RNG.standard_normal((2, 3, 5, 8))  # (B, H, l, d)
    p = np.array([0, 7, 8, 30, 63])
    config = Rope("interleaved", 500000.0, 0.75, RopeScaling("llama3", 8.0, 1.0, 4.0, 64))
    Xe, gamma = RNG.standard_normal((2, 5, 6)), 1 + 0.2 * RNG.standard_normal(6)
    W = {"W_gate": RNG.standard_normal((7, 6)) / 2.5, "W_up": RNG.standard_normal((7, 6)) / 2.5,
         "W_down": RNG.standard_normal((6, 7)) / 2.6}
    return X, p, config, Xe, gamma, W


def test_bfloat16_rope_rmsnorm_gated_mlp_within_the_documented_bound():
    X, p, config, Xe, gamma, W = _cases()
    def t(a):
        return torch.from_numpy(a).to(torch.bfloat16)

    expected = np.stack([np.stack([ref.rope(X[b, h].T, p, config).T for h in range(3)])
                         for b in range(2)])
    _within_bf16_bound(torch_impl.rope(t(X), torch.from_numpy(p), config), expected)
    expected = np.stack([[ref.rmsnorm(Xe[b, i], gamma, 1e-6, True) for i in range(5)]
                         for b in range(2)])
    _within_bf16_bound(torch_impl.rmsnorm(t(Xe), t(gamma), 1e-6, True), expected)
    expected = np.stack([ref.gated_mlp(Xe[b].T, **W, activation="silu").T for b in range(2)])
    _within_bf16_bound(torch_impl.gated_mlp(t(Xe), **{k: t(v) for k, v in W.items()},
                                            activation="silu"), expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu_for_the_modern_primitives():
    X, p, config, Xe, gamma, W = _cases()
    cpu = {"rope": torch_impl.rope(torch.from_numpy(X), torch.from_numpy(p), config),
           "alibi": torch_impl.alibi(torch.from_numpy(p), torch.from_numpy(p), 6, torch.float64),
           "sin": torch_impl.sinusoidal_embedding(torch.from_numpy(p), 8, dtype=torch.float64),
           "rms": torch_impl.rmsnorm(torch.from_numpy(Xe), torch.from_numpy(gamma), 1e-6),
           "glu": torch_impl.gated_mlp(torch.from_numpy(Xe),
                                       **{k: torch.from_numpy(v) for k, v in W.items()},
                                       activation="gelu_tanh")}

    def c(a):
        return torch.from_numpy(a).cuda()

    gpu = {"rope": torch_impl.rope(c(X), c(p), config),
           "alibi": torch_impl.alibi(c(p), c(p), 6, torch.float64),
           "sin": torch_impl.sinusoidal_embedding(c(p), 8, dtype=torch.float64),
           "rms": torch_impl.rmsnorm(c(Xe), c(gamma), 1e-6),
           "glu": torch_impl.gated_mlp(c(Xe), **{k: c(v) for k, v in W.items()},
                                       activation="gelu_tanh")}
    for name, value in cpu.items():
        torch.testing.assert_close(gpu[name].cpu(), value, rtol=1e-12, atol=1e-12,
                                   msg=lambda m, n=name: f"{n}: {m}")
