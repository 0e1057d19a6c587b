"""speculative.* laws of Algorithm 61: greedy speculative decoding is greedy decoding of the
target; sampled outputs follow the target's own distribution over sequences; the accepted
counts follow the algorithm's exact law (spec/properties.md).

The sampled laws use tiny models (N_V <= 3, l_gen <= 3) so that the exact distributions can be
enumerated from the reference: the target's over the N_V^l_gen continuations, and Algorithm
61's over (continuation, accepted counts) pairs, by following every proposal and acceptance
outcome with its probability. n = profile.draws / 4 rows (500 in ci) of one prompt are
decoded; the chi-square tests use the suite's significance 1e-3 at a fixed seed.
"""

from __future__ import annotations

import itertools

import numpy as np

from conformance.assertions import fail
from conformance.properties.sampling import SIGNIFICANCE, check_near_greedy, chi_square
from conformance.registry import check, up
from conformance.strategies import speculative_cases
from reference_numpy.speculative import (
    d_transformer_model,
    memoised,
    residual,
    sampling_distribution,
    speculative_decoding,
)

ROWS_DIVISOR = 4


def models(case):
    """The reference's target and draft next-token functions on the case's parameters."""
    d = case.data
    return (memoised(d_transformer_model(up(d["target_params"]), d["target_config"])),
            memoised(d_transformer_model(up(d["draft_params"]), d["draft_config"])))


def target_law(target, x: tuple[int, ...], l_gen: int, S) -> dict[tuple, float]:
    """P(y) for every continuation y of x under Algorithm 14 with the conventions S."""
    law = {}
    for y in itertools.product(range(target(np.array(x)).shape[0]), repeat=l_gen):
        P = target(np.array(x + y[:-1]))
        law[y] = float(np.prod([sampling_distribution(P[:, len(x) + t - 1], S)[y[t]]
                                for t in range(l_gen)]))
    return law


def speculative_law(target, draft, x: tuple[int, ...], remaining: int, k: int, S
                    ) -> dict[tuple, float]:
    """P((y, A)) of Algorithm 61 from prefix x with ``remaining`` tokens to go."""
    if remaining == 0:
        return {((), ()): 1.0}
    l, kappa = len(x), min(k, remaining - 1)  # Alg 61 L3
    law: dict[tuple, float] = {}
    for prop in itertools.product(range(target(np.array(x)).shape[0]), repeat=kappa):
        q = [sampling_distribution(draft(np.array(x + prop[:j]))[:, l + j - 1], S)
             for j in range(kappa)]
        weight = float(np.prod([q[j][prop[j]] for j in range(kappa)]))
        if weight == 0:
            continue
        P = target(np.array(x + prop))
        p = [sampling_distribution(P[:, l + j - 1], S) for j in range(kappa + 1)]
        a = [min(1.0, p[j][prop[j]] / q[j][prop[j]]) for j in range(kappa)]
        for n in range(kappa + 1):
            w = weight * float(np.prod(a[:n])) * ((1 - a[n]) if n < kappa else 1.0)
            t_law = residual(p[n], q[n]) if n < kappa else p[kappa]
            for t in np.flatnonzero(w * t_law > 0):
                new = prop[:n] + (int(t),)
                for (y, A), w_rest in speculative_law(target, draft, x + new,
                                                      remaining - len(new), k, S).items():
                    key = (new + y, (n,) + A)
                    law[key] = law.get(key, 0.0) + w * float(t_law[t]) * w_rest
    return law


def check_law(ctx, what: str, outcomes: list[tuple], law: dict[tuple, float]) -> None:
    """Outcomes never impossible under ``law``, and their frequencies pass chi-square."""
    cells = sorted(law)
    index = {c: i for i, c in enumerate(cells)}
    impossible = [o for o in outcomes if o not in index]
    if impossible:
        fail(f"{what}: outcome {impossible[0]} has probability 0 under the spec "
             f"({len(impossible)} of {len(outcomes)} rows)",
             expected=f"one of {len(cells)} possible outcomes", observed=str(impossible[:4]))
    counts = np.bincount([index[o] for o in outcomes], minlength=len(cells)).astype(float)
    q = np.array([law[c] for c in cells])
    stat, dof, p_value = chi_square(counts, q / q.sum())
    ctx.observe(stat / max(dof, 1))
    if p_value < SIGNIFICANCE:
        top = np.argsort(-q)[:8]
        fail(f"{what}: {len(outcomes)} rows do not follow the spec's law: chi-square {stat:.4g} "
             f"on {dof} degrees of freedom, p-value {p_value:.3g} < {SIGNIFICANCE:g}",
             expected=str({cells[i]: round(len(outcomes) * q[i], 1) for i in top}),
             observed=str({cells[i]: int(counts[i]) for i in top}))


def decode(ctx, case, rows: int | None = None, sampling="case"):
    d = case.data
    prompt = d["prompt"] if rows is None else np.repeat(d["prompt"][:1], rows, axis=0)
    return ctx.adapter.speculative_decoding(
        prompt, d["target_params"], d["target_config"], d["draft_params"], d["draft_config"],
        d["l_gen"], d["k"], d["sampling"] if sampling == "case" else sampling,
        d["sample_seed"])


@check("speculative.greedy_identical", ("speculative_decoding",),
       lambda a, c, d: speculative_cases(c, d, greedy=True), line=r"one target pass")
def greedy_identical(ctx, case):
    """Greedy speculative decoding returns the prompt and then, at every step, the target's
    argmax on the prefix so far (the gap condition of sampling.greedy_limit for near-ties)."""
    tokens, _ = decode(ctx, case)
    target, _ = models(case)
    l_x, margin = case["prompt"].shape[1], 1e-9 if ctx.dtype == np.float64 else 1e-3
    for b, row in enumerate(tokens):
        if not np.array_equal(row[:l_x], case["prompt"][b]):
            fail(f"row {b}: the returned prompt differs from the prompt",
                 expected=str(case["prompt"][b].tolist()), observed=str(row[:l_x].tolist()))
        P = target(row[:-1])[:, l_x - 1:].T  # (l_gen, N_V): the target after each prefix
        ctx.observe(check_near_greedy(f"row {b}, k = {case['k']}: greedy speculative token",
                                      row[l_x:], P, margin))


@check("speculative.target_distribution", ("speculative_decoding",),
       lambda a, c, d: speculative_cases(c, d), line=r"residual", cost=8)
def target_distribution(ctx, case):
    """n decoded continuations of one prompt follow the target's own law over sequences."""
    n = max(ctx.profile.draws // ROWS_DIVISOR, 100)
    tokens, _ = decode(ctx, case, rows=n)
    target, _ = models(case)
    x, l_gen = tuple(int(v) for v in case["prompt"][0]), case["l_gen"]
    law = target_law(target, x, l_gen, case["sampling"])
    check_law(ctx, f"k = {case['k']}, {case['sampling']}",
              [tuple(int(v) for v in row[len(x):]) for row in tokens], law)


@check("speculative.acceptance", ("speculative_decoding",),
       lambda a, c, d: speculative_cases(c, d, rollbacks=True), line=r"accept with", cost=8)
def acceptance(ctx, case):
    """The pairs (continuation, accepted counts) follow Algorithm 61's exact law; the observed
    acceptance rate is reported beside the exact one."""
    n = max(ctx.profile.draws // ROWS_DIVISOR, 100)
    tokens, accepted = decode(ctx, case, rows=n)
    target, draft = models(case)
    x, l_gen, k = tuple(int(v) for v in case["prompt"][0]), case["l_gen"], case["k"]
    law = speculative_law(target, draft, x, l_gen, k, case["sampling"])
    outcomes = [(tuple(int(v) for v in row[len(x):]), tuple(int(a) for a in A))
                for row, A in zip(tokens, accepted, strict=True)]
    rate = (f"acceptance rate {acceptance_rate(outcomes, k, l_gen):.3f} observed, "
            f"{expected_rate(law, k, l_gen):.3f} exact")
    ctx.notes.append(rate)
    check_law(ctx, f"k = {k}, {case['sampling']} ({rate})", outcomes, law)


def smallest_gap(fn):
    """fn wrapped to record the smallest best-minus-second log-probability gap it returns."""
    seen = {"gap": np.inf}

    def f(x):
        P = fn(x)
        logp = np.sort(np.log(np.maximum(P, 1e-300)), axis=0)
        seen["gap"] = min(seen["gap"], float(np.min(logp[-1] - logp[-2])))
        return P
    return f, seen


@check("speculative.greedy_counts", ("speculative_decoding",),
       lambda a, c, d: speculative_cases(c, d, greedy=True, rollbacks=True, rows=(8, 8)),
       line=r"accept with")
def greedy_counts(ctx, case):
    """Greedy accepted counts are deterministic: each of 8 prompts' counts equal the
    reference's (where neither model has a near-tie on the way)."""
    _, accepted = decode(ctx, case)
    margin = 1e-9 if ctx.dtype == np.float64 else 1e-3
    target, draft = models(case)
    d = case.data
    for b, A in enumerate(accepted):
        (t, t_gap), (q, q_gap) = smallest_gap(target), smallest_gap(draft)
        _, want = speculative_decoding(d["prompt"][b], t, q, d["l_gen"], d["k"], None,
                                       np.random.default_rng(0), d["target_config"].l_max)
        if min(t_gap["gap"], q_gap["gap"]) <= margin:
            continue  # a near-tie: either argmax is greedy (the gap condition)
        ctx.observe(0.0)
        if not np.array_equal(A, want):
            fail(f"row {b}, k = {d['k']}: greedy accepted counts differ from the reference's",
                 expected=str(want.tolist()), observed=str(np.asarray(A).tolist()))


def _proposed(A: tuple[int, ...], k: int, l_gen: int) -> int:
    """Tokens proposed along a trace: kappa of each step (Alg 61 L3)."""
    total, done = 0, 0
    for n in A:
        kappa = min(k, l_gen - done - 1)
        total, done = total + kappa, done + n + 1
    return total


def acceptance_rate(outcomes, k: int, l_gen: int) -> float:
    proposed = sum(_proposed(A, k, l_gen) for _, A in outcomes)
    return sum(sum(A) for _, A in outcomes) / max(proposed, 1)


def expected_rate(law, k: int, l_gen: int) -> float:
    proposed = sum(w * _proposed(A, k, l_gen) for (_, A), w in law.items())
    return sum(w * sum(A) for (_, A), w in law.items()) / max(proposed, 1e-300)
