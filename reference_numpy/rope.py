"""Rotary position embedding, forward (spec: Algorithm 25, spec/algorithms/25-rope.md).

Signature and layout (stable; the modern decoder builds on it)::

    rope(X, positions, config, cache=None) -> Y
        X: (d, l) float64, the queries or keys of ONE head, one column per token (the spec's
           column layout); positions: (l,) int >= 0, the absolute position of every column;
        config: formal_transformers.rope.Rope (layout, theta, fraction, scaling).
        Y: (d, l).
    rope_frequencies(d_r, config) -> omega: (d_r / 2,), Algorithm 25 L2-3.
    rope_backward(dY, cache) -> {"X": dX (d, l)}, Algorithm 29 (cache filled by rope).

Literal float64 mirror, loops where the pseudocode loops; the hand-written backward follows
the forward in this module.
"""

from __future__ import annotations

import math

import numpy as np

from formal_transformers.errors import ConfigError, SpecDTypeError, SpecShapeError
from formal_transformers.rope import Rope, RopeScaling
from formal_transformers.validation import check_array
from reference_numpy.backward import need


def _scaled(omega: float, s: RopeScaling) -> float:
    """Algorithm 25 L3 for one frequency (the rule of RopeScaling's docstring)."""
    if s.kind == "none":
        return omega
    if s.kind == "linear":
        return omega / s.factor
    wavelength = 2 * math.pi / omega
    L = s.original_max_position
    if wavelength < L / s.high_freq_factor:
        return omega
    if wavelength > L / s.low_freq_factor:
        return omega / s.factor
    smooth = (L / wavelength - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
    return (1 - smooth) * omega / s.factor + smooth * omega


def rope_frequencies(d_r: int, config: Rope) -> np.ndarray:
    """The frequencies omega_i, i in [d_r / 2], of Algorithm 25 lines 2-3."""
    omega = [config.theta ** (-2 * i / d_r) for i in range(d_r // 2)]  # Alg 25 L2
    return np.array([_scaled(w, config.scaling) for w in omega])  # Alg 25 L3


def pair(i: int, d_r: int, layout: str) -> tuple[int, int]:
    """The features (a, b) that rotate together at frequency i (Algorithm 25 L5)."""
    return (i, i + d_r // 2) if layout == "half_split" else (2 * i, 2 * i + 1)


def check_positions(positions: object, l: int | None = None, name: str = "positions"
                    ) -> np.ndarray:
    """Integer positions >= 0 in a 1-D array, of length l when given (typed errors)."""
    p = np.asarray(positions)
    if not np.issubdtype(p.dtype, np.integer):
        raise SpecDTypeError(f"{name} must be integers, got dtype {p.dtype}")
    if p.ndim != 1 or (l is not None and p.shape != (l,)):
        want = f"(l,) = ({l},)" if l is not None else "(l,)"
        raise SpecShapeError(f"{name} must have shape {want}, got {p.shape}")
    if p.size and p.min() < 0:
        raise ConfigError(f"{name} must be >= 0, got {int(p.min())}")
    return p.astype(np.int64)


def rope(X: np.ndarray, positions: np.ndarray, config: Rope, cache: dict | None = None
         ) -> np.ndarray:
    """Rotary position embedding of one head's columns (spec: Algorithm 25).

    X: (d, l); positions: (l,) ints >= 0; config: Rope. Returns Y: (d, l). If ``cache`` is a
    dict, the backward pass's needs (positions, omega, d_r, layout) are stored in it.
    """
    if not isinstance(config, Rope):
        raise ConfigError(f"config must be a formal_transformers.rope.Rope, got {config!r}")
    check_array("X", X, ("d", "l"))
    d, l = X.shape
    p = check_positions(positions, l)
    d_r = config.rotated_features(d)  # Alg 25 L1
    omega = rope_frequencies(d_r, config)
    Y = np.zeros_like(X, dtype=np.float64)
    for t in range(l):  # Alg 25 L4
        for i in range(d_r // 2):
            a, b = pair(i, d_r, config.layout)  # Alg 25 L5
            c, s = math.cos(p[t] * omega[i]), math.sin(p[t] * omega[i])
            Y[a, t] = c * X[a, t] - s * X[b, t]  # Alg 25 L6
            Y[b, t] = s * X[a, t] + c * X[b, t]  # Alg 25 L7
        Y[d_r:, t] = X[d_r:, t]  # Alg 25 L8
    if cache is not None:
        cache.update(positions=p, omega=omega, d_r=d_r, layout=config.layout, d=d)
    return Y  # Alg 25 L9


def rope_backward(d_out: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Gradient of Algorithm 25 (spec: Algorithm 29, 29-rope-backward.md).

    d_out: dY (d, l). Returns {"X": dX (d, l)}: dY rotated back by the same angles.
    """
    need(cache, "rope", "positions", "omega", "d_r", "layout", "d")
    p, omega, d_r, layout = (cache[k] for k in ("positions", "omega", "d_r", "layout"))
    check_array("dY", d_out, (cache["d"], p.shape[0]))
    dX = np.zeros_like(d_out, dtype=np.float64)
    for t in range(p.shape[0]):  # Alg 29 L1
        for i in range(d_r // 2):
            a, b = pair(i, d_r, layout)  # Alg 29 L2
            c, s = math.cos(p[t] * omega[i]), math.sin(p[t] * omega[i])
            dX[a, t] = c * d_out[a, t] + s * d_out[b, t]  # Alg 29 L3
            dX[b, t] = -s * d_out[a, t] + c * d_out[b, t]  # Alg 29 L4
        dX[d_r:, t] = d_out[d_r:, t]  # Alg 29 L5
    return {"X": dX}  # Alg 29 L6
