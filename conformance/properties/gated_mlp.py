"""gated_mlp.*: the gated MLP is linear in its up branch (spec/properties.md; spec:
Algorithm 28): only the gate goes through the activation."""

from __future__ import annotations

import numpy as np

from conformance import calls
from conformance.assertions import assert_close, tolerance
from conformance.registry import check
from conformance.strategies_modern import gated_mlp_cases


@check("gated_mlp.linear_in_up", ("gated_mlp",), lambda a, c, d: gated_mlp_cases(c, d),
       line=r"M \\gets")
def linear_in_up(ctx, case):
    """Scaling W_up and b_up by a scales Y - b_down by a (a drawn in [-2, 2], away from 1)."""
    X, params, activation = case["X"], dict(case["params"]), case["activation"]
    a = float(case.rng().choice([-2.0, -1.0, -0.5, 0.5, 2.0]))
    scaled = dict(params) | {k: (a * params[k].astype(np.float64)).astype(ctx.dtype)
                             for k in ("W_up", "b_up") if k in params}
    b_down = params.get("b_down", np.zeros(X.shape[-1], ctx.dtype)).astype(np.float64)
    Y = ctx.adapter.gated_mlp(X, params, activation).astype(np.float64) - b_down
    Y_a = ctx.adapter.gated_mlp(X, scaled, activation).astype(np.float64) - b_down
    assert_close(ctx, f"GatedMLP with (W_up, b_up) scaled by {a} vs {a} (Y - b_down)", Y_a,
                 a * Y, tolerance(ctx.dtype), calls.AXES["gated_mlp"])
