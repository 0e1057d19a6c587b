"""rmsnorm.*: the laws of RMSNorm (spec/properties.md; spec: Algorithm 27): the stabiliser sits
inside the root (rescaling the input rescales epsilon), and with unit gain the output is the
input divided by its root mean square. RMSNorm and the gated MLP are position-wise
(structure.position_wise, registered here on them)."""

from __future__ import annotations

import numpy as np

from conformance import calls
from conformance.assertions import assert_close, tolerance
from conformance.properties.structure import position_wise
from conformance.registry import check
from conformance.strategies import cases_for
from conformance.strategies_modern import rmsnorm_cases

check("structure.position_wise", ("rmsnorm", "gated_mlp"), cases_for, line=r"return")(
    position_wise)


@check("rmsnorm.scale_invariance", ("rmsnorm",), lambda a, c, d: rmsnorm_cases(c, d),
       line=r"r \\gets")
def scale_invariance(ctx, case):
    """RMSNorm_eps(a e) = RMSNorm_{eps / a^2}(e) for a > 0 (one a per position)."""
    X, params, eps, offset = case["X"], case["params"], case["eps"], case["offset"]
    a = np.exp(case.rng().uniform(-1.5, 1.5, X.shape[:2] + (1,)))
    scaled = (a * X.astype(np.float64)).astype(ctx.dtype)
    # eps / a^2 differs per position, so the right-hand side is computed one position at a time
    B, l, _ = X.shape
    expected = np.empty(X.shape, dtype=ctx.dtype)
    for b in range(B):
        for t in range(l):
            expected[b, t] = ctx.adapter.rmsnorm(X[b:b + 1, t:t + 1], params,
                                                 float(eps / a[b, t, 0] ** 2), offset)[0, 0]
    assert_close(ctx, "RMSNorm(a X; eps) vs RMSNorm(X; eps / a^2)",
                 ctx.adapter.rmsnorm(scaled, params, eps, offset), expected,
                 tolerance(ctx.dtype), calls.AXES["rmsnorm"])


@check("rmsnorm.unit_gain", ("rmsnorm",),
       lambda a, c, d: rmsnorm_cases(c, d, eps_zero=True, unit_gain=True), line=r"g \\gets")
def unit_gain(ctx, case):
    """With unit gain (gamma = 1, or gamma = 0 with offset) and eps = 0 every output column
    is e / sqrt(mean(e^2)): the input's direction with root mean square 1."""
    X = case["X"].astype(np.float64)
    Y = ctx.adapter.rmsnorm(case["X"], case["params"], 0.0, case["offset"])
    assert_close(ctx, f"RMSNorm with unit gain (offset = {case['offset']}) vs e / rms(e)", Y,
                 X / np.sqrt(np.mean(X * X, axis=-1, keepdims=True)), tolerance(ctx.dtype),
                 calls.AXES["rmsnorm"])
