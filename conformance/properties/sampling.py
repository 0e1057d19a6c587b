"""sampling.*: temperature to zero is greedy; samples follow softmax(log p / tau); a seed
reproduces a sample (spec/properties.md). The expected distributions come from the
reference's transformer on the same parameters.

Half of the examples of greedy_limit and frequencies have a wide vocabulary (N_V in [64, 128]),
so that a sampler that silently keeps only its top 50 tokens fails (issue 12's blind spot);
Algorithm 60's own laws are in conformance/properties/truncation.py."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from conformance.assertions import fail
from conformance.registry import check, up
from conformance.strategies import inference_cases

GREEDY_TAU = 1e-3  # the "smallest supported tau" the suite uses for the limit tau -> 0
SIGNIFICANCE = 1e-3
INFERENCE = ("d_inference", "ed_inference")
WIDE_VOCAB = (64, 128)


def wide_or_small(algorithm, constrain, dtype, **options):
    """inference_cases with the default small vocabulary or, half the time, N_V in WIDE_VOCAB."""
    wide = st.integers(*WIDE_VOCAB).flatmap(lambda N_V: inference_cases(
        constrain, dtype, algorithm, fixed={"N_V": N_V}, **options))
    return st.one_of(inference_cases(constrain, dtype, algorithm, **options), wide)


def tempered(p: np.ndarray, tau: float) -> np.ndarray:
    """q proportional to p^(1/tau) along the last axis."""
    with np.errstate(divide="ignore"):
        log_q = np.log(p) / tau
    q = np.exp(log_q - log_q.max(axis=-1, keepdims=True))
    return q / q.sum(axis=-1, keepdims=True)


def log_gap(P: np.ndarray) -> np.ndarray:
    """Best minus second-best log-probability of each row of P (n, N_V): the gap condition of
    sampling.greedy_limit holds where it exceeds the margin."""
    logp = np.sort(np.log(np.maximum(P, 1e-300)), axis=-1)
    return logp[:, -1] - logp[:, -2] if P.shape[-1] > 1 else np.full(len(P), np.inf)


def check_near_greedy(what: str, tokens: np.ndarray, P: np.ndarray, margin: float) -> float:
    """Each token is an argmax of its column of P up to ``margin`` in log-probability.

    This is the gap condition of sampling.greedy_limit: where the best token leads the second
    by more than ``margin`` in log-probability, every other token falls short by more than
    ``margin``, so only the argmax passes; a token other than the argmax passes only inside a
    near-tie (gap <= margin, exact ties included), where either choice is greedy up to rounding.
    tokens: (n,), P: (n, N_V). Returns the largest log-probability shortfall seen.
    """
    logp = np.log(np.maximum(P, 1e-300))
    short = logp.max(axis=-1) - logp[np.arange(len(tokens)), tokens]
    worst = int(np.argmax(short))
    if short[worst] > margin:
        fail(f"{what}: step {worst} chose token {tokens[worst]} (p = {P[worst, tokens[worst]]:.6g})"
             f" but the greedy token is {int(P[worst].argmax())} (p = {P[worst].max():.6g}); "
             f"log-probability shortfall {short[worst]:.3g} > {margin:.3g}",
             expected=str(P.argmax(axis=-1).tolist()), observed=str(tokens.tolist()))
    return float(short.max())


def greedy_margin(dtype: np.dtype) -> float:
    """Allowed log-probability shortfall at GREEDY_TAU: q of a token 30 tau below the best is
    below e^-30, plus the dtype's rounding of the logits."""
    return 30 * GREEDY_TAU + (1e-9 if dtype == np.float64 else 1e-3)


def reference_next(ctx, alg: str, case, prefixes: np.ndarray, z: np.ndarray | None = None
                   ) -> np.ndarray:
    """The reference's next-token distribution after each prefix row: (B, N_V)."""
    params, config = up(case["params"]), case["config"]
    if alg == "d_inference":
        return ctx.reference.d_transformer(prefixes, params, config)[:, -1]
    return ctx.reference.ed_transformer(z, prefixes, params, config)[:, -1]


def generate(ctx, alg: str, case, rows: int | None = None, tau: float | None = None,
             l_new: int | None = None):
    """Run the adapter's inference, tiling the first prompt/context to ``rows`` rows if given.

    Returns (prefixes fed to the first step (B, l), generated tokens: list of 1-D arrays, z).
    """
    d, tau = case.data, case["tau"] if tau is None else tau
    if alg == "d_inference":
        prompt = d["prompt"] if rows is None else np.repeat(d["prompt"][:1], rows, axis=0)
        l_gen = d["l_gen"] if l_new is None else l_new
        y = ctx.adapter.d_inference(prompt, d["params"], d["config"], l_gen, tau,
                                    d["sample_seed"])
        check_prefix("d_inference", y[:, :prompt.shape[1]], prompt, "the prompt")
        return prompt, [row[prompt.shape[1]:] for row in y], None
    z = d["z"] if rows is None else np.repeat(d["z"][:1], rows, axis=0)
    l_max_gen = d["l_max_gen"] if l_new is None else l_new
    y = ctx.adapter.ed_inference(z, d["params"], d["config"], tau, d["sample_seed"],
                                 d["bos_token"], d["eos_token"], l_max_gen)
    bos = np.full((len(z), 1), d["bos_token"])
    check_prefix("ed_inference", np.array([row[:1] for row in y]), bos, "the leading bos_token")
    return bos, [row[1:] for row in y], z


def check_prefix(alg: str, returned: np.ndarray, given: np.ndarray, what: str) -> None:
    """Every inference output is compared: the returned prefix must be ``given`` exactly (the
    prompt of Algorithm 14, the bos_token Algorithm 15 starts x_hat with)."""
    bad = np.argwhere(returned != given)
    if bad.size:
        b, t = (int(i) for i in bad[0])
        fail(f"{alg} returned a corrupted prefix: row {b} position {t} is {returned[b, t]}, "
             f"but {what} holds {given[b, t]} there ({len(bad)} position(s) differ)",
             expected=str(given[b].tolist()), observed=str(returned[b].tolist()))


@check("sampling.greedy_limit", INFERENCE,
       lambda a, c, d: wide_or_small(a, c, d, taus=(GREEDY_TAU,)), line=r"sim|tau")
def greedy_limit(ctx, case):
    """At tau = GREEDY_TAU the first sampled token is the argmax of the reference's p."""
    prefixes, new, z = generate(ctx, ctx.algorithm, case, l_new=1)
    P = reference_next(ctx, ctx.algorithm, case, prefixes, z)
    first = np.array([row[0] for row in new])
    margin = greedy_margin(ctx.dtype)
    near_ties = int(np.sum(log_gap(P) <= margin))  # rows outside the gap condition
    if near_ties:
        ctx.notes.append(f"{near_ties} of {len(P)} rows are near-ties (gap <= {margin:.3g})")
    ctx.observe(check_near_greedy("first token at tau -> 0", first, P, margin))


def chi_square_sf(stat: float, dof: int) -> float:
    """P(chi2_dof >= stat): the regularised upper incomplete gamma Q(dof/2, stat/2)."""
    a, x = dof / 2.0, stat / 2.0
    if x <= 0:
        return 1.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:  # series for P(a, x)
        term = total = 1.0 / a
        for n in range(1, 1000):
            term *= x / (a + n)
            total += term
            if term < total * 1e-15:
                break
        return max(0.0, 1.0 - math.exp(log_front) * total)
    b, c, d = x + 1 - a, 1e300, 1 / (x + 1 - a)  # continued fraction for Q(a, x)
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = 1 / (an * d + b if abs(an * d + b) > 1e-300 else 1e-300)
        c = b + an / c if abs(b + an / c) > 1e-300 else 1e-300
        h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return math.exp(log_front) * h


def chi_square(counts: np.ndarray, q: np.ndarray) -> tuple[float, int, float]:
    """Pearson's statistic, degrees of freedom and p-value, pooling bins expected below 5."""
    n = counts.sum()
    order = np.argsort(q)
    bins, obs, exp, acc_o, acc_e = [], [], [], 0.0, 0.0
    for i in order:
        acc_o, acc_e = acc_o + counts[i], acc_e + n * q[i]
        if acc_e >= 5:
            obs.append(acc_o)
            exp.append(acc_e)
            bins.append(i)
            acc_o = acc_e = 0.0
    if acc_e > 0 or acc_o > 0:
        if exp:
            obs[-1], exp[-1] = obs[-1] + acc_o, exp[-1] + acc_e
        else:
            obs, exp = [acc_o], [acc_e]
    o, e = np.array(obs), np.array(exp)
    stat = float(np.sum((o - e) ** 2 / np.maximum(e, 1e-300)))
    dof = max(len(o) - 1, 1)
    return stat, dof, chi_square_sf(stat, dof) if len(o) > 1 else 1.0


@check("sampling.frequencies", INFERENCE, lambda a, c, d: wide_or_small(a, c, d),
       line=r"sim|tau", cost=5)
def frequencies(ctx, case):
    """n draws of the first new token pass a chi-square test against softmax(log p / tau)."""
    n = ctx.profile.draws
    prefixes, new, z = generate(ctx, ctx.algorithm, case, rows=n, l_new=1)
    p = reference_next(ctx, ctx.algorithm, case, prefixes[:1], None if z is None else z[:1])[0]
    q = tempered(p, case["tau"])
    counts = np.bincount(np.array([row[0] for row in new]), minlength=len(q)).astype(float)
    stat, dof, p_value = chi_square(counts, q)
    ctx.observe(stat / max(dof, 1))
    if p_value < SIGNIFICANCE:
        fail(f"{n} draws at tau = {case['tau']} do not follow softmax(log p / tau): chi-square "
             f"{stat:.4g} on {dof} degrees of freedom, p-value {p_value:.3g} < {SIGNIFICANCE:g}",
             expected=str(np.round(n * q, 1).tolist()), observed=str(counts.astype(int).tolist()))


@check("sampling.seed_reproducible", INFERENCE,
       lambda a, c, d: inference_cases(c, d, a, taus=(4.0,)), line=r"sim|tau")
def seed_reproducible(ctx, case):
    """Two runs with the same seed (8 rows of the same prompt, tau = 4) are identical."""
    _, first, _ = generate(ctx, ctx.algorithm, case, rows=8)
    _, second, _ = generate(ctx, ctx.algorithm, case, rows=8)
    for b, (u, v) in enumerate(zip(first, second, strict=True)):
        if u.shape != v.shape or (u != v).any():
            fail(f"row {b}: two runs with seed {case['sample_seed']} gave different samples",
                 expected=str(u.tolist()), observed=str(v.tolist()))
