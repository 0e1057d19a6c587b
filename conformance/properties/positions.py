"""sinusoidal.* and alibi.*: the laws of the fixed position encodings (spec/properties.md;
spec: Algorithms 24 and 26). Moving k positions is one block rotation of the sinusoidal
embedding wherever it starts; the ALiBi bias is a negative multiple of the query-key distance
per head, with the slopes of the reference code's rule."""

from __future__ import annotations

import math

import numpy as np

from conformance import calls
from conformance.assertions import assert_close, fail, tolerance
from conformance.registry import check
from conformance.strategies_modern import alibi_cases, sinusoidal_cases


def _pairs(E: np.ndarray) -> np.ndarray:
    """Rows (2i, 2i+1) = (sin, cos) of pair i as the complex number cos + i sin: (l, d_e/2)."""
    E = E.astype(np.float64)
    return E[:, 1::2] + 1j * E[:, 0::2]


@check("sinusoidal.shift_rotation", ("sinusoidal_embedding",),
       lambda a, c, d: sinusoidal_cases(c, d, min_len=2), line=r"E\[2i, t\]")
def shift_rotation(ctx, case):
    """E(t + k) = R_k E(t) for one block rotation R_k: the rotation of each pair, read off at
    the first position, maps every other position's pair too, and has modulus 1."""
    d, k = dict(case.data), int(case.rng().integers(1, 30))
    E = _pairs(calls.forward(ctx.adapter, "sinusoidal_embedding", d))
    E_k = _pairs(calls.forward(ctx.adapter, "sinusoidal_embedding",
                               d | {"positions": d["positions"] + k}))
    if np.min(np.abs(E[0])) < 1e-3:
        fail(f"pair of modulus {np.min(np.abs(E[0])):.3g} at position {int(d['positions'][0])}: "
             "(sin, cos) pairs must lie on the unit circle")
    R = E_k[0] / E[0]  # (d_e/2,) the rotation of each pair, from position p_0
    tol = tolerance(ctx.dtype)
    assert_close(ctx, f"|R_{k}| per pair (a rotation)", np.abs(R), np.ones(R.shape), tol, ("i",))
    for part, f in (("cos", np.real), ("sin", np.imag)):
        assert_close(ctx, f"{part} part of E(t + {k}) vs R_{k} E(t) (R_{k} read off at t = "
                     f"{int(d['positions'][0])})", f(E_k), f(R[None, :] * E), tol, ("t", "i"))


def slopes_by_the_reference_code(H: int) -> list[float]:
    """The ALiBi code's recursion, in our words: H a power of two gives the geometric sequence
    from 2^(-8/H) with that ratio; otherwise the n = 2^floor(log2 H) slopes of n heads,
    followed by every other slope of 2n heads."""
    if math.log2(H).is_integer():
        first = 2.0 ** (-8.0 / H)
        return [first ** (h + 1) for h in range(H)]
    n = 2 ** math.floor(math.log2(H))
    return slopes_by_the_reference_code(n) + slopes_by_the_reference_code(2 * n)[0::2][:H - n]


def _distance(data) -> np.ndarray:
    """D[t_z, t_x] = p_x[t_x] - p_z[t_z] (float64)."""
    return (data["positions_x"][None, :] - data["positions_z"][:, None]).astype(np.float64)


def _slopes_read_off(Bias: np.ndarray, D: np.ndarray) -> np.ndarray:
    """-Bias[h] / D at the entry of largest |D|, for every head (D must not be all 0)."""
    idx = np.unravel_index(int(np.argmax(np.abs(D))), D.shape)
    return -Bias[(slice(None),) + idx].astype(np.float64) / D[idx]


@check("alibi.linear_in_distance", ("alibi",), lambda a, c, d: alibi_cases(c, d),
       line=r"Bias\}\[h")
def linear_in_distance(ctx, case):
    """Bias[h] = -m_h D with m_h > 0: linear in the distance D = p_x - p_z, zero at distance
    zero, penalising distance; and unchanged when all positions shift together."""
    Bias = calls.forward(ctx.adapter, "alibi", case.data).astype(np.float64)
    D, tol = _distance(case.data), tolerance(ctx.dtype)
    if np.all(D == 0):
        assert_close(ctx, "bias at distance 0", Bias, np.zeros_like(Bias), tol, calls.AXES["alibi"])
        return
    m = _slopes_read_off(Bias, D)
    if np.any(m <= 0):
        fail(f"slopes read off the bias are {m.tolist()}: the bias must decrease with the "
             "distance (negative multiple of p_x - p_z)")
    assert_close(ctx, "bias vs -m_h (p_x - p_z), m_h read off at the largest distance", Bias,
                 -m[:, None, None] * D[None], tol, calls.AXES["alibi"])
    s = int(case.rng().integers(1, 20))
    shifted = case.data | {"positions_x": case["positions_x"] + s,
                           "positions_z": case["positions_z"] + s}
    assert_close(ctx, f"bias with every position shifted by {s} vs unshifted",
                 calls.forward(ctx.adapter, "alibi", shifted), Bias, tol, calls.AXES["alibi"])


@check("alibi.slopes", ("alibi",), lambda a, c, d: alibi_cases(c, d), line=r"m_h \\gets")
def slopes(ctx, case):
    """The slopes are the reference code's: geometric from 2^(-8/H) for H a power of two, the
    interleaving rule otherwise (read off the bias at the largest distance)."""
    data = case.data
    if np.all(_distance(data) == 0):  # one query and one key at the same position
        data = data | {"positions_x": data["positions_x"] + 1}
    m = _slopes_read_off(calls.forward(ctx.adapter, "alibi", data), _distance(data))
    assert_close(ctx, f"slopes of H = {case['H']} heads vs the reference code's rule", m,
                 np.array(slopes_by_the_reference_code(case["H"])), tolerance(ctx.dtype), ("h",))
