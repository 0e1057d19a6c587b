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


# HBM bandwidth (TB/s) of known devices, for the weight-read limit of batch-1 decoding.
HBM_TBPS = {"H200": 4.8, "H100 80GB HBM3": 3.35, "H100 PCIe": 2.0, "H100": 3.35,
            "A100-SXM4-80GB": 2.04, "A100": 1.56, "L4": 0.3}


def hbm_tbps(device_name: str) -> float | None:
    """Peak memory bandwidth of a known device, by a substring of its CUDA name."""
    for key, value in HBM_TBPS.items():
        if key in device_name:
            return value
    return None


def _timed(fn, repeats: int = 3) -> float:
    """Median seconds of fn() on the GPU after one warm-up call (synchronised)."""
    fn()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench_gpu_decode(config: DTransformerConfig, l_gen: int = 256, l_prompt: int = 16,
                     dtype: torch.dtype = torch.bfloat16, baseline: bool = True) -> dict:
    """Greedy decoding tokens/s at batch 1, in the same run: the eager static-cache loop,
    the compiled static step replayed as a CUDA graph (torch_impl/static_decode.py,
    ``mode="reduce-overhead"``), and transformers' GPT2LMHeadModel.generate from the same
    weights (``baseline``; GPT-2 configs only). Also the HBM weight-read limit: the weight
    bytes read per step / the device's peak bandwidth, and each decoder's fraction of it."""
    from torch_impl.static_decode import StaticDecoder

    device = _require_cuda()
    params = init_parameters(config, np.random.default_rng(0), dtype=np.float32)
    model = DTransformer.from_canonical(config, params, dtype=dtype, device=device).eval()
    prompt = torch.randint(0, config.N_V, (1, l_prompt), device=device)
    decoder = StaticDecoder(model, 1, l_prompt + l_gen, compile={"mode": "reduce-overhead"})
    ours = decoder.generate(prompt, l_gen, greedy=True)
    results = {"eager": _timed(lambda: d_inference(model, prompt, l_gen, greedy=True)),
               "compiled_cuda_graph": _timed(lambda: decoder.generate(prompt, l_gen,
                                                                      greedy=True))}
    same = bool(torch.equal(ours, d_inference(model, prompt, l_gen, greedy=True)))
    if baseline:
        import transformers

        from torch_impl.interop.hf_gpt2 import canonical_to_gpt2

        hf_config, state = canonical_to_gpt2(config, model.to_canonical())
        hf = transformers.GPT2LMHeadModel(hf_config).to(device=device, dtype=dtype).eval()
        hf.load_state_dict(state, strict=False)

        def theirs():
            with torch.inference_mode():
                return hf.generate(prompt, max_new_tokens=l_gen, min_new_tokens=l_gen,
                                   do_sample=False, use_cache=True, pad_token_id=0)
        results["transformers_generate"] = _timed(theirs)
    name = torch.cuda.get_device_name(device)
    weight_bytes = sum(m.weight.numel() * m.weight.element_size() for m in model.modules()
                       if isinstance(m, torch.nn.Linear))
    bandwidth = hbm_tbps(name)
    limit = None if bandwidth is None else bandwidth * 1e12 / weight_bytes  # tokens/s
    out = {"device": name, "dtype": str(dtype), "l_gen": l_gen, "same_tokens_eager": same,
           "weight_bytes_per_step": weight_bytes, "hbm_tb_per_s": bandwidth,
           "weight_read_limit_tokens_per_s": limit}
    for key, seconds in results.items():
        out[f"tokens_per_s_{key}"] = l_gen / seconds
        if limit is not None:
            out[f"fraction_of_limit_{key}"] = l_gen / seconds / limit
    if baseline:
        out["ratio_compiled_vs_transformers"] = (results["transformers_generate"]
                                                 / results["compiled_cuda_graph"])
    # the figure the target is stated in (>= 10x transformers), as in the CPU benchmarks
    out["tokens_per_s"] = out["tokens_per_s_compiled_cuda_graph"]
    return out
