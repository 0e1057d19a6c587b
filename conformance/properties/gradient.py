"""gradient.finite_difference: an adapter's gradients match central differences of its own
forward (spec/properties.md). Checked along a random direction V of all differentiable
inputs: the central difference D(h) = (f(theta + hV) - f(theta - hV)) / 2h, extrapolated as
(4 D(h/2) - D(h)) / 3 (Richardson: error O(h^4), robust near a layer norm's small variances),
against <grad f, V>."""

from __future__ import annotations

import numpy as np

from conformance import calls
from conformance.assertions import fail
from conformance.properties.training import implied_gradient, single_sequence
from conformance.registry import check
from conformance.strategies import cases_for

BACKWARDS = ("token_embedding_backward", "positional_embedding_backward", "attention_backward",
             "mhattention_backward", "layer_norm_backward", "mlp_backward",
             "unembedding_backward")
STEP = {"float64": (1e-4, 1e-6), "float32": (2e-2, 2e-2), "float16": (2e-1, 2e-1)}  # (h, rtol)


def _perturbed(data, inputs, V, h):
    out = dict(data)
    out["params"] = dict(data["params"])
    for name, value in inputs.items():
        new = (value.astype(np.float64) + h * V[name]).astype(value.dtype)
        if name in out["params"]:
            out["params"][name] = new
        else:
            out[name] = new
    return out


@check("gradient.finite_difference", BACKWARDS, cases_for,
       requires=lambda a: (a.removesuffix("_backward"),))
@check("gradient.finite_difference", calls.ARCHITECTURES, cases_for,
       requires=lambda a: (a + "_backward",), cost=2)
def finite_difference(ctx, case):
    """<grad, V> equals the central difference of the adapter's forward along V."""
    alg = ctx.algorithm if ctx.algorithm.endswith("_backward") else ctx.algorithm + "_backward"
    rng = case.rng(7)
    upstream = calls.upstream_for(alg, case.data, rng, ctx.dtype)
    grads = calls.backward(ctx.adapter, alg, case.data, upstream)
    inputs = calls.backward_inputs(alg, case.data)
    V = {k: rng.standard_normal(v.shape) for k, v in inputs.items()}
    h, rtol = STEP[ctx.dtype.name]

    def central(step):
        f_plus = calls.loss_of(ctx.adapter, alg, _perturbed(case.data, inputs, V, step),
                               upstream)
        f_minus = calls.loss_of(ctx.adapter, alg, _perturbed(case.data, inputs, V, -step),
                                upstream)
        return (f_plus - f_minus) / (2 * step)

    numeric = (4 * central(h / 2) - central(h)) / 3
    terms = {k: float(np.sum(grads[k].astype(np.float64) * V[k])) for k in inputs}
    analytic = sum(terms.values())
    scale = max(sum(abs(t) for t in terms.values()), abs(numeric), 1e-3)
    error = abs(numeric - analytic) / scale
    ctx.observe(error)
    if error > rtol:
        biggest = max(terms, key=lambda k: abs(terms[k]))
        fail(f"{alg}: directional derivative {analytic:.10g} from the gradients, but the "
             f"central difference of the forward (h={h:g}) is {numeric:.10g}: relative error "
             f"{error:.3g} > {rtol:g} (largest term <grad {biggest}, V> = {terms[biggest]:.6g})",
             expected=f"{numeric:.10g}", observed=f"{analytic:.10g}")


@check("gradient.finite_difference", ("ed_training", "e_training", "d_training"),
       single_sequence, cost=2)
def training_finite_difference(ctx, case):
    """The gradient one step applies matches central differences of the loss the step reports
    (each evaluated before its update) along a random direction of the parameters."""
    loss, grad = implied_gradient(ctx, ctx.algorithm, case.data)
    params = case["params"]
    V = {k: case.rng(8).standard_normal(v.shape) for k, v in params.items()}
    h, rtol = STEP[ctx.dtype.name]

    def central(step):
        plus = _perturbed(case.data, params, V, step)
        minus = _perturbed(case.data, params, V, -step)
        return (implied_gradient(ctx, ctx.algorithm, plus)[0]
                - implied_gradient(ctx, ctx.algorithm, minus)[0]) / (2 * step)

    numeric = (4 * central(h / 2) - central(h)) / 3
    terms = {k: float(np.sum(grad[k] * V[k])) for k in params}
    analytic = sum(terms.values())
    error = abs(numeric - analytic) / max(sum(abs(t) for t in terms.values()), abs(numeric),
                                          1e-3)
    ctx.observe(error)
    if error > rtol:
        fail(f"{ctx.algorithm}: the step's gradient gives a directional derivative "
             f"{analytic:.10g}, the central difference of its loss gives {numeric:.10g}: "
             f"relative error {error:.3g} > {rtol:g} (loss {loss:.6g})",
             expected=f"{numeric:.10g}", observed=f"{analytic:.10g}")
