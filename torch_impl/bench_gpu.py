"""GPU benchmarks (CUDA only): training throughput with model-FLOPs utilisation, and decoding.

Training runs the D transformer's loss (spec: Algorithm 13, batched) under bf16 autocast with
fused AdamW, optionally ``torch.compile``; MFU = achieved model FLOP/s / the device's peak
dense bf16 FLOP/s. Model FLOPs per token follow the PaLM appendix: 6 N (N = non-embedding
parameters plus the unembedding) + 12 L d_e l for attention scores and mixing (forward and
backward). Nothing here can run without a CUDA device: it raises ConfigError instead.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from formal_transformers.canonical import init_parameters, parameter_count
from formal_transformers.errors import ConfigError
from formal_transformers.hyperparameters import DTransformerConfig
from torch_impl.inference import d_inference
from torch_impl.models import DTransformer
from torch_impl.training import d_losses, make_adamw, train_step

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0,
                    "A10": 125.0, "RTX 4090": 165.0}


def peak_tflops(device_name: str) -> float | None:
    """Dense bf16 peak of a known device, by a substring of its CUDA name."""
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in device_name:
            return value
    return None


def flops_per_token(config: DTransformerConfig, l: int) -> float:
    """Training FLOPs per token: 6 N + 12 L d_e l (forward + backward)."""
    N = parameter_count(config) - config.d_e * (config.N_V + config.l_max)  # minus W_e, W_p
    return 6.0 * N + 12.0 * config.L * config.d_e * l


def _require_cuda() -> torch.device:
    if not torch.cuda.is_available():
        raise ConfigError("the GPU benchmarks need a CUDA device; none is available")
    return torch.device("cuda")


def bench_gpu_training(config: DTransformerConfig, batch_size: int = 8, l: int = 1024,
                       steps: int = 20, warmup: int = 5, compile: bool = False,
                       peak: float | None = None) -> dict:
    """Tokens/s and MFU of AdamW training steps on random tokens (bf16 autocast)."""
    device = _require_cuda()
    torch.backends.cuda.matmul.allow_tf32 = True
    params = init_parameters(config, np.random.default_rng(0), dtype=np.float32)
    model = DTransformer.from_canonical(config, params, device=device)
    step_model = torch.compile(model) if compile else model
    opt = make_adamw(model, lr=6e-4)  # fused on CUDA
    x = torch.randint(0, config.N_V, (batch_size, l), device=device)
    for _ in range(warmup):
        train_step(step_model, opt, d_losses, (x,), autocast_dtype=torch.bfloat16)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = train_step(step_model, opt, d_losses, (x,), autocast_dtype=torch.bfloat16)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    tokens_per_s = batch_size * l * steps / seconds
    name = torch.cuda.get_device_name(device)
    peak = peak or peak_tflops(name)
    achieved = tokens_per_s * flops_per_token(config, l)
    return {"device": name, "compile": compile, "batch_size": batch_size, "l": l,
            "steps": steps, "tokens_per_s": tokens_per_s, "achieved_tflops": achieved / 1e12,
            "peak_tflops": peak, "mfu": None if peak is None else achieved / (peak * 1e12),
            "last_loss": loss}


def bench_gpu_decode(config: DTransformerConfig, l_gen: int = 256, l_prompt: int = 16,
                     dtype: torch.dtype = torch.bfloat16) -> dict:
    """Greedy decoding tokens/s at batch 1 with the static KV cache."""
    device = _require_cuda()
    params = init_parameters(config, np.random.default_rng(0), dtype=np.float32)
    model = DTransformer.from_canonical(config, params, dtype=dtype, device=device).eval()
    prompt = torch.randint(0, config.N_V, (1, l_prompt), device=device)
    d_inference(model, prompt, 8, greedy=True)  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    d_inference(model, prompt, l_gen, greedy=True)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {"device": torch.cuda.get_device_name(device), "dtype": str(dtype),
            "l_gen": l_gen, "tokens_per_s": l_gen / seconds}
