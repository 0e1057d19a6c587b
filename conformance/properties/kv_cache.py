"""kv_cache.equivalence: decoding, with whatever cache the implementation keeps, gives at
every step what recomputing the transformer on the whole prefix gives (spec/properties.md).
Checked at tau -> 0 over several steps: each generated token must be the argmax of the
reference's distribution after the prefix generated so far (teacher forcing is exactly full
recomputation, by causality), and, when the adapter exposes its decode path (``d_decode``),
each step's distribution must be the reference's within the dtype's tolerance.

The decode path's own laws: kv_cache.chunked_prefill (the prompt fed in chunks),
kv_cache.continuation (resuming from a returned state), kv_cache.left_padding (a left-padded
batch of prompts)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from conformance.assertions import assert_close, fail, tolerance
from conformance.properties.sampling import (
    GREEDY_TAU,
    INFERENCE,
    check_near_greedy,
    generate,
    greedy_margin,
)
from conformance.registry import check, up
from conformance.strategies import (
    LONG,
    SCALES,
    SEEDS,
    Case,
    config_fields,
    inference_cases,
    model_parameters,
)
from formal_transformers.hyperparameters import DTransformerConfig


def _check_stop(row: np.ndarray, eos: int, l_max_gen: int, b: int) -> None:
    """Alg 15's stop rule: eos ends a row; a row without eos has l_max_gen new tokens."""
    hits = np.flatnonzero(row == eos)
    if hits.size and hits[0] != len(row) - 1:
        fail(f"row {b} continues after eos_token {eos} at step {hits[0]}",
             expected="the row ends at eos", observed=str(row.tolist()))
    if not hits.size and len(row) != l_max_gen:
        fail(f"row {b} stops after {len(row)} tokens without eos_token (l_max_gen {l_max_gen})",
             expected=f"{l_max_gen} tokens", observed=str(row.tolist()))


def one_token_prompts(alg: str, dtype) -> list[Case]:
    """Pinned for d_inference: one-token prompts and seven greedy steps, where each step's
    own key and value weigh most in its attention (a cache that hands a new token only the
    earlier ones -- mutant CacheMissesNewest -- once passed a ci run's draws)."""
    if alg != "d_inference":
        return []
    config = DTransformerConfig(N_V=5, l_max=8, d_e=4, d_mlp=4, L=2, H=2, activation="gelu")
    rng = np.random.default_rng(0)
    data = {"config": config, "params": model_parameters(config, rng, 3.0, dtype),
            "prompt": rng.integers(0, config.N_V, (2, 1)), "l_gen": 7, "tau": GREEDY_TAU,
            "sample_seed": 0}
    return [Case(alg, {"B": 2, "l": 1, "l_gen": 7}, 0, data)]


@check("kv_cache.equivalence", INFERENCE,
       lambda a, c, d: inference_cases(c, d, a, taus=(GREEDY_TAU,)), line=r"for|while",
       pinned=one_token_prompts)
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
    if ctx.algorithm == "d_inference" and ctx.adapter.declares("d_decode"):
        check_distributions(ctx, case)
    if ctx.algorithm == "ed_inference" and ctx.adapter.declares("ed_decode"):
        check_ed_distributions(ctx, case)


# -- the decode path (adapters declaring d_decode): distributions, chunks, resuming, padding --

@st.composite
def decode_cases(draw, alg, constrain, dtype):
    """Greedy D-inference cases with prompts of 2 to 10 tokens (to chunk or pad: a chunk
    after a filled cache needs 4 or more) and 2 to 4 new tokens; half of them in the long
    regime of conformance.strategies (prompts of LONG[0] - 1 tokens or more)."""
    long = draw(st.booleans())

    def shapes(draw, fields):  # seen by constrain with the config fields
        low = min(LONG[0] - 1, fields["l_max"] - 2) if long else 2
        l = draw(st.integers(low, max(low, fields["l_max"] - 2)))
        return {"B": draw(st.integers(1, 3)), "l": l,
                "l_gen": draw(st.integers(2, min(4, fields["l_max"] - l + 1)))}

    config, sizes = draw(config_fields(constrain, "d_transformer",
                                       (LONG[0] + 2, LONG[1] + 2) if long else (6, 12),
                                       shapes=shapes))
    seed = draw(SEEDS)
    rng = np.random.default_rng(seed)
    l = min(sizes["l"], config.l_max - 1)
    data = {"config": config, "params": model_parameters(config, rng, draw(SCALES), dtype),
            "prompt": rng.integers(0, config.N_V, (sizes["B"], l)), "tau": GREEDY_TAU,
            "l_gen": max(1, min(sizes["l_gen"], config.l_max - l + 1))}
    return Case(alg, sizes | {"l": l}, seed, data)


def near_tie(log_p: np.ndarray, margin: float) -> bool:
    """The two most likely tokens are within ``margin`` in log-probability: either may be
    the greedy choice of a correct implementation in finite precision."""
    top = np.sort(log_p)[-2:]
    return len(top) == 2 and top[1] - top[0] <= margin


def compare_decodes(ctx, what: str, observed, expected) -> None:
    """Two greedy decodes of the same sequences: every step's distribution agrees within the
    dtype's tolerance and the tokens are equal, up to a near tie (after which the prefixes
    differ and the row is not compared further)."""
    (y_a, lp_a), (y_b, lp_b) = observed, expected
    tol, margin = tolerance(ctx.dtype), greedy_margin(ctx.dtype)
    for b in range(y_a.shape[0]):
        for i in range(y_a.shape[1]):
            assert_close(ctx, f"{what}: row {b}, step {i}, next-token distribution",
                         np.exp(lp_a[b, i].astype(np.float64)),
                         np.exp(lp_b[b, i].astype(np.float64)), tol, ("v",))
            if y_a[b, i] != y_b[b, i]:
                if not near_tie(lp_b[b, i].astype(np.float64), margin):
                    fail(f"{what}: row {b}, step {i} chose token {y_a[b, i]} where the other "
                         f"decode chose {y_b[b, i]}, and the two are no near tie",
                         expected=str(y_b[b].tolist()), observed=str(y_a[b].tolist()))
                if i + 1 < y_a.shape[1]:
                    ctx.notes.append(f"a near tie at step {i} chose another token: the later "
                                     "steps of that row were not compared")
                break


def decode(ctx, case, prompt=None, l_gen=None, **options):
    """(tokens, log_probs, state) of the adapter's d_decode on the case (or on ``prompt``)."""
    d = case.data
    return ctx.adapter.d_decode(d["prompt"] if prompt is None else prompt, d["params"],
                                d["config"], d["l_gen"] if l_gen is None else l_gen, **options)


def check_distributions(ctx, case) -> None:
    """kv_cache.equivalence with per-step distributions: each step's distribution is the
    reference's on the prefix so far (teacher forcing on the adapter's own tokens), and each
    token is its argmax up to the greedy margin."""
    tokens, log_p, _ = decode(ctx, case)
    params, config, margin = up(case["params"]), case["config"], greedy_margin(ctx.dtype)
    prompt = case["prompt"]
    seq = np.concatenate([prompt, tokens], axis=1)[:, :-1]
    P = ctx.reference.d_transformer(seq, params, config)[:, prompt.shape[1] - 1:]
    assert_close(ctx, "d_decode's per-step distributions vs the reference's recomputation",
                 np.exp(log_p.astype(np.float64)), P, tolerance(ctx.dtype), ("b", "step", "v"))
    for b in range(len(tokens)):
        check_near_greedy(f"d_decode row {b}", tokens[b], np.exp(log_p[b].astype(np.float64)),
                          margin)


def check_ed_distributions(ctx, case) -> None:
    """kv_cache.equivalence for Algorithm 15 through ``ed_decode``: every step's distribution
    is the reference's recomputation on bos_token and the tokens so far."""
    z, bos, l_gen = case["z"], case["bos_token"], case["l_max_gen"]
    tokens, log_p = ctx.adapter.ed_decode(z, case["params"], case["config"], l_gen, bos)
    seq = np.concatenate([np.full((len(z), 1), bos), tokens[:, :-1]], axis=1)
    P = ctx.reference.ed_transformer(z, seq, up(case["params"]), case["config"])
    assert_close(ctx, "ed_decode's per-step distributions vs the reference's recomputation",
                 np.exp(log_p.astype(np.float64)), P, tolerance(ctx.dtype), ("b", "step", "v"))
    for b in range(len(tokens)):
        check_near_greedy(f"ed_decode row {b}", tokens[b], np.exp(log_p[b].astype(np.float64)),
                          greedy_margin(ctx.dtype))


@check("kv_cache.chunked_prefill", ("d_inference",), decode_cases, requires=("d_decode",),
       dtypes="all", line=r"for")
def chunked_prefill(ctx, case):
    """Feeding the prompt to the cache in chunks of c tokens decodes like one prefill."""
    l = case["prompt"].shape[1]
    c = int(case.rng(4).integers(2, l - 1)) if l >= 4 else 1  # some chunk follows a cache
    whole = decode(ctx, case)[:2]
    compare_decodes(ctx, f"prompt prefilled in chunks of {c} vs at once",
                    decode(ctx, case, chunk=c)[:2], whole)


@check("kv_cache.continuation", ("d_inference",), decode_cases, requires=("d_decode",),
       dtypes="all", line=r"for")
def continuation(ctx, case):
    """Decoding n tokens, then continuing from the returned state for the rest, gives what
    one decode of all the tokens gives."""
    l_gen = case["l_gen"]
    n = int(case.rng(5).integers(1, l_gen))
    y1, lp1, state = decode(ctx, case, l_gen=n)
    y2, lp2, _ = ctx.adapter.d_decode(None, case["params"], case["config"], l_gen - n,
                                      state=state)
    compare_decodes(ctx, f"{n} tokens, then {l_gen - n} more from the returned state, vs "
                         f"{l_gen} at once",
                    (np.concatenate([y1, y2], 1), np.concatenate([lp1, lp2], 1)),
                    decode(ctx, case)[:2])


@check("kv_cache.left_padding", ("d_inference",), decode_cases, requires=("d_decode",),
       dtypes="all", line=r"for")
def left_padding(ctx, case):
    """A left-padded batch of prompts decodes, row by row, like each prompt alone."""
    prompt, rng = case["prompt"], case.rng(6)
    B, l = prompt.shape
    lengths = rng.integers(1, l + 1, B)
    lengths[rng.integers(B)] = rng.integers(1, l)  # some row is padded
    real = np.arange(l)[None, :] >= (l - lengths)[:, None]
    padded = np.where(real, prompt, rng.integers(0, case["config"].N_V, prompt.shape))
    y, lp, _ = decode(ctx, case, prompt=padded, real=real)
    for b in range(B):
        alone = decode(ctx, case, prompt=prompt[b:b + 1, l - lengths[b]:])[:2]
        compare_decodes(ctx, f"left-padded row {b} ({lengths[b]} real tokens of {l}) vs the "
                             "prompt alone", (y[b:b + 1], lp[b:b + 1]), alone)


def ed_decode_cases(alg, constrain, dtype):
    """Greedy ED-inference cases (short and long contexts) for the padded-context law."""
    return inference_cases(constrain, dtype, "ed_inference", taus=(GREEDY_TAU,))


ED_PADDED_STEPS = 6  # decode steps compared: every one reads the padded context


@check("kv_cache.left_padding", ("ed_inference",), ed_decode_cases, requires=("ed_decode",),
       dtypes="all", line=r"while")
def left_padded_contexts(ctx, case):
    """A batch of left-padded contexts decodes, row by row, like each context alone: every
    step's distribution and greedy token of the padded batch (``ed_decode`` with ``z_real``)
    equal those of the row's real context tokens."""
    z, config, rng = case["z"], case["config"], case.rng(6)
    B, l_z = z.shape
    extra = int(rng.integers(min(1, config.l_max - l_z), config.l_max - l_z + 1))
    lengths = rng.integers(1, l_z + 1, B)
    if extra == 0:  # no room to widen the batch: some row loses tokens to padding instead
        lengths[rng.integers(B)] = rng.integers(1, l_z)
    width = l_z + extra
    real = np.arange(width)[None, :] >= (width - lengths)[:, None]
    padded = rng.integers(0, config.N_V, (B, width))
    for b, n in enumerate(lengths):
        padded[b, width - n:] = z[b, :n]
    l_gen, bos, params = min(ED_PADDED_STEPS, case["l_max_gen"]), case["bos_token"], case["params"]
    y, lp = ctx.adapter.ed_decode(padded, params, config, l_gen, bos, z_real=real)
    for b, n in enumerate(lengths):
        alone = ctx.adapter.ed_decode(z[b:b + 1, :n], params, config, l_gen, bos)
        compare_decodes(ctx, f"left-padded context row {b} ({n} real tokens of {width}) vs "
                             "the context alone", (y[b:b + 1], lp[b:b + 1]), alone)
