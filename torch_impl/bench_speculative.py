"""Benchmark ``speculative``: speculative decoding (Algorithm 61) against plain decoding
(Algorithm 14 with the KV cache) of the same target, on a trained pair.

A larger target and a small draft are trained briefly (AdamW) on the same Markov source, so
that the draft agrees with the target often. Then, at batch 1, the target decodes ``l_gen``
tokens greedily with ``d_inference`` (the baseline) and with ``speculative_decoding`` (draft
length k); the ratio is baseline time / speculative time, the speed-up. The run also checks
that greedy speculative decoding returns exactly the target's greedy tokens and reports the
acceptance rate. ``speculative_sampled`` does the same at tau = 1 (speculative sampling vs
plain sampling). CPU timings on a shared machine are noisy: the report carries the load
average.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from formal_transformers.canonical import init_parameters
from formal_transformers.hyperparameters import DTransformerConfig
from formal_transformers.sampling_config import SamplingConfig
from formal_transformers.sources import make_source
from torch_impl.bench import BenchResult, _interleaved
from torch_impl.inference import d_inference
from torch_impl.models import DTransformer
from torch_impl.speculative import speculative_decoding
from torch_impl.training import d_losses, make_adamw, train_step


def _trained(config: DTransformerConfig, source, steps: int, seed: int) -> DTransformer:
    model = DTransformer.from_canonical(config, init_parameters(
        config, np.random.default_rng(seed)), dtype=torch.float32)
    optimizer = make_adamw(model, lr=3e-3, weight_decay=0.0)
    for step in range(steps):
        x = torch.as_tensor(source.batch(step, 16).x)
        train_step(model, optimizer, d_losses, (x,))
    return model.eval()


def _rate(accepted: list[list[int]], k: int, l_gen: int) -> float:
    proposed = done = 0
    for n in accepted[0]:
        proposed, done = proposed + min(k, l_gen - done - 1), done + n + 1
    return sum(accepted[0]) / max(proposed, 1)


@lru_cache(maxsize=2)
def trained_pair(quick: bool):
    """(target, draft, prompt (1, 8), l_gen, steps): a pair trained on one Markov source."""
    length = 32 if quick else 64
    source = make_source("markov", seed=0, length=length)
    shared = {"N_V": source.N_V, "l_max": length}
    target_config = DTransformerConfig(**shared, d_e=64 if quick else 256, H=4,
                                       d_mlp=128 if quick else 1024, L=2 if quick else 4)
    draft_config = DTransformerConfig(**shared, d_e=32, H=2, d_mlp=64, L=1)
    steps = 3 if quick else 150
    target = _trained(target_config, source, steps, seed=1)
    draft = _trained(draft_config, source, steps, seed=2)
    prompt = torch.as_tensor(source.batch(10_000, 1).x[:, :8])  # (1, 8)
    return target, draft, prompt, length - prompt.shape[1], steps


def _details(target, draft, k: int, l_gen: int, steps: int, accepted, **more) -> dict:
    n_params = {name: sum(p.numel() for p in m.parameters())
                for name, m in (("target", target), ("draft", draft))}
    return {"k": k, "parameters": n_params, "training_steps": steps,
            "acceptance_rate": _rate(accepted, k, l_gen), **more,
            "target": target.config.to_dict(), "draft": draft.config.to_dict()}


def bench_speculative(quick: bool = False, repeats: int = 3, k: int = 4) -> BenchResult:
    """Speed-up of greedy speculative decoding over plain greedy decoding of the target."""
    target, draft, prompt, l_gen, steps = trained_pair(quick)

    def ours() -> torch.Tensor:
        return speculative_decoding(target, draft, prompt, l_gen, k)[0]

    def theirs() -> torch.Tensor:
        return d_inference(target, prompt, l_gen, greedy=True)

    same = bool(torch.equal(ours(), theirs()))
    _, accepted = speculative_decoding(target, draft, prompt, l_gen, k)
    t_ours, t_theirs = _interleaved(ours, theirs, repeats)
    return BenchResult(
        "speculative", f"greedy speculative decoding (k={k}) vs plain greedy decoding of the "
        f"target, {l_gen} new tokens after {prompt.shape[1]}, batch 1, KV caches, float32; "
        f"pair trained {steps} steps on markov", "torch_impl d_inference (target alone)",
        t_ours, t_theirs, details=_details(target, draft, k, l_gen, steps, accepted,
                                           same_tokens=same))


def bench_speculative_sampled(quick: bool = False, repeats: int = 3, k: int = 4
                              ) -> BenchResult:
    """The same at tau = 1: speculative sampling vs plain sampling from the target (equal in
    distribution, property speculative.target_distribution; the tokens differ)."""
    target, draft, prompt, l_gen, steps = trained_pair(quick)
    S, gen = SamplingConfig(), torch.Generator()

    def ours() -> torch.Tensor:
        return speculative_decoding(target, draft, prompt, l_gen, k, S, gen)[0]

    def theirs() -> torch.Tensor:
        return d_inference(target, prompt, l_gen, 1.0, gen)

    gen.manual_seed(0)
    _, accepted = speculative_decoding(target, draft, prompt, l_gen, k, S, gen)
    t_ours, t_theirs = _interleaved(ours, theirs, repeats)
    return BenchResult(
        "speculative_sampled", f"speculative sampling (k={k}, tau=1) vs plain sampling from "
        f"the target, {l_gen} new tokens after {prompt.shape[1]}, batch 1, KV caches, float32",
        "torch_impl d_inference (target alone)", t_ours, t_theirs,
        details=_details(target, draft, k, l_gen, steps, accepted))
