"""Benchmarks: every figure is a ratio against a baseline timed in the same run, same machine.

- ``reference``: forward + backward of a small D transformer's training loss, torch_impl
  (batched, autograd) vs reference_numpy (literal loops, hand-written backward), same batch.
- ``gpt2_forward``: logits of GPT-2-small-shaped random weights (float32, CPU) at 4 x 256
  tokens, torch_impl vs transformers' GPT2LMHeadModel, from the same weights.
- ``gpt2_decode``: greedy decoding of 64 new tokens at batch 1 with a KV cache:
  torch_impl's compiled static-shape decoder (and its eager decode loop) vs transformers'
  ``generate``; tokens per second, and each decoder's single step as a fraction of the
  float32 weight-reading floor of one step measured in the same run (``matvec_floor``).
- ``speculative``: greedy speculative decoding (Algorithm 61) vs plain greedy decoding of the
  same target, on a trained pair (the draft distilled on the target's distributions); the
  speed-up, acceptance rate and step costs (torch_impl/bench_speculative.py);
  ``speculative_sampled`` the same at tau = 1.
- on CUDA (``bench --gpu-train`` / ``--gpu-decode``; torch_impl/bench_gpu.py,
  bench_gpu_decode.py): GPT-2 124M training against nanoGPT and transformers, and batch-1
  bf16 decode with CUDA graphs against transformers, in the same run.

``ratio`` is always baseline time / torch_impl time: above 1 means torch_impl is faster.
Each timing is the median of ``repeats`` runs after a warm-up; min and max are kept so that
the spread on a shared machine is visible. ``quick=True`` shrinks every shape (smoke test).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from formal_transformers.canonical import init_parameters
from formal_transformers.errors import ConfigError
from formal_transformers.hyperparameters import DTransformerConfig
from torch_impl.inference import d_inference
from torch_impl.models import DTransformer
from torch_impl.training import d_losses


@dataclass
class Timing:
    """Seconds per run: median, min, max over the repeats."""

    median: float
    min: float
    max: float

    @classmethod
    def of(cls, times: list[float]) -> Timing:
        return cls(statistics.median(times), min(times), max(times))


@dataclass
class BenchResult:
    """One comparison: torch_impl against a baseline measured in the same run."""

    name: str
    what: str
    baseline: str
    ours: Timing
    theirs: Timing
    target: float | None = None  # the ratio the issue asks for, if any
    details: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Baseline time / torch_impl time (> 1: torch_impl is faster)."""
        return self.theirs.median / self.ours.median

    def to_json(self) -> dict:
        return asdict(self) | {"ratio": self.ratio, "met_target": (
            None if self.target is None else self.ratio >= self.target)}


def time_runs(fn: Callable[[], object], repeats: int, warmup: int = 1) -> Timing:
    """Time ``fn()`` ``repeats`` times after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return Timing.of(times)


def _interleaved(*fns: Callable[[], object], repeats: int) -> list[Timing]:
    """Time the functions round-robin, one call each per repeat after one warm-up call each,
    so that a burst of load on a shared machine hits all of them alike."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return [Timing.of(t) for t in times]


def bench_reference(quick: bool = False, repeats: int = 3) -> BenchResult:
    """Forward + backward of the D transformer's loss (Alg 13 L4-5), B sequences."""
    from reference_numpy.training import d_loss_and_grad

    c = DTransformerConfig(N_V=64, l_max=32, d_e=32, d_mlp=128, L=2, H=4)
    B, l = (2, 8) if quick else (4, 32)
    params = init_parameters(c, np.random.default_rng(0))
    x = np.random.default_rng(1).integers(0, c.N_V, (B, l))
    model = DTransformer.from_canonical(c, params)  # float64, like the reference
    X = torch.as_tensor(x)

    def ours() -> None:
        model.zero_grad(set_to_none=True)
        d_losses(model, (X,)).sum().backward()

    def theirs() -> None:
        for x_b in x:
            d_loss_and_grad(x_b, params, c)

    t_ours, t_theirs = _interleaved(ours, theirs, repeats=repeats)
    return BenchResult("reference", f"D transformer loss forward+backward, B={B}, l={l}, "
                       f"d_e={c.d_e}, L={c.L}, float64", "reference_numpy", t_ours, t_theirs,
                       details={"config": c.to_dict()})


def _gpt2_pair(quick: bool):
    """(HF GPT2LMHeadModel, our DTransformer) holding the same random float32 weights."""
    import transformers

    from torch_impl.interop.hf_gpt2 import gpt2_to_canonical

    shape = dict(n_layer=2, n_embd=128, n_head=4, vocab_size=1000) if quick else {}
    hf_config = transformers.GPT2Config(bos_token_id=None, eos_token_id=None, **shape)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    config, params = gpt2_to_canonical(hf.state_dict(), hf.config)
    return hf, DTransformer.from_canonical(config, params).eval(), config


def bench_gpt2_forward(quick: bool = False, repeats: int = 5) -> BenchResult:
    """Logits at batch 4 x 256 tokens (float32, inference mode)."""
    hf, ours_model, config = _gpt2_pair(quick)
    B, l = (2, 32) if quick else (4, 256)
    x = torch.randint(0, config.N_V, (B, l), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        err = float((ours_model(x) - hf(x).logits).abs().max())
        t_ours, t_theirs = _interleaved(lambda: ours_model(x),
                                        lambda: hf(input_ids=x, use_cache=False),
                                        repeats=repeats)
    return BenchResult("gpt2_forward", f"GPT-2 logits, {B} x {l} tokens, float32, "
                       f"{_size(hf)}", "transformers GPT2LMHeadModel", t_ours, t_theirs,
                       target=1.0, details={"max_abs_logit_difference": err})


FLOOR_LAYOUTS = ("out_in", "in_out")


def matvec_floor(model: torch.nn.Module, layout: str = "out_in") -> Callable[[], None]:
    """The float32 weight-reading floor of one batch-1 decode step, as a function to time.

    One matrix-vector product with every weight matrix of the model's linear layers (the
    fused QKV, output, MLP and unembedding matrices: each weight read once, as every decode
    step must), and nothing else: no layer norm, attention, activation or dispatch between
    them. At batch 1 these products are bound by memory bandwidth. ``layout`` is how the
    matrices lie in memory: "out_in" as nn.Linear stores them (``F.linear(x, W)``), "in_out"
    transposed (``x @ W^T`` with W^T contiguous). The BLAS reads the two at different speeds
    (on the AMD EPYC of our measurements "in_out" is ~1.35x faster at batch 1), so the floor
    a decoder is held to is the faster of the two, timed in the same run.
    """
    if layout not in FLOOR_LAYOUTS:
        raise ConfigError(f"layout must be one of {FLOOR_LAYOUTS}, got {layout!r}")
    weights = [m.weight.detach() for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if layout == "in_out":  # x (1, d_in) @ W^T (d_in, d_out)
        pairs = [(torch.randn(1, w.shape[1], dtype=w.dtype), w.t().contiguous())
                 for w in weights]
        product = torch.mm
    else:  # F.linear(x (1, d_in), W (d_out, d_in))
        pairs = [(torch.randn(1, w.shape[1], dtype=w.dtype), w) for w in weights]
        product = torch.nn.functional.linear

    @torch.inference_mode()
    def read_every_weight_once() -> None:
        for x, w in pairs:
            product(x, w)

    return read_every_weight_once


def bench_gpt2_decode(quick: bool = False, repeats: int = 3, l_gen: int = 64,
                      l_prompt: int = 16, step_repeats: int = 30) -> BenchResult:
    """Greedy decoding of l_gen tokens at batch 1 with a KV cache, and its single steps.

    torch_impl's figure is its compiled static-shape decoder (torch_impl/static_decode.py,
    torch.compile with inductor; eager in ``quick`` mode); its eager decode loop
    (torch_impl.inference.d_inference) is timed too. All three produce the same tokens
    (checked). The weight-reading floor (``matvec_floor``) is timed in both weight layouts and
    the faster one is the floor; two views of it, timed interleaved with the decoders in the
    same run:

    - per step: one decode step after ``l_prompt + l_gen / 2`` cached tokens (the middle of
      the run), against one floor pass -- the figure the floor is a bound for;
    - per call: the whole ``generate`` call, whose 16-token prefill is not a matrix-vector
      step, against ``l_gen`` floor passes.
    """
    from torch_impl.static_decode import StaticDecoder

    hf, ours_model, config = _gpt2_pair(quick)
    l_gen = 8 if quick else l_gen
    step_repeats = 3 if quick else step_repeats
    prompt = torch.randint(0, config.N_V, (1, l_prompt), generator=torch.Generator().manual_seed(0))
    decoder = StaticDecoder(ours_model, 1, l_prompt + l_gen, compile=not quick)

    def compiled() -> torch.Tensor:
        return decoder.generate(prompt, l_gen, greedy=True)

    def eager() -> torch.Tensor:
        return d_inference(ours_model, prompt, l_gen, greedy=True)

    def theirs() -> torch.Tensor:
        with torch.inference_mode():
            # an explicit mask: with pad_token_id=0 and none, generate would mask out every
            # prompt token equal to 0 (it guesses padding), and decode something else
            out = hf.generate(prompt, attention_mask=torch.ones_like(prompt),
                              max_new_tokens=l_gen, min_new_tokens=l_gen, do_sample=False,
                              use_cache=True, pad_token_id=0)
        return out[:, l_prompt:]

    t0 = time.perf_counter()
    tokens = compiled()  # compiles the step
    compile_s = time.perf_counter() - t0
    same = bool(torch.equal(tokens, theirs()) and torch.equal(tokens, eager()))
    floor_passes = [matvec_floor(ours_model, layout) for layout in FLOOR_LAYOUTS]

    def calls(floor_pass: Callable[[], None]) -> Callable[[], None]:
        def floor_calls() -> None:
            for _ in range(l_gen):
                floor_pass()
        return floor_calls

    t_compiled, t_eager, t_theirs, *floors = _interleaved(
        compiled, eager, theirs, *map(calls, floor_passes), repeats=repeats)
    steps = _single_steps(hf, ours_model, decoder, prompt, l_gen // 2)
    s_compiled, s_eager, s_theirs, *s_floors = _interleaved(*steps, *floor_passes,
                                                            repeats=step_repeats)
    # the floor is the faster layout's (the same layout for the call and the step views)
    fastest = min(range(len(FLOOR_LAYOUTS)), key=lambda i: s_floors[i].median)
    floor, s_floor = floors[fastest], s_floors[fastest]

    def per_call(t: Timing) -> float:
        return floor.median / t.median

    def per_step(t: Timing) -> float:
        return s_floor.median / t.median

    ours_name = ("StaticDecoder, torch.compile (inductor, C++ wrapper)" if not quick
                 else "StaticDecoder, eager (--quick)")
    return BenchResult("gpt2_decode", f"GPT-2 greedy decoding, {l_gen} new tokens after "
                       f"{l_prompt}, batch 1, KV cache, float32, {_size(hf)}",
                       "transformers generate", t_compiled, t_theirs,
                       details={"same_tokens": same,
                                "ours": ours_name,
                                "eager": "d_inference (eager, static KV cache)",
                                "compile_seconds": compile_s,
                                "tokens_per_s_ours": l_gen / t_compiled.median,
                                "tokens_per_s_eager": l_gen / t_eager.median,
                                "tokens_per_s_baseline": l_gen / t_theirs.median,
                                "floor_ms_per_step": s_floor.median * 1e3,
                                "floor_layout": FLOOR_LAYOUTS[fastest],
                                "floor_ms_per_step_by_layout": {
                                    layout: t.median * 1e3
                                    for layout, t in zip(FLOOR_LAYOUTS, s_floors, strict=True)},
                                "floor_tokens_per_s": 1 / s_floor.median,
                                "step_ms_ours": s_compiled.median * 1e3,
                                "step_ms_eager": s_eager.median * 1e3,
                                "step_ms_baseline": s_theirs.median * 1e3,
                                "fraction_of_floor_ours": per_step(s_compiled),
                                "fraction_of_floor_eager": per_step(s_eager),
                                "fraction_of_floor_baseline": per_step(s_theirs),
                                "fraction_of_floor_per_call_ours": per_call(t_compiled),
                                "fraction_of_floor_per_call_eager": per_call(t_eager),
                                "fraction_of_floor_per_call_baseline": per_call(t_theirs),
                                "floor_target": 0.95})


def _single_steps(hf: torch.nn.Module, model: DTransformer, decoder, prompt: torch.Tensor,
                  extra: int) -> tuple[Callable[[], object], ...]:
    """One batch-1 decode step of each decoder (compiled, eager, transformers) after the
    prompt and ``extra`` more cached tokens: each call appends one token and is then rewound,
    so every timed call does the same work."""
    with torch.inference_mode():
        context = torch.cat([prompt, prompt.new_zeros(1, extra)], dim=1)  # (1, l_cached)
        n = context.shape[1]
        token = context[:, -1:].clone()
        decoder.cache.reset()
        model.last_logits(context, decoder.cache)
        cache = model.new_cache(1, n + 1)
        model.last_logits(context, cache)
        out = hf(input_ids=context, use_cache=True)
        name = "cache" if "cache" in out else "past_key_values"  # transformers 5 renamed it
        past = out[name]
    decoder.token.copy_(token)
    decoder.pos.fill_(n)

    @torch.inference_mode()
    def compiled() -> None:
        decoder._run_step(decoder.token, decoder.pos)  # writes position n, the same each call

    @torch.inference_mode()
    def eager() -> None:
        model.last_logits(token, cache)
        cache.length = n

    @torch.inference_mode()
    def theirs() -> None:
        hf(input_ids=token, use_cache=True, **{name: past})
        past.crop(-1)  # drop the token just appended

    return compiled, eager, theirs


def _size(hf: torch.nn.Module) -> str:
    """GPT-2's own count (W_u tied to W_e); the canonical form stores both: 38.6M more."""
    return f"{sum(p.numel() for p in hf.parameters()) / 1e6:.0f}M parameters"


def run_all(names: list[str] | None = None, quick: bool = False,
            progress: Callable[[str], None] | None = None) -> list[BenchResult]:
    """Run the named CPU benchmarks (all of CPU_BENCHMARKS by default), in order."""
    from torch_impl.bench_speculative import bench_speculative, bench_speculative_sampled

    table = {"reference": bench_reference, "gpt2_forward": bench_gpt2_forward,
             "gpt2_decode": bench_gpt2_decode, "speculative": bench_speculative,
             "speculative_sampled": bench_speculative_sampled}
    results = []
    for name in names or list(CPU_BENCHMARKS):
        if progress is not None:
            progress(name)
        results.append(table[name](quick=True, repeats=1) if quick else table[name]())
    return results


CPU_BENCHMARKS = ("reference", "gpt2_forward", "gpt2_decode", "speculative",
                  "speculative_sampled")
NEEDS_TRANSFORMERS = ("gpt2_forward", "gpt2_decode")  # baselines from Hugging Face


def environment() -> dict:
    """What the figures depend on: versions, threads, CPU count, processor."""
    import os
    import platform

    try:
        import transformers
        version = transformers.__version__
    except ImportError:
        version = None

    return {"torch": torch.__version__, "transformers": version,
            "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version()}
