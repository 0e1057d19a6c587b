"""training.step_agreement: one epoch of each training algorithm over a small batch, from the
same parameters, masking decisions and learning rate, gives the reference's losses and
updated parameters; training.padding_invariance: an epoch over a padded batch is the epoch
over its real sequences (spec/properties.md)."""

from __future__ import annotations

import numpy as np

from conformance.assertions import (
    Tolerance,
    assert_close,
    gradient_tolerance,
    tolerance,
    unit_roundoff,
)
from conformance.registry import check, up
from conformance.strategies import training_cases


def train(bound, alg, d):
    """(loss, updated params) of ``alg`` through an adapter."""
    if alg == "d_training":
        return bound.d_training(d["x"], d["params"], d["config"], d["eta"])
    if alg == "e_training":
        return bound.e_training(d["x"], d["masked"], d["params"], d["config"], d["eta"],
                                d["mask_token"])
    return bound.ed_training(d["z"], d["x"], d["params"], d["config"], d["eta"])


@check("training.step_agreement", ("ed_training", "e_training", "d_training"),
       lambda a, c, d: training_cases(c, d, a), dtypes="all", line=r"\\eta", cost=2)
def step_agreement(ctx, case):
    """Same loss, same updated parameters, and so the same implied gradient (theta - theta')/eta
    as reference_numpy.training."""
    assert_step_agrees(ctx, ctx.algorithm, case)


def assert_step_agrees(ctx, alg: str, case) -> None:
    """The law of ``step_agreement`` for the training algorithm ``alg`` (also run on the
    modern decoder's backward, Algorithm 66, through d_training)."""
    loss, new = train(ctx.adapter, alg, case.data)
    ref_loss, ref_new = train(ctx.reference, alg, up(case.data))
    assert_close(ctx, "loss (sum over the steps, each before its update)", loss, ref_loss,
                 tolerance(ctx.dtype, "gradient"))
    eta, old = case["eta"], up(case["params"])
    implied_ref = {k: (old[k] - v) / eta for k, v in ref_new.items()}
    grad_tol = implied_tolerance(ctx.dtype, old, eta, implied_ref)
    fwd = tolerance(ctx.dtype)  # theta' may differ by eta times the gradient's own tolerance
    new_tol = Tolerance(fwd.rtol, fwd.atol + eta * grad_tol.atol)
    for name, value in ref_new.items():
        assert_close(ctx, f"updated {name}", new[name], value, new_tol)
        implied = (old[name] - new[name].astype(np.float64)) / eta
        assert_close(ctx, f"implied gradient (theta - theta')/eta of {name}", implied,
                     implied_ref[name], grad_tol)


def implied_tolerance(dtype, params, eta, expected) -> Tolerance:
    """The gradient tolerance of ``expected`` (conformance.assertions.gradient_tolerance),
    widened by the rounding of theta' in ``dtype`` divided by eta."""
    big = max(float(np.max(np.abs(v), initial=0.0)) for v in params.values())
    return gradient_tolerance(dtype, expected, 8 * unit_roundoff(dtype) * big / eta)


def implied_gradient(ctx, alg, data):
    """(loss, (theta - theta') / eta) of one training step on a single sequence (B = 1)."""
    loss, new = train(ctx.adapter, alg, data)
    old, eta = up(data["params"]), data["eta"]
    return loss, {k: (old[k] - new[k].astype(np.float64)) / eta for k in old}


def single_sequence(alg, constrain, dtype):
    """Training cases cut to their first sequence: one step is one gradient."""
    def first(case):
        for key in ("x", "z", "masked"):
            if key in case.data:
                case.data[key] = case.data[key][:1]
        case.sizes["B"] = 1
        return case
    return training_cases(constrain, dtype, alg).map(first)


@check("training.padding_invariance", ("ed_training", "e_training", "d_training"),
       lambda a, c, d: training_cases(c, d, a), requires=lambda a: (a + "_padded",),
       dtypes="all", line=r"\\log P", cost=2)
def padded_training(ctx, case):
    """One epoch over a right- or left-padded batch (the ED transformer's context too) is the
    epoch over the real sequences, one step each, in order: the same summed loss and the same
    parameters, whatever the padding tokens -- and, for Algorithm 12, the masking decisions at
    padded positions -- are."""
    from conformance.properties.batch import _lengths, pad

    alg, config, rng = ctx.algorithm, case["config"], case.rng(9)
    keys = ("z", "x") if alg == "ed_training" else ("x",)
    lengths = {k: _lengths(case[k].shape, rng) for k in keys}
    data = dict(case.data)
    if alg == "e_training":  # every real part predicts at least one token
        masked = data["masked"].copy()
        for b, n in enumerate(lengths["x"]):
            masked[b, 0] |= not masked[b, :n].any()
        data["masked"] = masked
    rows = keys + (("masked",) if alg == "e_training" else ())
    loss, theta = 0.0, data["params"]
    for b in range(len(data["x"])):  # the epoch on the real sequences alone, row by row
        n = {k: lengths["z" if k == "z" else "x"][b] for k in rows}
        step_loss, theta = train(ctx.adapter, alg, data | {"params": theta} | {
            k: data[k][b:b + 1, :n[k]] for k in rows})
        loss += step_loss
    for side in ("right", "left"):
        padded = {k: pad(data[k], lengths[k], side, rng, config.N_V) for k in keys}
        got_loss, got = _padded_epoch(ctx.adapter, alg, data, padded, rng)
        assert_close(ctx, f"{side}-padded epoch's loss vs the real sequences'", got_loss, loss,
                     tolerance(ctx.dtype, "gradient"))
        for name, value in theta.items():
            assert_close(ctx, f"{side}-padded epoch's updated {name} vs the real sequences'",
                         got[name], value, tolerance(ctx.dtype))


def _padded_epoch(bound, alg, data, padded, rng):
    """(loss, params) of ``<alg>_padded`` on the padded batch; Algorithm 12's masking
    decisions are the rows' at their real positions and random at the padded ones."""
    (x, real), params, config, eta = padded["x"], data["params"], data["config"], data["eta"]
    if alg == "d_training":
        return bound.d_training_padded(x, real, params, config, eta)
    if alg == "ed_training":
        z, z_real = padded["z"]
        return bound.ed_training_padded(z, x, z_real, real, params, config, eta)
    masked = rng.random(x.shape) < 0.5
    for b in range(len(x)):
        masked[b, real[b]] = data["masked"][b, :int(real[b].sum())]
    return bound.e_training_padded(x, masked, real, params, config, eta, data["mask_token"])
