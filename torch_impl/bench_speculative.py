"""Benchmark ``speculative``: speculative decoding (Algorithm 61) against plain decoding
(Algorithm 14 with the KV cache) of the same target, on a trained pair.

The pair: a target of 4 layers at d_e = 256 (3.2M parameters) and a draft of 1 layer at
d_e = 32 (15k), each trained with ``formal-transformers train``'s recipe (training_run: AdamW,
warm-up, cosine decay) on the same order-2 Markov source to within 0.02 nats of its
entropy rate (the report carries both distances); then the draft is fine-tuned for a few
seconds on the target's own next-token distributions (``distil``), which lifts the two
argmaxes' agreement from ~0.87 to ~0.95 on held-out sequences (reported): a greedy proposal
is accepted exactly when the argmaxes agree, and where the chain's top two probabilities are
close two well-trained models break the near-tie differently. Trained once per process
(``trained_pair``): ~1.5 minutes at one thread on a quiet machine, the target's training
nearly all of it.

The regime (benchmarks/README.md, "Speculative decoding"): at batch 1 the draft's step costs
its ~15 operations' dispatch, the target's 8-12x more; the target's 12 MB of weights are
read once per call, so scoring k + 1 = 5 tokens costs 1.5-2.3 of its steps (measured; the
BLAS product of 5 rows is slower than its product of one, so not 1), and a round of k draft
steps and one verification yields 1 to k + 1 tokens.

Timed: ``PROMPTS`` prompts (2 in the quick run), each continued by ``l_gen`` tokens at
batch 1, by ``d_inference`` (the baseline) and by ``speculative_decoding`` (draft length k);
the ratio is baseline time / speculative time, the speed-up. Interleaved with both: the
target's step, its (k + 1)-token verification and the draft's step (ms), and the speed-up
those step costs predict without per-round overhead. The greedy run asserts that
speculative decoding returns exactly the target's greedy tokens and reports the acceptance
rate and tokens per round; ``speculative_sampled`` does the same at tau = 1 (equal in
distribution, not in tokens). CPU timings on a shared machine are noisy: the report carries
the load average.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from functools import lru_cache

import torch

from formal_transformers.errors import BenchmarkCheckError
from formal_transformers.hyperparameters import config_from_dict
from formal_transformers.sampling_config import SamplingConfig
from formal_transformers.sources import make_source, source_from_dict
from formal_transformers.training_backends import make_backend
from formal_transformers.training_run import initial_parameters, learning_rate, plan_run
from torch_impl.bench import BenchResult, Timing, _interleaved
from torch_impl.inference import d_inference
from torch_impl.models import DTransformer, model_from_canonical
from torch_impl.speculative import speculative_decoding
from torch_impl.training import make_adamw

PROMPT = 8  # prompt tokens
PROMPTS = 8  # prompts per timed call: one greedy path visits few of the chain's states
STEPS_PER_SAMPLE = 20  # single model steps per timing sample

# (model sizes, run settings) per role; quick: a smoke test of the same code paths
PAIR = {
    False: {"target": ({"d_e": 256, "H": 4, "L": 4, "d_mlp": 1024},
                       {"steps": 300, "batch_size": 16, "lr": 3e-3}),
            "draft": ({"d_e": 32, "H": 2, "L": 1, "d_mlp": 128},
                      {"steps": 800, "batch_size": 32, "lr": 1e-2})},
    True: {"target": ({"d_e": 32, "H": 2, "L": 2, "d_mlp": 64},
                      {"steps": 3, "batch_size": 8, "lr": 3e-3, "warmup": 1}),
           "draft": ({"d_e": 16, "H": 2, "L": 1, "d_mlp": 32},
                     {"steps": 3, "batch_size": 8, "lr": 3e-3, "warmup": 1})},
}
# the draft's fine-tuning on the target's distributions: sequences, steps, batch, peak lr
DISTILL = {False: {"sequences": 256, "steps": 300, "batch_size": 32, "lr": 3e-3},
           True: {"sequences": 8, "steps": 3, "batch_size": 4, "lr": 3e-3}}
AGREEMENT_ROWS = 128  # held-out sequences on which the argmax agreement is measured


@dataclass(frozen=True)
class TrainedPair:
    """A target and a draft trained on one source, the prompts and what training reached."""

    target: DTransformer
    draft: DTransformer
    prompts: torch.Tensor  # (P, PROMPT) token ids
    l_gen: int
    training: dict  # per role: steps, batch size, seconds, val loss, entropy rate, excess


def _trained(sizes: dict, settings: dict, source_options: dict) -> tuple[DTransformer, dict]:
    """One model trained on the markov source (seed 0: one chain, one stream of batches for
    both roles) with ``train``'s recipe (plan_run's settings, initial parameters, learning
    rate schedule, torch backend), without its checkpoints and plots, then evaluated on the
    held-out set."""
    run = plan_run("markov", model=sizes, source_options=source_options, **settings)
    source, config = source_from_dict(run.source), config_from_dict(run.model)
    backend = make_backend("torch", config, initial_parameters(config, run), run.to_dict(), {})
    start = time.perf_counter()
    for step in range(run.steps):
        backend.step(source.batch(step, run.batch_size), learning_rate(run, step))
    seconds = time.perf_counter() - start
    loss, H = source.evaluate(backend.log_probs)["val_loss"], source.chain.entropy_rate()
    model = model_from_canonical(config, backend.parameters(), dtype=torch.float32).eval()
    return model, {"steps": run.steps, "batch_size": run.batch_size, "lr": run.lr,
                   "train_seconds": round(seconds, 2), "val_loss": round(loss, 4),
                   "entropy_rate": round(H, 4), "excess_nats": round(loss - H, 4)}


def argmax_agreement(target: DTransformer, draft: DTransformer, x: torch.Tensor) -> float:
    """Fraction of positions t >= 1 of x (B, l) where the two models' argmaxes agree."""
    with torch.inference_mode():
        return float((target(x).argmax(-1) == draft(x).argmax(-1))[:, 1:].double().mean())


def distil(draft: DTransformer, target: DTransformer, source, sequences: int, steps: int,
           batch_size: int, lr: float) -> dict:
    """Fine-tune the draft in place toward the target's own next-token distributions: the
    cross-entropy of the draft's softmax against the target's on ``sequences`` fresh
    sequences of the source (soft labels; Zhou et al. 2023, DistillSpec). Greedy acceptance
    is argmax agreement with the target, which a draft trained on the source alone misses
    wherever the chain's top two probabilities are close and the two models break the
    near-tie differently. Warm-up over 10 % of the steps, then cosine decay to lr / 10."""
    start = time.perf_counter()
    x = torch.as_tensor(source.batch(20_000, sequences).x)  # (sequences, l)
    with torch.inference_mode():
        p = torch.softmax(target(x), dim=-1)  # (sequences, l, N_V)
    draft.train()
    optimizer = make_adamw(draft, lr=lr, weight_decay=0.0)
    rows = torch.Generator().manual_seed(0)
    for step in range(steps):
        warm = min(1.0, (step + 1) / max(steps // 10, 1))
        for group in optimizer.param_groups:
            group["lr"] = lr * warm * (0.55 + 0.45 * math.cos(math.pi * step / steps))
        i = torch.randint(0, sequences, (batch_size,), generator=rows)
        loss = -(p[i] * torch.log_softmax(draft(x[i]), dim=-1)).sum(-1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    draft.eval()
    return {"sequences": sequences, "steps": steps, "batch_size": batch_size, "lr": lr,
            "seconds": round(time.perf_counter() - start, 2)}


@lru_cache(maxsize=2)
def trained_pair(quick: bool) -> TrainedPair:
    """The pair of ``PAIR[quick]`` trained on one Markov source (S = 8, order 2), once."""
    length, n_prompts = (24, 2) if quick else (64, PROMPTS)
    options = {"length": length, **({"n_validation": 64} if quick else {})}
    (t_sizes, t_run), (d_sizes, d_run) = PAIR[quick]["target"], PAIR[quick]["draft"]
    target, t_report = _trained(t_sizes, t_run, options)
    draft, d_report = _trained(d_sizes, d_run, options)
    source = make_source("markov", seed=0, **options)
    held_out = torch.as_tensor(source.validation_batch().x[:AGREEMENT_ROWS])
    before = argmax_agreement(target, draft, held_out)
    distilled = distil(draft, target, source, **DISTILL[quick])
    distilled |= {"argmax_agreement_before": round(before, 4),
                  "argmax_agreement_after": round(argmax_agreement(target, draft, held_out), 4)}
    prompts = torch.as_tensor(source.batch(10_000, n_prompts).x[:, :PROMPT])  # unseen batch
    return TrainedPair(target, draft, prompts, length - PROMPT,
                       {"target": t_report, "draft": d_report, "distillation": distilled})


def rounds_report(accepted: list[list[int]], k: int, l_gen: int) -> dict:
    """Acceptance rate (accepted / proposed, kappa of Alg 61 L3 per round) and tokens per
    round (each round adds its accepted proposals and one token) over every row."""
    proposed = rounds = 0
    for A in accepted:
        done = 0
        for n in A:
            proposed, done = proposed + min(k, l_gen - done - 1), done + n + 1
        rounds += len(A)
    total = sum(map(sum, accepted))
    return {"acceptance_rate": total / max(proposed, 1), "proposed": proposed,
            "rounds": rounds, "tokens_per_round": (total + rounds) / max(rounds, 1)}


def _step(model: DTransformer, T: int, context: int):
    """STEPS_PER_SAMPLE cached forward passes of T tokens after ``context`` cached ones."""
    cache = model.new_cache(1, context + T)
    x = torch.zeros(1, T, dtype=torch.long)
    with torch.inference_mode():
        model(torch.zeros(1, context, dtype=torch.long), cache)

    @torch.inference_mode()
    def run() -> None:
        for _ in range(STEPS_PER_SAMPLE):
            cache.length = context
            model(x, cache)
    return run


def timed(pair: TrainedPair, k: int, ours, theirs, repeats: int
          ) -> tuple[Timing, Timing, dict]:
    """Both decoders, and (ms) the target's step, its (k + 1)-token verification and the
    draft's step at the middle of the generated range, all five interleaved."""
    context = PROMPT + pair.l_gen // 2
    steps = (_step(pair.target, 1, context), _step(pair.target, k + 1, context),
             _step(pair.draft, 1, context))
    t_ours, t_theirs, *t_steps = _interleaved(ours, theirs, *steps, repeats=repeats)
    t, v, d = (1e3 * tm.median / STEPS_PER_SAMPLE for tm in t_steps)
    return t_ours, t_theirs, {
        "target_step_ms": round(t, 4), "target_verify_ms": round(v, 4),
        "draft_step_ms": round(d, 4), "verify_over_step": round(v / t, 3),
        "target_over_draft_step": round(t / d, 2)}


def _details(pair: TrainedPair, k: int, accepted, steps: dict, **more) -> dict:
    n_params = {name: sum(p.numel() for p in m.parameters())
                for name, m in (("target", pair.target), ("draft", pair.draft))}
    r = rounds_report(accepted, k, pair.l_gen)
    # plain: one target step per token; speculative: a draft step per proposal and one
    # verification per round (prompt processing and per-round Python left out of both)
    predicted = len(accepted) * pair.l_gen * steps["target_step_ms"] / (
        r["proposed"] * steps["draft_step_ms"] + r["rounds"] * steps["target_verify_ms"])
    return {"k": k, "prompts": len(accepted), "l_gen": pair.l_gen, **r, **steps,
            "predicted_ratio_without_overhead": round(predicted, 3), **more,
            "parameters": n_params, "training": pair.training,
            "target": pair.target.config.to_dict(), "draft": pair.draft.config.to_dict(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def _plain(pair: TrainedPair, **kwargs) -> torch.Tensor:
    """Each prompt continued alone (batch 1, as speculative decoding runs its rows)."""
    return torch.stack([d_inference(pair.target, row, pair.l_gen, **kwargs)
                        for row in pair.prompts])


def bench_speculative(quick: bool = False, repeats: int = 3, k: int = 4) -> BenchResult:
    """Speed-up of greedy speculative decoding over plain greedy decoding of the target."""
    pair = trained_pair(quick)

    def ours() -> torch.Tensor:
        return speculative_decoding(pair.target, pair.draft, pair.prompts, pair.l_gen, k)[0]

    def theirs() -> torch.Tensor:
        return _plain(pair, greedy=True)

    same = bool(torch.equal(ours(), theirs()))
    if not same:  # property speculative.greedy_identical, on the benchmark's own pair
        raise BenchmarkCheckError("greedy speculative decoding returned other tokens than "
                                  "greedy decoding of the target: no timing is reported")
    _, accepted = speculative_decoding(pair.target, pair.draft, pair.prompts, pair.l_gen, k)
    t_ours, t_theirs, steps = timed(pair, k, ours, theirs, repeats)
    return BenchResult(
        "speculative", f"greedy speculative decoding (k={k}) vs plain greedy decoding of the "
        f"target, {len(accepted)} prompts x {pair.l_gen} new tokens after {PROMPT}, batch 1, "
        "KV caches, float32; pair trained on markov", "torch_impl d_inference (target alone)",
        t_ours, t_theirs, details=_details(pair, k, accepted, steps, same_tokens=same))


def bench_speculative_sampled(quick: bool = False, repeats: int = 3, k: int = 4
                              ) -> BenchResult:
    """The same at tau = 1: speculative sampling vs plain sampling from the target (equal in
    distribution, property speculative.target_distribution; the tokens differ)."""
    pair = trained_pair(quick)
    S, gen = SamplingConfig(), torch.Generator()

    def ours() -> torch.Tensor:
        return speculative_decoding(pair.target, pair.draft, pair.prompts, pair.l_gen, k, S,
                                    gen)[0]

    def theirs() -> torch.Tensor:
        return _plain(pair, tau=1.0, generator=gen)

    gen.manual_seed(0)
    _, accepted = speculative_decoding(pair.target, pair.draft, pair.prompts, pair.l_gen, k,
                                       S, gen)
    t_ours, t_theirs, steps = timed(pair, k, ours, theirs, repeats)
    return BenchResult(
        "speculative_sampled", f"speculative sampling (k={k}, tau=1) vs plain sampling from "
        f"the target, {len(accepted)} prompts x {pair.l_gen} new tokens after {PROMPT}, "
        "batch 1, KV caches, float32", "torch_impl d_inference (target alone)", t_ours,
        t_theirs, details=_details(pair, k, accepted, steps))
