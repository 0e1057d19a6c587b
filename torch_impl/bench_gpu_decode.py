"""GPU decode benchmark: batch-1 greedy decoding of GPT-2 124M in bf16, at the HBM limit.

Timed in the same run from the same weights, l_prompt prompt tokens and l_gen new tokens:
- torch_impl ``CUDAGraphDecoder`` (torch_impl/cuda_graph_decode.py): static KV cache, the
  one-token step captured as a CUDA graph. Its tokens must equal the eager static decoder's
  (``StaticDecoder`` without the graph: the same kernels), or the benchmark raises
  BenchmarkCheckError -- a fast decoder of wrong tokens is not a result;
- optionally ``StaticDecoder`` under ``torch.compile(mode="reduce-overhead")`` (inductor
  kernels replayed as CUDA graphs), reported with how many of its tokens agree;
- transformers ``GPT2LMHeadModel.generate`` (greedy), with its default dynamic cache and with
  ``cache_implementation="static"`` (which transformers compiles by itself on CUDA).

At batch 1 every token reads every weight once, so no decoder is faster than
(weight bytes per token) / (memory bandwidth). The bandwidth is measured in the same run by a
large device-to-device copy (bytes read + bytes written over its time), and is also taken
from the device's spec sheet (a second, labelled column); each decoder's tokens/s is reported
as a fraction of both limits.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable

import numpy as np
import torch

from formal_transformers.canonical import full_parameters, init_parameters
from formal_transformers.errors import BenchmarkCheckError
from formal_transformers.hyperparameters import DTransformerConfig
from torch_impl.bench_gpu import device_name, time_steps
from torch_impl.models import DTransformer

# HBM bandwidth from the spec sheets, bytes/s, by a substring of the CUDA device name (the
# first key found in the name wins).
SPEC_BANDWIDTH = {"H200": 4.8e12, "H100 PCIe": 2.0e12, "H100 NVL": 3.9e12, "H100": 3.35e12,
                  "A100-SXM4-80GB": 2.039e12, "A100-PCIE-80GB": 1.935e12, "A100": 1.555e12,
                  "L40S": 0.864e12, "L4": 0.3e12}
TARGET_RATIO_TRANSFORMERS = 10.0  # issue 16: >= 10x transformers' default generate
# Secondary columns: where one of these fails (a compiler error on some torch or transformers
# version), its error is reported instead of a timing and the run goes on; the CUDA-graph
# decoder, its eager check and transformers' default generate are never optional.
OPTIONAL_DECODERS = ("torch_impl_compiled", "transformers_generate_static_cache")


def spec_bandwidth(name: str) -> float | None:
    """The spec sheet's memory bandwidth (bytes/s) of a known device, else None."""
    return next((v for k, v in SPEC_BANDWIDTH.items() if k in name), None)


def copy_bandwidth(device: torch.device, n_bytes: int = 1 << 30, repeats: int = 10) -> float:
    """Bytes/s of a device-to-device copy of n_bytes: 2 n_bytes (read + write) per copy."""
    src = torch.empty(n_bytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    seconds = time_steps(lambda: dst.copy_(src), device, repeats, warmup=2) / repeats
    return 2 * n_bytes / seconds


def weight_bytes_per_token(model: DTransformer) -> int:
    """Bytes of the parameters one batch-1 step reads: all of them once, but of the
    embedding tables only one row (unless a table is also the unembedding)."""
    unique = {id(p): p for p in model.parameters()}.values()
    total = sum(p.numel() * p.element_size() for p in unique)
    lookups = [model.wpe.weight] + ([] if model.config.tied_unembedding else [model.wte.weight])
    return total - sum(t.numel() * t.element_size() for t in lookups)


def interleaved_seconds(fns: dict[str, Callable[[], object]], device: torch.device,
                        repeats: int) -> dict[str, float]:
    """Median seconds of one call of each function over ``repeats`` rounds, each round
    calling every function once in turn (so that a change of clock or load touches all)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(time_steps(fn, device, 1, warmup=0))
    return {name: statistics.median(t) for name, t in times.items()}


def agreeing_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
    """How many leading tokens two decodes (l_gen,) share."""
    differ = (a != b).nonzero()
    return int(differ[0, 0]) if len(differ) else int(a.numel())


def _transformers_pair(config: DTransformerConfig, model: DTransformer):
    """transformers' GPT2LMHeadModel holding ``model``'s weights, same dtype and device."""
    import transformers

    from torch_impl.interop.hf_gpt2 import canonical_to_gpt2

    params = full_parameters(config, model.to_canonical())  # W_u = W_e^T: HF ties them
    hf_config, state = canonical_to_gpt2(
        dataclasses.replace(config, tied_unembedding=False), params)
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    hf.load_state_dict(state, strict=False)
    w = model.lm_head.weight
    return hf.to(device=w.device, dtype=w.dtype)


def _hf_generate(hf, prompt: torch.Tensor, l_gen: int, **options) -> Callable[[], torch.Tensor]:
    """Greedy ``generate`` of l_gen tokens; the explicit all-ones attention mask keeps
    transformers from masking prompt tokens equal to the pad id."""
    real = torch.ones_like(prompt)

    def generate() -> torch.Tensor:
        with torch.inference_mode():
            out = hf.generate(prompt, attention_mask=real, max_new_tokens=l_gen,
                              min_new_tokens=l_gen, do_sample=False, pad_token_id=0,
                              **options)
        return out[0, prompt.shape[1]:]
    return generate


def bench_decode(config: DTransformerConfig, device: torch.device, l_prompt: int = 16,
                 l_gen: int = 256, repeats: int = 5, dtype: torch.dtype = torch.bfloat16,
                 compiled: bool = True, transformers: bool = True,
                 copy_bytes: int = 1 << 30) -> dict:
    """Tokens/s of the decoders above (see the module docstring), each as a fraction of the
    weight-read limit; the ratio of torch_impl's graph decode to transformers' generate."""
    from torch_impl.inference import d_inference
    from torch_impl.static_decode import StaticDecoder

    params = init_parameters(config, np.random.default_rng(0), dtype=np.float32)
    model = DTransformer.from_canonical(config, params, dtype=dtype, device=device).eval()
    prompt = torch.randint(0, config.N_V, (1, l_prompt),
                           generator=torch.Generator().manual_seed(0)).to(device)
    capacity = l_prompt + l_gen
    graph, decoders, expected = _checked_graph_decoder(model, prompt, l_gen, capacity)
    attention = None
    if compiled:
        fast = StaticDecoder(model, 1, capacity, compile={"mode": "reduce-overhead"}
                             if device.type == "cuda" else {"backend": "eager"})
        decoders["torch_impl_compiled"] = lambda: fast.generate(prompt, l_gen, greedy=True)
    if transformers:
        hf = _transformers_pair(config, model)
        attention = hf.config._attn_implementation  # transformers' default: "sdpa"
        decoders["transformers_generate"] = _hf_generate(hf, prompt, l_gen)
        decoders["transformers_generate_static_cache"] = _hf_generate(
            hf, prompt, l_gen, cache_implementation="static")
    agree, errors = _first_calls(decoders, expected)
    seconds = interleaved_seconds(decoders, device, repeats)  # each already called once
    check_graph_tokens(graph.generate(prompt, l_gen, greedy=True)[0], expected)  # still
    report = _decode_report(model, device, l_prompt, l_gen, capacity, seconds, agree,
                            copy_bandwidth(device, copy_bytes), graph.graphed)
    return report | {"failed_optional_decoders": errors, "transformers_attention": attention,
                     "d_inference_tokens_agreeing": agreeing_prefix(
                         d_inference(model, prompt, l_gen, greedy=True)[0], expected)}


def _checked_graph_decoder(model: DTransformer, prompt: torch.Tensor, l_gen: int,
                           capacity: int):
    """(the CUDA-graph decoder, the two torch_impl decoders to time, the eager tokens
    (l_gen,)), once the graph decoder's tokens are seen to equal the eager static decoder's;
    else BenchmarkCheckError."""
    from torch_impl.cuda_graph_decode import CUDAGraphDecoder
    from torch_impl.static_decode import StaticDecoder

    eager = StaticDecoder(model, 1, capacity)
    graph = CUDAGraphDecoder(model, 1, capacity)
    expected = eager.generate(prompt, l_gen, greedy=True)[0]  # (l_gen,)
    check_graph_tokens(graph.generate(prompt, l_gen, greedy=True)[0], expected)
    decoders = {"torch_impl_cuda_graph": lambda: graph.generate(prompt, l_gen, greedy=True),
                "torch_impl_eager_static": lambda: eager.generate(prompt, l_gen, greedy=True)}
    return graph, decoders, expected


def check_graph_tokens(got: torch.Tensor, expected: torch.Tensor) -> None:
    """The graph decoder's tokens (l_gen,) equal the eager static decoder's, or
    BenchmarkCheckError: the graph replays the eager step's kernels on the same inputs."""
    if not torch.equal(got, expected):
        raise BenchmarkCheckError(
            f"the CUDA-graph decoder's tokens differ from the eager static decoder's from "
            f"token {agreeing_prefix(got, expected)} of {expected.numel()} on: the graph "
            f"replays the eager step's kernels and must reproduce its tokens exactly")


def _first_calls(decoders: dict[str, Callable[[], torch.Tensor]], expected: torch.Tensor
                 ) -> tuple[dict[str, int], dict[str, str]]:
    """One untimed call of each decoder (it compiles what compiles): how many leading tokens
    each shares with ``expected``, and the errors of the optional decoders that failed (they
    are dropped from ``decoders``: reported, never timed)."""
    l_gen = expected.numel()
    agree = {"torch_impl_cuda_graph": l_gen, "torch_impl_eager_static": l_gen}  # checked
    errors = {}
    for name, fn in list(decoders.items()):
        if name in agree:
            continue
        try:
            agree[name] = agreeing_prefix(fn().reshape(-1), expected)
        except Exception as exc:
            if name not in OPTIONAL_DECODERS:
                raise
            errors[name] = f"{type(exc).__name__}: {exc}"
            del decoders[name]
    return agree, errors


def _decode_report(model: DTransformer, device: torch.device, l_prompt: int, l_gen: int,
                   capacity: int, seconds: dict[str, float], agree: dict[str, int],
                   measured_bandwidth: float, graphed: bool) -> dict:
    """The decode figures: tokens/s, fractions of the weight-read limits, ratios."""
    c, name = model.config, device_name(device)
    weights = weight_bytes_per_token(model)
    spec = spec_bandwidth(name) if device.type == "cuda" else None
    limits = {"measured_bandwidth": measured_bandwidth / weights,
              "spec_bandwidth": None if spec is None else spec / weights}  # tokens/s
    rows = {}
    for who, s in seconds.items():
        tps = l_gen / s
        rows[who] = {"seconds": s, "tokens_per_s": tps,
                     "tokens_agreeing_with_eager": agree[who],
                     **{f"fraction_of_limit_{k}": None if v is None else tps / v
                        for k, v in limits.items()}}
    ours = seconds["torch_impl_cuda_graph"]
    ratio = {f"ratio_torch_impl_vs_{who}": seconds[who] / ours
             for who in ("transformers_generate", "transformers_generate_static_cache")
             if who in seconds}
    if "torch_impl_compiled" in seconds and "transformers_generate" in seconds:
        ratio["ratio_torch_impl_compiled_vs_transformers_generate"] = (
            seconds["transformers_generate"] / seconds["torch_impl_compiled"])
    vs = ratio.get("ratio_torch_impl_vs_transformers_generate")
    kv_bytes = 2 * c.L * c.d_e * capacity * model.lm_head.weight.element_size()
    return {"device": name, "dtype": str(model.lm_head.weight.dtype), "batch": 1,
            "l_prompt": l_prompt, "l_gen": l_gen, "cuda_graph": graphed,
            "tokens_identical_graph_vs_eager": True,  # checked above, else BenchmarkCheckError
            "weight_bytes_per_token": weights,
            "kv_cache_bytes_per_token": kv_bytes,  # the whole static buffer is attended to
            "bandwidth_bytes_per_s": {"measured_copy": measured_bandwidth, "spec_sheet": spec},
            "weight_read_limit_tokens_per_s": limits, "decoders": rows, **ratio,
            "target_ratio_vs_transformers": TARGET_RATIO_TRANSFORMERS,
            "met_target_vs_transformers": None if vs is None or device.type != "cuda"
            else vs >= TARGET_RATIO_TRANSFORMERS}
