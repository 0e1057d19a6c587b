"""reference.*: agreement with reference_numpy, forward and gradients (spec/properties.md).

The adapter runs in the dtype under test; the reference runs in float64 on exactly the values
the adapter received. Tolerances per dtype: conformance.assertions.tolerance. Below float32
(float16, bfloat16) they follow flash-attention's rule as well: the adapter's error may reach
NAIVE_K times the error of a plain implementation in the same dtype (torch_impl, run in that
dtype on the same inputs) against the float64 reference -- an ill-conditioned example (a layer
norm over close entries, saturated attention) costs every low-precision implementation alike.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np

from conformance import calls
from conformance.assertions import Tolerance, assert_close, gradient_tolerance, tolerance
from conformance.bound import Bound
from conformance.properties.training import (
    implied_gradient,
    implied_tolerance,
    single_sequence,
)
from conformance.registry import check, up
from conformance.strategies import cases_for, regressions
from reference_numpy import training

PRIMITIVES = ("token_embedding", "positional_embedding", "basic_attention", "attention",
              "mhattention", "layer_norm", "unembedding", "mlp", "rope", "rmsnorm", "gated_mlp",
              "sinusoidal_embedding", "alibi", "gq_attention", "sliding_window_mask",
              "block_sparse_mask", "qk_norm", "softcap", "online_softmax_attention")
BACKWARDS = ("token_embedding_backward", "positional_embedding_backward", "attention_backward",
             "mhattention_backward", "layer_norm_backward", "mlp_backward",
             "unembedding_backward", "rope_backward", "rmsnorm_backward", "gated_mlp_backward",
             "gq_attention_backward", "qk_norm_backward", "softcap_backward",
             "online_softmax_attention_backward")


NAIVE_K = 4.0
LOW_PRECISION = ("float16", "bfloat16")


@lru_cache(maxsize=1)
def _naive() -> Bound:
    from conformance.adapters.torch_adapter import TorchAdapter

    return Bound(TorchAdapter())


def naive_error(ctx, compute, expected):
    """Max |naive - expected| of a plain same-dtype implementation (``compute(bound)`` on
    torch_impl), per array of a dict or for one array; 0 in float32/float64, or where the plain
    implementation cannot run this example or gives a non-finite value (no loosening then)."""
    def error(naive, exp):
        err = float(np.max(np.abs(np.asarray(naive, np.float64) - exp), initial=0.0))
        return err if np.isfinite(err) else 0.0

    zero = dict.fromkeys(expected, 0.0) if isinstance(expected, dict) else 0.0
    if ctx.dtype.name not in LOW_PRECISION:
        return zero
    try:
        naive = compute(_naive())
    except Exception:  # the plain implementation does not run it: the dtype's tolerance only
        return zero
    if isinstance(expected, dict):
        return {k: error(naive[k], v) for k, v in expected.items()}
    return error(naive, expected)


def widened(tol: Tolerance, slack: float) -> Tolerance:
    return Tolerance(tol.rtol, tol.atol + NAIVE_K * slack, tol.scaled)


@check("reference.forward_agreement", PRIMITIVES, cases_for, dtypes="all", line=r"return")
@check("reference.forward_agreement", calls.ARCHITECTURES, cases_for, dtypes="all",
       line=r"return", cost=2)
def forward_agreement(ctx, case):
    """The adapter's output equals the reference's within the dtype's tolerance."""
    alg = ctx.algorithm
    observed = calls.forward(ctx.adapter, alg, case.data)
    expected = calls.forward(ctx.reference, alg, up(case.data))
    slack = naive_error(ctx, lambda b: calls.forward(b, alg, case.data), expected)
    assert_close(ctx, f"{alg} output", observed, expected, widened(tolerance(ctx.dtype), slack),
                 calls.AXES[alg])


@check("reference.gradient_agreement", BACKWARDS, cases_for, dtypes="all")
def gradient_agreement(ctx, case):
    """The adapter's gradients equal the reference's hand-written backward pass."""
    alg = ctx.algorithm
    upstream = calls.upstream_for(alg, case.data, case.rng(5), ctx.dtype)
    observed = calls.backward(ctx.adapter, alg, case.data, upstream)
    expected = calls.backward(ctx.reference, alg, up(case.data), up(upstream))
    if alg == "token_embedding_backward" and case.data.get("padding_idx") is not None:
        expected["W_e"][:, case["padding_idx"]] = 0.0  # no gradient to it (Alg 17, variant)
    slack = naive_error(ctx, lambda b: calls.backward(b, alg, case.data, upstream), expected)
    tol = gradient_tolerance(ctx.dtype, expected)
    for name, value in expected.items():
        assert_close(ctx, f"gradient of {name}", observed[name], value, widened(tol, slack[name]))


def _loss_and_grads(arch: str, case, rng):
    """The training loss's inputs, targets and the reference's gradient (Algorithms 11-13).

    Returns (data for the forward, targets [(b, t, y)], reference gradients summed over b).
    The loss is the summed one (the architecture's VJP is checked, not the training
    objective's loss_reduction).
    """
    data, params = dict(case.data), up(case["params"])
    config = dataclasses.replace(case["config"], loss_reduction="sum")
    x, grads = data["x"], []
    if arch == "e_transformer":
        masked = rng.random(x.shape) < 0.5
        mask_token = int(rng.integers(config.N_V))
        data["x"] = np.where(masked, mask_token, x)
        targets = [(b, t, int(x[b, t])) for b, t in zip(*np.nonzero(masked), strict=True)]
        grads = [training.e_loss_and_grad(x[b], masked[b], params, config, mask_token)[1]
                 for b in range(x.shape[0])]
    else:
        targets = [(b, t, int(x[b, t + 1])) for b in range(x.shape[0])
                   for t in range(x.shape[1] - 1)]
        if arch == "d_transformer":
            grads = [training.d_loss_and_grad(x[b], params, config)[1] for b in range(len(x))]
        else:
            grads = [training.ed_loss_and_grad(data["z"][b], x[b], params, config)[1]
                     for b in range(len(x))]
    return data, targets, {k: np.sum([g[k] for g in grads], axis=0) for k in params}


@check("reference.gradient_agreement", calls.ARCHITECTURES,
       lambda a, c, d: cases_for(a, c, d, min_len=2), requires=lambda a: (a + "_backward",),
       dtypes="all", cost=2, pinned=regressions)
def architecture_gradient_agreement(ctx, case):
    """Through ``<arch>_backward`` with dP = d(training loss)/dP, the adapter's gradients
    equal reference_numpy.training's loss gradient for every canonical parameter."""
    alg = ctx.algorithm
    data, targets, expected = _loss_and_grads(alg, case, case.rng(6))
    P = calls.forward(ctx.reference, alg, up(data))
    dP = np.zeros_like(P)
    for b, t, y in targets:
        dP[b, t, y] -= 1.0 / P[b, t, y]
    observed = calls.backward(ctx.adapter, alg + "_backward", data, dP.astype(ctx.dtype))
    slack = naive_error(ctx, lambda b: calls.backward(b, alg + "_backward", data,
                                                      dP.astype(ctx.dtype)), expected)
    tol = gradient_tolerance(ctx.dtype, expected)
    for name, value in expected.items():
        assert_close(ctx, f"gradient of {name}", observed[name], value, widened(tol, slack[name]))


@check("reference.gradient_agreement", ("ed_training", "e_training", "d_training"),
       single_sequence, dtypes="all", line=r"\\nabla", cost=2)
def training_gradient_agreement(ctx, case):
    """The gradient one step applies, (theta - theta') / eta, is the reference's loss gradient
    (reference_numpy.training.*_loss_and_grad) for every canonical parameter."""
    _, observed = implied_gradient(ctx, ctx.algorithm, case.data)
    d, params = case.data, up(case["params"])
    if ctx.algorithm == "d_training":
        _, expected = training.d_loss_and_grad(d["x"][0], params, d["config"])
    elif ctx.algorithm == "ed_training":
        _, expected = training.ed_loss_and_grad(d["z"][0], d["x"][0], params, d["config"])
    else:
        _, expected = training.e_loss_and_grad(d["x"][0], d["masked"][0], params, d["config"],
                                               d["mask_token"])
    tol = implied_tolerance(ctx.dtype, params, d["eta"], expected)
    for name, value in expected.items():
        assert_close(ctx, f"gradient of {name} (theta - theta')/eta", observed[name], value, tol)
