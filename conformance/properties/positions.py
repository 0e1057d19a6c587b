"""sinusoidal.* and alibi.*: the laws of the fixed position encodings (spec/properties.md;
spec: Algorithms 24 and 26). Moving k positions is one block rotation of the sinusoidal
embedding wherever it starts; the ALiBi bias is the head's slope times its form's function of
the positions (a penalty on distance), with the slopes of the reference code's rule."""

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


def basis(data) -> np.ndarray:
    """G[t_z, t_x] with Bias[h] = m_h G for the declared form: -(p_x - p_z) (signed),
    -|p_x - p_z| (symmetric) or p_z (key_position), float64."""
    D = (data["positions_x"][None, :] - data["positions_z"][:, None]).astype(np.float64)
    return {"signed": -D, "symmetric": -np.abs(D),
            "key_position": np.broadcast_to(data["positions_z"][:, None], D.shape).astype(
                np.float64)}[data["form"]]


def _slopes_read_off(Bias: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Bias[h] / G at the entry of largest |G|, for every head (G must not be all 0)."""
    idx = np.unravel_index(int(np.argmax(np.abs(G))), G.shape)
    return Bias[(slice(None),) + idx].astype(np.float64) / G[idx]


def _with_some_distance(data):
    """The case, or -- when its basis is all 0 -- its queries (distance forms) or keys
    (key_position) moved one position on."""
    if np.all(basis(data) == 0):
        key = "positions_z" if data["form"] == "key_position" else "positions_x"
        return data | {key: data[key] + 1}
    return data


@check("alibi.linear_in_distance", ("alibi",), lambda a, c, d: alibi_cases(c, d),
       line=r"Bias\}\[h")
def linear_in_distance(ctx, case):
    """Bias[h] = m_h G with m_h > 0, G the declared form's function of the positions; and
    shifting every position by s changes each query's column by one constant (0 for the
    distance forms), which the softmax ignores."""
    data, tol = _with_some_distance(case.data), tolerance(ctx.dtype)
    Bias = calls.forward(ctx.adapter, "alibi", data).astype(np.float64)
    G = basis(data)
    m = _slopes_read_off(Bias, G)
    if np.any(m <= 0):
        fail(f"slopes read off the {data['form']} bias are {m.tolist()}: the bias must "
             "penalise distance (m_h > 0)")
    assert_close(ctx, f"bias vs m_h G ({data['form']} form, m_h read off at the largest |G|)",
                 Bias, m[:, None, None] * G[None], tol, calls.AXES["alibi"])
    s = int(case.rng().integers(1, 20))
    shifted = data | {"positions_x": data["positions_x"] + s,
                      "positions_z": data["positions_z"] + s}
    change = calls.forward(ctx.adapter, "alibi", shifted).astype(np.float64) - Bias
    assert_close(ctx, f"change of the bias when every position shifts by {s}, minus its value "
                 "at the first key (must be constant in each column)",
                 change - change[:, :1, :], np.zeros_like(change), tol, calls.AXES["alibi"])


@check("alibi.slopes", ("alibi",), lambda a, c, d: alibi_cases(c, d), line=r"m_h \\gets")
def slopes(ctx, case):
    """The slopes are the reference code's: geometric from 2^(-8/H) for H a power of two, the
    interleaving rule otherwise (read off the bias at the largest |G|)."""
    data = _with_some_distance(case.data)
    m = _slopes_read_off(calls.forward(ctx.adapter, "alibi", data), basis(data))
    assert_close(ctx, f"slopes of H = {case['H']} heads vs the reference code's rule", m,
                 np.array(slopes_by_the_reference_code(case["H"])), tolerance(ctx.dtype), ("h",))
