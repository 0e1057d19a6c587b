"""kv_cache.equivalence: decoding, with whatever cache the implementation keeps, gives at
every step what recomputing the transformer on the whole prefix gives (spec/properties.md).
Checked at tau -> 0 over several steps: each generated token must be the argmax of the
reference's distribution after the prefix generated so far (teacher forcing is exactly full
recomputation, by causality)."""

from __future__ import annotations

import numpy as np

from conformance.assertions import fail
from conformance.properties.sampling import (
    GREEDY_TAU,
    INFERENCE,
    check_near_greedy,
    generate,
    greedy_margin,
)
from conformance.registry import check, up
from conformance.strategies import inference_cases


def _check_stop(row: np.ndarray, eos: int, l_max_gen: int, b: int) -> None:
    """Alg 15's stop rule: eos ends a row; a row without eos has l_max_gen new tokens."""
    hits = np.flatnonzero(row == eos)
    if hits.size and hits[0] != len(row) - 1:
        fail(f"row {b} continues after eos_token {eos} at step {hits[0]}",
             expected="the row ends at eos", observed=str(row.tolist()))
    if not hits.size and len(row) != l_max_gen:
        fail(f"row {b} stops after {len(row)} tokens without eos_token (l_max_gen {l_max_gen})",
             expected=f"{l_max_gen} tokens", observed=str(row.tolist()))


@check("kv_cache.equivalence", INFERENCE,
       lambda a, c, d: inference_cases(c, d, a, taus=(GREEDY_TAU,)), line=r"for|while")
def cached_decoding_equals_recomputation(ctx, case):
    """Every step's token is the greedy token of the full recomputation on its prefix."""
    prefixes, new, z = generate(ctx, ctx.algorithm, case)
    params, config, margin = up(case["params"]), case["config"], greedy_margin(ctx.dtype)
    worst = 0.0
    for b, tokens in enumerate(new):
        seq = np.concatenate([prefixes[b], tokens])[None, :-1]  # every prefix, at once
        if ctx.algorithm == "d_inference":
            P = ctx.reference.d_transformer(seq, params, config)[0]
        else:
            _check_stop(tokens, case["eos_token"], case["l_max_gen"], b)
            P = ctx.reference.ed_transformer(z[b:b + 1], seq, params, config)[0]
        steps = P[prefixes.shape[1] - 1:]  # column t predicts token t + 1
        worst = max(worst, check_near_greedy(f"row {b} (prefix {prefixes[b].tolist()})",
                                             tokens, steps, margin))
    ctx.observe(worst)
