"""batch.independence: row b of a batched call is what sequence b gives alone
(spec/properties.md)."""

from __future__ import annotations

import numpy as np

from conformance import calls
from conformance.assertions import assert_close, tolerance
from conformance.registry import check
from conformance.strategies import cases_for


def _stacked(data, keys, rng):
    """The case's batch followed by as many rows of fresh content (so B >= 2)."""
    out = dict(data)
    for key in keys:
        out[key] = np.concatenate([data[key], calls.fresh_like(data[key], rng,
                                                               calls.vocabulary(data))])
    return out


@check("batch.independence", tuple(calls.BATCHED), cases_for, line=r"return")
def rows_are_independent(ctx, case):
    """f(batch)[b] equals f(batch[b:b+1]) for every row b, whatever the other rows hold."""
    alg = ctx.algorithm
    keys = calls.BATCHED[alg]
    data = _stacked(case.data, keys, case.rng())
    full = calls.forward(ctx.adapter, alg, data)
    for b in range(full.shape[0]):
        alone = calls.forward(ctx.adapter, alg, data | {k: data[k][b:b + 1] for k in keys})
        assert_close(ctx, f"row {b} of a batch of {full.shape[0]} vs row {b} alone",
                     full[b:b + 1], alone, tolerance(ctx.dtype), calls.AXES[alg])
