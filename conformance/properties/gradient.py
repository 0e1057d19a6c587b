"""gradient.finite_difference: an adapter's gradients match central differences of its own
forward (spec/properties.md). Checked along a random direction V of all differentiable
inputs: the central difference D(h) = (f(theta + hV) - f(theta - hV)) / 2h, extrapolated as
(4 D(h/2) - D(h)) / 3 (Richardson: error O(h^4), robust near a layer norm's small variances),
against <grad f, V>. A step that straddles a kink (ReLU) spoils the difference, not the
gradient, so a mismatch is re-measured with steps 8 and 64 times smaller before it fails (a
wrong gradient misses at every step; a kink within h of the point is passed by a smaller one).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from conformance import calls
from conformance.assertions import fail, unit_roundoff
from conformance.properties.training import implied_gradient, single_sequence
from conformance.registry import check
from conformance.strategies import cases_for, padding_index, regressions

BACKWARDS = ("token_embedding_backward", "positional_embedding_backward", "attention_backward",
             "mhattention_backward", "layer_norm_backward", "mlp_backward",
             "unembedding_backward", "rope_backward", "rmsnorm_backward", "gated_mlp_backward",
             "gq_attention_backward", "qk_norm_backward", "softcap_backward",
             "online_softmax_attention_backward")
STEP = {"float64": (1e-5, 1e-6), "float32": (2e-2, 2e-2), "float16": (2e-1, 2e-1),
        "bfloat16": (2e-1, 2e-1)}  # (h, rtol)


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


def rounding_noise(dtype, grads, inputs, magnitude: float) -> float:
    """The absolute rounding noise of one evaluation of f in ``dtype``: u (sum of |g_i theta_i|
    over the inputs, each rounded to the dtype when perturbed, + ``magnitude``, the sum of the
    absolute terms f adds up)."""
    moved = sum(float(np.sum(np.abs(grads[k].astype(np.float64))
                             * np.abs(inputs[k].astype(np.float64)))) for k in inputs)
    return unit_roundoff(dtype) * (moved + magnitude)


def compare(ctx, what: str, f: Callable[[dict], float], data, inputs, V, terms,
            noise: float = 0.0) -> None:
    """Fail unless sum(terms) = <grad, V> matches the extrapolated central difference of
    ``f`` (a function of perturbed data) along V, within the dtype's relative tolerance plus
    the rounding noise of the difference: with ``noise`` the absolute rounding error of one
    evaluation of f (``rounding_noise``), the extrapolated difference at step h is off by at
    most (4 * 2 + 1) / 3 * noise / h = 3 noise / h -- large in float16 at a small step, where
    a correct gradient would otherwise fail."""
    h, rtol = STEP[ctx.dtype.name]

    def central(step):
        return (f(_perturbed(data, inputs, V, step))
                - f(_perturbed(data, inputs, V, -step))) / (2 * step)

    analytic = sum(terms.values())
    if not np.isfinite(analytic):
        bad = sorted(k for k, t in terms.items() if not np.isfinite(t))
        ctx.observe(np.inf, np.inf, "non-finite")
        fail(f"{what}: the gradients are not finite (<grad, V> = {analytic}; non-finite in "
             f"{', '.join(bad)}): a NaN or Inf gradient is a failure, never agreement",
             expected="a finite directional derivative", observed=f"{analytic}")
    tries = []
    for step in (h, h / 8, h / 64):
        numeric = (4 * central(step / 2) - central(step)) / 3
        if not np.isfinite(numeric):
            ctx.observe(np.inf, np.inf, "non-finite")
            fail(f"{what}: the central difference of the forward along V is {numeric} "
                 f"(h={step:g}): the adapter's forward gives non-finite values near the "
                 "example, which is no evidence for its gradients",
                 expected="a finite central difference", observed=f"{numeric}")
        scale = max(sum(abs(t) for t in terms.values()), abs(numeric), 1e-3)
        allowed = rtol + 3 * noise / step / scale
        error = abs(numeric - analytic) / scale
        tries.append((error / allowed, error, allowed, numeric, step))
        if tries[-1][0] <= 1:
            break
    ratio, error, allowed, numeric, step = min(tries)
    ctx.observe(error, ratio, "rel. error")
    if ratio > 1:
        biggest = max(terms, key=lambda k: abs(terms[k]))
        fail(f"{what}: directional derivative {analytic:.10g} from the gradients, but the "
             f"central difference (h={step:g}) is {numeric:.10g}: relative error {error:.3g} > "
             f"{allowed:.3g} (rtol {rtol:g} + rounding noise 3 x {noise:.3g} / h; largest "
             f"term <grad {biggest}, V> = {terms[biggest]:.6g})",
             expected=f"{numeric:.10g}", observed=f"{analytic:.10g}")


def fixed_column_still(V: dict[str, np.ndarray], data) -> dict[str, np.ndarray]:
    """Under the variant padding_idx the column W_e[:, padding_idx] is fixed (it gets no
    gradient from the lookup, spec: Algorithm 17), so the direction leaves it still."""
    p = padding_index(data)
    if p is not None:
        V["W_e"][:, p] = 0.0
    return V


@check("gradient.finite_difference", BACKWARDS, cases_for,
       requires=lambda a: (a.removesuffix("_backward"),))
@check("gradient.finite_difference", calls.ARCHITECTURES, cases_for,
       requires=lambda a: (a + "_backward",), cost=2, pinned=regressions)
def finite_difference(ctx, case):
    """<grad, V> equals the central difference of the adapter's forward along V."""
    alg = ctx.algorithm if ctx.algorithm.endswith("_backward") else ctx.algorithm + "_backward"
    rng = case.rng(7)
    upstream = calls.upstream_for(alg, case.data, rng, ctx.dtype)
    grads = calls.backward(ctx.adapter, alg, case.data, upstream)
    inputs = calls.backward_inputs(alg, case.data)
    V = fixed_column_still({k: rng.standard_normal(v.shape) for k, v in inputs.items()},
                           case.data)
    terms = {k: float(np.sum(grads[k].astype(np.float64) * V[k])) for k in inputs}
    if alg == "unembedding_backward":  # f = sum of -log P[y] >= 0 term by term
        magnitude = abs(calls.loss_of(ctx.adapter, alg, case.data, upstream))
    else:
        out = calls.forward(ctx.adapter, alg.removesuffix("_backward"), case.data)
        magnitude = float(np.sum(np.abs(out.astype(np.float64) * upstream)))
    compare(ctx, alg, lambda d: calls.loss_of(ctx.adapter, alg, d, upstream), case.data,
            inputs, V, terms, rounding_noise(ctx.dtype, grads, inputs, magnitude))


@check("gradient.finite_difference", ("ed_training", "e_training", "d_training"),
       single_sequence, cost=2)
def training_finite_difference(ctx, case):
    """The gradient one step applies matches central differences of the loss the step reports
    (evaluated before its update) along a random direction of the parameters."""
    loss, grad = implied_gradient(ctx, ctx.algorithm, case.data)
    params = case["params"]
    V = fixed_column_still({k: case.rng(8).standard_normal(v.shape) for k, v in params.items()},
                           case.data)
    terms = {k: float(np.sum(grad[k] * V[k])) for k in params}
    compare(ctx, f"{ctx.algorithm} (the gradient of one step)",
            lambda d: implied_gradient(ctx, ctx.algorithm, d)[0], case.data, params, V, terms,
            rounding_noise(ctx.dtype, grad, params, abs(loss)))
