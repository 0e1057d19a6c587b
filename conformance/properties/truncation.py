"""sampling.* laws of Algorithm 60 (temperature, top-k, top-p, min-p): the kept set is exactly
the specified one, ties at the boundary included; the draws follow the renormalised truncated
distribution; the explicit no-op values truncate nothing; tau -> 0 is greedy
(spec/properties.md). The expected distribution q comes from reference_numpy.sampling on the
same logits.

Draw counts and thresholds: every check draws n = 10 x the profile's draws (20 000 in ``ci``)
per row. A token the spec keeps with n q >= 30 is missed with probability < e^-30 per token, and
the chi-square tests use significance 1e-6, so a correct sampler passes at every seed in
practice, while a sampler that drops mass m of the distribution adds about n m to the
statistic (m = 1 % gives ~200 against a 1e-6 threshold of ~40 + 2 dof).
"""

from __future__ import annotations

import numpy as np

from conformance.assertions import fail
from conformance.properties.sampling import GREEDY_TAU, check_near_greedy, chi_square, greedy_margin
from conformance.registry import check, up
from conformance.strategies import sampling_cases

DRAW_FACTOR = 10
MIN_EXPECTED = 30  # a kept token expected this many times must be drawn at least once
SIGNIFICANCE = 1e-6


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def reference_q(ctx, case, config=None) -> np.ndarray:
    """The spec's q for every row: (B, N_V), from the logits the adapter received."""
    return ctx.reference.sampling_distribution(up(case["logits"]), config or case["config"])


def draws(ctx, case, config=None) -> tuple[np.ndarray, int]:
    n = DRAW_FACTOR * ctx.profile.draws
    return ctx.adapter.sampling(case["logits"], config or case["config"], n,
                                case["sample_seed"]), n


def check_support(what: str, Y: np.ndarray, Q: np.ndarray, n: int) -> None:
    """No draw outside the support of Q; every token with n q >= MIN_EXPECTED drawn."""
    for b, (y, q) in enumerate(zip(Y, Q, strict=True)):
        counts = np.bincount(y, minlength=len(q))
        extra = np.flatnonzero((counts > 0) & (q == 0))
        if extra.size:
            fail(f"{what}, row {b}: drew token(s) {extra[:8].tolist()} that the spec drops "
                 f"({int(counts[extra].sum())} of {n} draws)",
                 expected=f"kept set {np.flatnonzero(q > 0).tolist()}",
                 observed=f"drawn {np.flatnonzero(counts > 0).tolist()}")
        lost = np.flatnonzero((counts == 0) & (n * q >= MIN_EXPECTED))
        if lost.size:
            fail(f"{what}, row {b}: never drew token(s) {lost[:8].tolist()} that the spec keeps "
                 f"(expected {np.round(n * q[lost[:8]], 1).tolist()} draws of {n})",
                 expected=f"kept set {np.flatnonzero(q > 0).tolist()}",
                 observed=f"drawn {np.flatnonzero(counts > 0).tolist()}")


def check_frequencies(ctx, what: str, Y: np.ndarray, Q: np.ndarray, n: int) -> None:
    """Each row's n draws pass a chi-square test against its q at SIGNIFICANCE."""
    for b, (y, q) in enumerate(zip(Y, Q, strict=True)):
        counts = np.bincount(y, minlength=len(q)).astype(float)
        stat, dof, p_value = chi_square(counts, q)
        ctx.observe(stat / max(dof, 1))
        if p_value < SIGNIFICANCE:
            fail(f"{what}, row {b}: {n} draws do not follow the spec's q: chi-square {stat:.4g} "
                 f"on {dof} degrees of freedom, p-value {p_value:.3g} < {SIGNIFICANCE:g}",
                 expected=str(np.round(n * q, 1).tolist()),
                 observed=str(counts.astype(int).tolist()))


@check("sampling.kept_set", ("sampling",), lambda a, c, d: sampling_cases(c, d), line=r"top-k",
       cost=2, dtypes="all")
def kept_set(ctx, case):
    """Draws stay inside the spec's K and reach every token of K with n q >= 30; with
    sampling_distribution declared, its support equals K exactly."""
    Q = reference_q(ctx, case)
    Y, n = draws(ctx, case)
    check_support(f"{case['config']}", Y, Q, n)
    if ctx.adapter.declares("sampling_distribution"):
        q_adapter = ctx.adapter.sampling_distribution(case["logits"], case["config"])
        for b in range(len(Q)):
            want, got = np.flatnonzero(Q[b] > 0), np.flatnonzero(q_adapter[b] > 0)
            if not np.array_equal(want, got):
                fail(f"{case['config']}, row {b}: sampling_distribution keeps {got.tolist()}",
                     expected=str(want.tolist()), observed=str(got.tolist()))
    ctx.observe(0.0)


@check("sampling.truncated_frequencies", ("sampling",), lambda a, c, d: sampling_cases(c, d),
       line=r"sample \$y", cost=2, dtypes="all")
def truncated_frequencies(ctx, case):
    """n draws per row pass a chi-square test against the spec's renormalised q."""
    Y, n = draws(ctx, case)
    check_frequencies(ctx, f"{case['config']}", Y, reference_q(ctx, case), n)


@check("sampling.no_truncation", ("sampling",),
       lambda a, c, d: sampling_cases(c, d, truncate=False), line=r"top-k", cost=2)
def no_truncation(ctx, case):
    """top_k = N_V, top_p = 1, min_p = 0 sample from softmax(logits / tau) itself: every token
    with n q >= 30 is drawn and the frequencies pass the chi-square test."""
    Q = _softmax(up(case["logits"]) / case["config"].tau)
    Y, n = draws(ctx, case)
    check_support(f"{case['config']} (no truncation)", Y, Q, n)
    check_frequencies(ctx, f"{case['config']} (no truncation)", Y, Q, n)


@check("sampling.greedy_limit", ("sampling",),
       lambda a, c, d: sampling_cases(c, d, taus=(GREEDY_TAU,)), line=r"sample \$y")
def sampler_greedy_limit(ctx, case):
    """At tau = GREEDY_TAU every draw is an argmax of p, whatever the truncation (p's top token
    is always kept); a tie within the margin may go either way (the gap condition)."""
    P = _softmax(up(case["logits"]))
    Y = ctx.adapter.sampling(case["logits"], case["config"], 64, case["sample_seed"])
    for y, p in zip(Y, P, strict=True):
        ctx.observe(check_near_greedy("draws at tau -> 0", y, np.repeat(p[None], len(y), 0),
                                      greedy_margin(ctx.dtype)))
