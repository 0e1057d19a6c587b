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


@check("batch.padding_invariance", calls.ARCHITECTURES, padded_cases,
       requires=lambda a: (a + "_padded",), dtypes="all", line=r"e_t|W_p")
def padding_is_invisible(ctx, case):
    """Right- and left-padded (the context z of the ED transformer too): each row's real
    positions equal the row alone (positions counted from its first real token), and new
    padding tokens change no real position."""
    alg, config, rng = ctx.algorithm, case["config"], case.rng(3)
    keys = calls.BATCHED[alg]  # ("x",) or ("z", "x")
    lengths = {k: _lengths(case[k].shape, rng) for k in keys}
    alone = [calls.forward(ctx.adapter, alg, case.data | {
        k: case[k][b:b + 1, :lengths[k][b]] for k in keys})[0] for b in range(len(case["x"]))]
    tol = tolerance(ctx.dtype)
    for side in ("right", "left"):
        padded = {k: pad(case[k], lengths[k], side, rng, config.N_V) for k in keys}
        P = _padded_call(ctx, alg, padded, case)
        real = padded["x"][1]
        for b in range(len(real)):
            assert_close(ctx, f"{side}-padded row {b} (real tokens {real[b].astype(int).tolist()})"
                         f" vs the sequence alone", P[b][real[b]], alone[b], tol, ("t", "v"))
        repadded = {k: (np.where(r, t, calls.fresh_like(t, rng, config.N_V)), r)
                    for k, (t, r) in padded.items()}
        Q = _padded_call(ctx, alg, repadded, case)
        assert_close(ctx, f"{side}-padded real positions after changing the padding tokens",
                     Q[real], P[real], tol, ("i", "v"))


def _lengths(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Real lengths 1..l per row, at least one row shorter than l when l >= 2."""
    B, l = shape
    lengths = rng.integers(1, l + 1, B)
    if l >= 2:
        lengths[rng.integers(B)] = rng.integers(1, l)
    return lengths


def _padded_call(ctx, alg, padded, case):
    (x, x_real), params, config = padded["x"], case["params"], case["config"]
    if alg == "ed_transformer":
        z, z_real = padded["z"]
        return ctx.adapter.ed_transformer_padded(z, x, z_real, x_real, params, config)
    return getattr(ctx.adapter, alg + "_padded")(x, x_real, params, config)
