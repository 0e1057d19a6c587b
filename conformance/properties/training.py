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


@check("training.padding_invariance", ("d_training",),
       lambda a, c, d: training_cases(c, d, a), requires=("d_training_padded",), dtypes="all",
       line=r"\\log P", cost=2)
def padded_training(ctx, case):
    """One epoch over a right- or left-padded batch is the epoch over the real sequences, one
    step each, in order: the same summed loss and the same parameters, whatever the padding
    tokens are."""
    from conformance.properties.batch import _lengths, pad

    x, config, eta, rng = case["x"], case["config"], case["eta"], case.rng(9)
    lengths = _lengths(x.shape, rng)
    loss, theta = 0.0, case["params"]
    for b, n in enumerate(lengths):  # the epoch on the real sequences alone, row by row
        step_loss, theta = ctx.adapter.d_training(x[b:b + 1, :n], theta, config, eta)
        loss += step_loss
    tol = tolerance(ctx.dtype, "gradient")
    for side in ("right", "left"):
        xp, real = pad(x, lengths, side, rng, config.N_V)
        got_loss, got = ctx.adapter.d_training_padded(xp, real, case["params"], config, eta)
        assert_close(ctx, f"{side}-padded epoch's loss vs the real sequences'", got_loss, loss,
                     tol)
        for name, value in theta.items():
            assert_close(ctx, f"{side}-padded epoch's updated {name} vs the real sequences'",
                         got[name], value, tolerance(ctx.dtype))
