"""mask.*: masked positions have no influence; the all-ones mask is no mask (spec/properties.md)."""

from __future__ import annotations

import numpy as np

from conformance import calls
from conformance.assertions import assert_close, tolerance
from conformance.registry import check
from conformance.strategies import attention_cases


def _cases(mask):
    return lambda a, c, d: attention_cases(c, d, a == "mhattention", mask=mask)


@check("mask.no_influence", ("attention", "mhattention"), _cases("random"),
       line=r"\\neg \\mathrm\{Mask\}|Mask")
def masked_context_has_no_influence(ctx, case):
    """Changing context column t_z leaves every output column t_x with Mask[t_z, t_x] = 0."""
    X, Z, params, Mask = case["X"], case["Z"], case["params"], case["mask"]
    rng = case.rng()
    rows = np.flatnonzero(~Mask.all(axis=1))
    t_z = int(rng.choice(rows)) if rows.size else 0
    blind = np.flatnonzero(~Mask[t_z])  # queries that must not see z_{t_z}
    Z2 = Z.copy()
    Z2[:, t_z] = 3.0 * calls.fresh_like(Z[:, t_z], rng)
    f = getattr(ctx.adapter, ctx.algorithm)
    out, out2 = f(X, Z, params, Mask), f(X, Z2, params, Mask)
    assert_close(ctx, f"output columns {blind.tolist()} after changing masked context column "
                 f"{t_z} (Mask = {Mask.astype(int).tolist()})", out2[:, blind], out[:, blind],
                 tolerance(ctx.dtype), ("b", "t_x", "i"))


@check("mask.all_ones_equals_none", ("attention", "mhattention"), _cases("none"),
       line=r"Mask")
def all_ones_mask_is_no_mask(ctx, case):
    """Attention(X, Z | W, 1 1^T) = Attention(X, Z | W)."""
    X, Z, params = case["X"], case["Z"], case["params"]
    ones = np.ones((Z.shape[1], X.shape[1]), dtype=bool)
    f = getattr(ctx.adapter, ctx.algorithm)
    assert_close(ctx, "output with the all-ones mask vs with no mask", f(X, Z, params, ones),
                 f(X, Z, params, None), tolerance(ctx.dtype), calls.AXES[ctx.algorithm])
