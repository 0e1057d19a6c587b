"""causal.*: no information flows from later tokens to earlier outputs (spec/properties.md)."""

from __future__ import annotations

import numpy as np

from conformance import calls
from conformance.assertions import assert_close, assert_exact, tolerance
from conformance.registry import check
from conformance.strategies import architecture_cases, attention_cases


def _cut(rng: np.random.Generator, l: int) -> int:
    """A position t with at least one later position (t = 0 when l = 1: nothing to change)."""
    return int(rng.integers(0, l - 1)) if l >= 2 else 0


def _causal_self_attention(alg, constrain, dtype):
    return attention_cases(constrain, dtype, alg.startswith("mh"), mask="causal",
                           self_attention=True)


@check("causal.non_leakage", ("attention",), _causal_self_attention, line=r"Mask")
def attention_non_leakage(ctx, case):
    """Causal self-attention: changing columns after t leaves output columns 0..t unchanged."""
    X, params, mask = case["X"], case["params"], case["mask"]
    rng = case.rng()
    t = _cut(rng, X.shape[1])
    X2 = X.copy()
    X2[:, t + 1:] = calls.fresh_like(X[:, t + 1:], rng)
    out = ctx.adapter.attention(X, X, params, mask)
    out2 = ctx.adapter.attention(X2, X2, params, mask)
    assert_close(ctx, f"output columns 0..{t} after changing the inputs after {t}",
                 out2[:, :t + 1], out[:, :t + 1], tolerance(ctx.dtype), calls.AXES["attention"])


@check("causal.non_leakage", ("d_transformer", "ed_transformer"),
       lambda a, c, d: architecture_cases(c, d, a, min_len=2),
       line=r"t_z \\le t_x", cost=2)
def decoder_non_leakage(ctx, case):
    """x and x' agree up to t: P[:, :t+1] = P'[:, :t+1] (the decoder side for ED)."""
    rng, data = case.rng(), dict(case.data)
    x = data["x"]
    t = _cut(rng, x.shape[1])
    x2 = x.copy()
    x2[:, t + 1:] = rng.integers(0, data["config"].N_V, x2[:, t + 1:].shape)
    out = calls.forward(ctx.adapter, ctx.algorithm, data)
    out2 = calls.forward(ctx.adapter, ctx.algorithm, data | {"x": x2})
    assert_close(ctx, f"P columns 0..{t} after changing tokens after position {t} "
                 f"(x {x.tolist()} -> {x2.tolist()})", out2[:, :t + 1], out[:, :t + 1],
                 tolerance(ctx.dtype), calls.AXES[ctx.algorithm])


@check("causal.zero_jacobian", ("attention", "mhattention"), _causal_self_attention,
       requires=lambda a: (a + "_backward",), line=r"Mask")
def attention_zero_jacobian(ctx, case):
    """With upstream gradient only in columns 0..t, the gradients of X and Z are exactly zero
    in every column after t."""
    X, rng = case["X"], case.rng()
    t = _cut(rng, X.shape[1])
    dY = calls.upstream_for(ctx.algorithm + "_backward", case.data, rng, ctx.dtype)
    dY[:, t + 1:] = 0
    grads = calls.backward(ctx.adapter, ctx.algorithm + "_backward", case.data, dY)
    for name in ("X", "Z"):
        assert_exact(ctx, f"d{name}[:, {t + 1}:] (dY is zero after column {t})",
                     grads[name][:, t + 1:], np.zeros_like(grads[name][:, t + 1:]),
                     ("b", "t", "i"))


@check("causal.zero_jacobian", ("d_transformer",),
       lambda a, c, d: architecture_cases(c, d, a, min_len=2),
       requires=("d_transformer_backward",), line=r"t_z \\le t_x", cost=2)
def decoder_zero_jacobian(ctx, case):
    """With dP only in columns 0..t, the gradient of W_p is exactly zero after column t."""
    rng = case.rng()
    t = _cut(rng, case["x"].shape[1])
    dP = calls.upstream_for("d_transformer_backward", case.data, rng, ctx.dtype)
    dP[:, t + 1:] = 0
    dW_p = calls.backward(ctx.adapter, "d_transformer_backward", case.data, dP)["W_p"]
    assert_exact(ctx, f"dW_p[:, {t + 1}:] (dP is zero after column {t})", dW_p[:, t + 1:],
                 np.zeros_like(dW_p[:, t + 1:]), ("i", "t"))
