"""batch.independence: row b of a batched call is what sequence b gives alone;
batch.padding_invariance: in a right- or left-padded batch the real positions of row b are what
its real tokens give alone, whatever the padding holds (spec/properties.md)."""

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


def pad(x: np.ndarray, lengths: np.ndarray, side: str, rng: np.random.Generator, N_V: int
        ) -> tuple[np.ndarray, np.ndarray]:
    """Row b's first ``lengths[b]`` tokens, padded to x's length on ``side`` with random
    tokens: (padded x (B, l), real (B, l) bool)."""
    B, l = x.shape
    padded, real = rng.integers(0, N_V, (B, l)), np.zeros((B, l), dtype=bool)
    for b, n in enumerate(lengths):
        cols = slice(0, n) if side == "right" else slice(l - n, l)
        padded[b, cols], real[b, cols] = x[b, :n], True
    return padded, real


def padded_cases(alg, constrain, dtype):
    """Architecture cases with at least two tokens, so that some row can be padded."""
    return cases_for(alg, constrain, dtype, min_len=2)


@check("batch.padding_invariance", ("d_transformer", "e_transformer"), padded_cases,
       requires=lambda a: (a + "_padded",), dtypes="all", line=r"e_t|W_p")
def padding_is_invisible(ctx, case):
    """Right- and left-padded: each row's real positions equal the row alone (positions
    counted from its first real token), and new padding tokens change no real position."""
    alg, x, config = ctx.algorithm, case["x"], case["config"]
    padded_call = getattr(ctx.adapter, alg + "_padded")
    rng = case.rng(3)
    B, l = x.shape
    lengths = rng.integers(1, l + 1, B)
    lengths[rng.integers(B)] = rng.integers(1, l)  # some row is padded
    alone = [calls.forward(ctx.adapter, alg, case.data | {"x": x[b:b + 1, :n]})[0]
             for b, n in enumerate(lengths)]
    tol = tolerance(ctx.dtype)
    for side in ("right", "left"):
        xp, real = pad(x, lengths, side, rng, config.N_V)
        P = padded_call(xp, real, case["params"], config)
        for b in range(B):
            assert_close(ctx, f"{side}-padded row {b} (real tokens {real[b].astype(int).tolist()})"
                         f" vs the sequence alone", P[b][real[b]], alone[b], tol, ("t", "v"))
        repadded = np.where(real, xp, calls.fresh_like(xp, rng, config.N_V))
        Q = padded_call(repadded, real, case["params"], config)
        assert_close(ctx, f"{side}-padded real positions after changing the padding tokens",
                     Q[real], P[real], tol, ("i", "v"))
