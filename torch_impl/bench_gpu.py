"""GPU training benchmark: GPT-2 124M on torch_impl, nanoGPT and transformers in one run.

Every side trains the same model shape (GPT-2 124M: L = 12, H = 12, d_e = 768, biases, tied
unembedding, no dropout; vocabulary 50304 as nanoGPT's train.py pads GPT-2's 50257) on the
same random batch of B x l tokens, with the same step (``adamw_step``: bf16 autocast of the
loss, backward, fused AdamW) timed by the same harness (``time_steps``). Only the model and
its loss differ: torch_impl's DTransformer with the mean-token loss (spec: Algorithm 13,
``loss_reduction="mean"``), nanoGPT's ``GPT`` (loaded from a user's checkout by
torch_impl/bench_nanogpt.py) and transformers' ``GPT2LMHeadModel``. With ``compile`` each
side's loss function is wrapped in ``torch.compile``, the way nanoGPT's train.py compiles its
model, whose forward returns the loss.

MFU (model-FLOPs utilisation) = tokens/s x FLOPs per token / the device's peak dense bf16
FLOP/s. FLOPs per token are nanoGPT's ``estimate_mfu`` formula (PaLM, appendix B):
6 N + 12 L H d_head l, where N counts every parameter but the position embedding (a tied
W_e is counted once, as the unembedding). All three sides do the same FLOPs per token, so
their MFU ratio equals their throughput ratio.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from formal_transformers.canonical import init_parameters, parameter_count
from formal_transformers.errors import ConfigError, TrainingDivergedError
from formal_transformers.hyperparameters import DTransformerConfig

# Dense (no sparsity) bf16 tensor-core peak, FLOP/s, by a substring of the CUDA device name;
# the first key found in the name wins, so the more specific names come first.
PEAK_BF16_FLOPS = {"H100 PCIe": 756e12, "H100 NVL": 835e12, "H100": 989.4e12,
                   "H200": 989.4e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12}

TARGET_MFU = 0.45  # issue 16
TARGET_RATIO_NANOGPT = 1.12  # torch_impl tokens/s over nanoGPT's, both compiled


def peak_flops(device_name: str, override: float | None = None) -> float:
    """The peak dense bf16 FLOP/s of ``device_name`` (or ``override``, e.g. --peak-flops)."""
    if override is not None:
        if not (isinstance(override, (int, float)) and math.isfinite(override) and override > 0):
            raise ConfigError(f"--peak-flops must be a finite number > 0, got {override!r}")
        return float(override)
    for key, value in PEAK_BF16_FLOPS.items():
        if key in device_name:
            return value
    raise ConfigError(f"the peak bf16 FLOP/s of device {device_name!r} is not known (known: "
                      f"{', '.join(PEAK_BF16_FLOPS)}); pass it with --peak-flops, e.g. "
                      f"--peak-flops 989.4e12 for an H100 SXM")


def gpt2_training_config(N_V: int = 50304, l_max: int = 1024, d_e: int = 768, L: int = 12,
                         H: int = 12) -> DTransformerConfig:
    """GPT-2 124M as all three sides train it (tied unembedding, biases, tanh GELU)."""
    return DTransformerConfig(N_V=N_V, l_max=l_max, d_e=d_e, d_mlp=4 * d_e, L=L, H=H,
                              activation="gelu_tanh", tied_unembedding=True,
                              loss_reduction="mean")


def flops_per_token(config: DTransformerConfig, l: int) -> float:
    """Training FLOPs per token, 6 N + 12 L H d_head l (nanoGPT's estimate_mfu)."""
    N = parameter_count(config) - config.d_e * config.l_max  # every parameter but W_p
    if not config.tied_unembedding:
        N -= config.d_e * config.N_V  # W_e: a lookup; the separate W_u stays counted
    return 6.0 * N + 12.0 * config.L * config.d_e * l  # H d_head = d_e


def time_steps(step: Callable[[], object], device: torch.device, steps: int,
               warmup: int) -> float:
    """Seconds taken by ``steps`` calls of ``step()`` after ``warmup`` untimed calls.

    On CUDA the interval is measured by CUDA events around the queued steps (the host may
    run ahead; the end event waits for the last kernel); elsewhere by ``perf_counter``.
    """
    if steps < 1 or warmup < 0:
        raise ConfigError(f"steps must be >= 1 and warmup >= 0, got {steps} and {warmup}")
    for _ in range(warmup):
        step()
    if device.type != "cuda":
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        return time.perf_counter() - t0
    torch.cuda.synchronize(device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(steps):
        step()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3  # milliseconds -> seconds


@dataclass
class TrainingSide:
    """One implementation under the harness: its model, optimizer and batch loss."""

    name: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loss: Callable[[], torch.Tensor]  # the scalar loss of the benchmark's batch


def adamw_step(side: TrainingSide, autocast_dtype: torch.dtype | None,
               device: torch.device) -> Callable[[], torch.Tensor]:
    """The one training step every side runs: autocast loss, backward, optimizer step.

    Returns the loss tensor without reading it, so that no step waits for the device."""
    def step() -> torch.Tensor:
        side.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=autocast_dtype,
                            enabled=autocast_dtype is not None):
            loss = side.loss()
        loss.backward()
        side.optimizer.step()
        return loss.detach()
    return step


def torch_impl_side(config: DTransformerConfig, x: torch.Tensor) -> TrainingSide:
    """torch_impl's DTransformer on the batch x (B, l): the mean next-token loss."""
    from torch_impl.models import DTransformer
    from torch_impl.training import d_losses, make_adamw

    params = init_parameters(config, np.random.default_rng(0), dtype=np.float32)
    model = DTransformer.from_canonical(config, params, device=x.device).train()
    return TrainingSide("torch_impl", model, make_adamw(model, lr=6e-4),
                        lambda: d_losses(model, (x,)).mean())


def transformers_side(config: DTransformerConfig, x: torch.Tensor) -> TrainingSide:
    """transformers' GPT2LMHeadModel (SDPA attention) of the same shape; labels = inputs."""
    import transformers

    from torch_impl.training import make_adamw

    hf_config = transformers.GPT2Config(
        vocab_size=config.N_V, n_positions=config.l_max, n_embd=config.d_e,
        n_layer=config.L, n_head=config.H, activation_function="gelu_new",
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=None, attn_implementation="sdpa")
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(hf_config).to(x.device).train()
    return TrainingSide("transformers", model, make_adamw(model, lr=6e-4),
                        lambda: model(input_ids=x, labels=x, use_cache=False).loss)


def compiled(side: TrainingSide, compile: bool | dict) -> TrainingSide:
    """The side with its loss function under ``torch.compile`` (True or its keyword args)."""
    if not compile:
        return side
    options = {} if compile is True else dict(compile)
    return TrainingSide(side.name, side.model, side.optimizer,
                        torch.compile(side.loss, **options))


def measure_sides(sides: list[TrainingSide], tokens_per_step: int, device: torch.device,
                  steps: int, warmup: int, rounds: int, flops: float,
                  peak: float | None) -> dict[str, dict]:
    """Tokens/s (and MFU against ``peak``) of each side's training steps.

    Every side first runs ``warmup`` untimed steps (which also compile); then ``rounds``
    rounds each time ``steps`` steps of every side in turn, so that a change of clock or
    load during the run touches all sides alike. A side's figure is its median round."""
    step = {s.name: adamw_step(s, torch.bfloat16, device) for s in sides}
    losses: dict[str, list[torch.Tensor]] = {s.name: [] for s in sides}
    times: dict[str, list[float]] = {s.name: [] for s in sides}
    peak_memory = dict.fromkeys(step, 0)
    for s in sides:
        for _ in range(warmup):
            losses[s.name].append(step[s.name]())
    for _ in range(rounds):
        for s in sides:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            times[s.name].append(time_steps(lambda s=s: losses[s.name].append(step[s.name]()),
                                            device, steps, warmup=0))
            if device.type == "cuda":
                peak_memory[s.name] = max(peak_memory[s.name],
                                          torch.cuda.max_memory_allocated(device))
    return {s.name: _side_report(s, losses[s.name], times[s.name], tokens_per_step * steps,
                                 flops, peak, peak_memory[s.name] or None) for s in sides}


def _side_report(side: TrainingSide, losses: list[torch.Tensor], times: list[float],
                 tokens: int, flops: float, peak: float | None,
                 peak_memory: int | None) -> dict:
    """One side's figures from its losses and round times; a non-finite loss fails."""
    values = torch.stack(losses).float().cpu()
    if not bool(torch.isfinite(values).all()):
        raise TrainingDivergedError(f"{side.name}: a non-finite training loss in the "
                                    f"benchmark: {values.tolist()}")
    seconds = statistics.median(times)
    tokens_per_s = tokens / seconds
    return {"tokens_per_s": tokens_per_s, "seconds": seconds, "seconds_per_round": times,
            "tokens_per_round": tokens, "achieved_flops": tokens_per_s * flops,
            "mfu": None if peak is None else tokens_per_s * flops / peak,
            "first_loss": float(values[0]), "last_loss": float(values[-1]),
            "fused_adamw": all(bool(g.get("fused")) for g in side.optimizer.param_groups),
            "max_memory_allocated_bytes": peak_memory}


def bench_device(name: str) -> torch.device:
    """The device of a GPU benchmark: "cuda" (needs one) or "cpu" (a smoke test only)."""
    if name not in ("cuda", "cpu"):
        raise ConfigError(f"--gpu-device must be 'cuda' or 'cpu' (a smoke test), got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("the GPU benchmarks need a CUDA device; none is available (on a "
                          "machine without one, `--gpu-device cpu --quick` runs them as a "
                          "smoke test)")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """The CUDA device's name, or "cpu"."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _ratio(a: dict | None, b: dict | None) -> float | None:
    return None if a is None or b is None else a["tokens_per_s"] / b["tokens_per_s"]


def bench_training(config: DTransformerConfig, device: torch.device, batch_size: int = 16,
                   l: int = 1024, steps: int = 10, warmup: int = 5, rounds: int = 3,
                   compile: bool | dict = True, nanogpt: str | None = None,
                   peak: float | None = None, transformers: bool = True) -> dict:
    """Tokens/s and MFU of torch_impl, nanoGPT (from the checkout at ``nanogpt``; left out
    when None) and transformers (``transformers``) training on one batch of B x l tokens,
    timed in interleaved rounds (``measure_sides``); and the ratios torch_impl / nanoGPT and
    torch_impl / transformers of their tokens/s."""
    from torch_impl.bench_nanogpt import load_nanogpt, nanogpt_side

    name = device_name(device)
    peak = peak_flops(name, peak) if device.type == "cuda" or peak is not None else None
    module = load_nanogpt(nanogpt) if nanogpt is not None else None  # fail before timing
    torch.backends.cuda.matmul.allow_tf32 = True  # as nanoGPT's train.py, for every side
    torch.backends.cudnn.allow_tf32 = True
    data = torch.randint(0, config.N_V, (batch_size, l + 1),
                         generator=torch.Generator().manual_seed(0)).to(device)
    x, y = data[:, :-1].contiguous(), data[:, 1:].contiguous()  # (B, l); y: nanoGPT
    builders = {"torch_impl": lambda: torch_impl_side(config, x)}
    if module is not None:
        builders["nanoGPT"] = lambda: nanogpt_side(module, config, x, y)
    if transformers:
        builders["transformers"] = lambda: transformers_side(config, x)
    flops = flops_per_token(config, l)
    sides = [compiled(build(), compile) for build in builders.values()]
    results = measure_sides(sides, batch_size * l, device, steps, warmup, rounds, flops, peak)
    ours = results["torch_impl"]
    vs_nano = _ratio(ours, results.get("nanoGPT"))
    verdict = device.type == "cuda"  # a CPU smoke run says nothing about the targets
    return {"device": name, "batch_size": batch_size, "l": l, "steps_per_round": steps,
            "warmup": warmup, "rounds": rounds, "config": config.to_dict(),
            "compile": compile, "autocast": "bfloat16", "flops_per_token": flops,
            "flops_formula": "6 N + 12 L H d_head l (nanoGPT estimate_mfu)",
            "peak_flops": peak, "sides": results,
            "nanogpt": nanogpt, "ratio_torch_impl_vs_nanogpt": vs_nano,
            "ratio_torch_impl_vs_transformers": _ratio(ours, results.get("transformers")),
            "target_mfu": TARGET_MFU, "target_ratio_vs_nanogpt": TARGET_RATIO_NANOGPT,
            "met_target_mfu": ours["mfu"] >= TARGET_MFU if verdict else None,
            "met_target_vs_nanogpt": None if vs_nano is None or not verdict
            else vs_nano >= TARGET_RATIO_NANOGPT}


def provenance(argv: list[str], nanogpt: str | None) -> dict:
    """What a GPU report must carry: formal_transformers.provenance's run facts (date, commit,
    machine), the command (and the script that ran it), versions, device, nanoGPT's commit.

    The commit falls back to the FT_COMMIT environment variable where the tree is a copy
    without its .git (as on a lent GPU machine)."""
    import os
    from pathlib import Path

    from formal_transformers.provenance import git_commit, run_facts

    try:
        import transformers
        hf_version = transformers.__version__
    except ImportError:
        hf_version = None
    facts = run_facts()
    has_git = nanogpt is not None and (Path(nanogpt) / ".git").exists()  # not the outer tree's
    return facts | {"commit": facts["commit"] or os.environ.get("FT_COMMIT"),
                    "command": ["formal-transformers", *argv],
                    "script": os.environ.get("FT_INVOCATION"),  # set by benchmarks/gpu.sh
                    "nanogpt_commit": git_commit(Path(nanogpt)) if has_git else None,
                    "torch": torch.__version__, "cuda": torch.version.cuda,
                    "transformers": hf_version,
                    "device": device_name(torch.device("cuda")) if torch.cuda.is_available()
                    else "cpu"}
