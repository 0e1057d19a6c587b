"""Hyperparameters of rotary position embedding (spec: Algorithm 25, spec/algorithms/25-rope.md).

``Rope`` names every convention on which implementations disagree, each with its formula in the
spec: the pairing ``layout`` ("half_split": feature i rotates with i + d_r/2, the `transformers`
``rotate_half`` convention; "interleaved": 2i with 2i + 1, Meta's complex-number reference), the
base ``theta``, the rotated ``fraction`` of the features (partial rotary, GPT-NeoX / Phi:
d_r = floor(fraction * d) leading features rotate, the rest pass through) and the frequency
``scaling`` (``RopeScaling``: "none", "linear" or "llama3"). Both implementations read these
dataclasses; neither re-validates them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from formal_transformers.errors import ConfigError

LAYOUTS = ("half_split", "interleaved")
SCALINGS = ("none", "linear", "llama3")


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class RopeScaling:
    """Frequency scaling of RoPE (spec: Algorithm 25 L3).

    kind "none": omega unchanged. "linear": omega / factor (position interpolation).
    "llama3": per frequency by its wavelength lambda = 2 pi / omega, with
    L = original_max_position: lambda < L / high_freq_factor keeps omega, lambda >
    L / low_freq_factor gives omega / factor, and in between
    (1 - s) omega / factor + s omega with s = (L / lambda - low_freq_factor) /
    (high_freq_factor - low_freq_factor) (Llama 3.1, as in `transformers`' rope utilities).
    factor = 1 equals "none" for both kinds.
    """

    kind: str = "none"
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position: int = 8192

    def __post_init__(self) -> None:
        if self.kind not in SCALINGS:
            raise ConfigError(f"RopeScaling.kind must be one of {SCALINGS}, got {self.kind!r}")
        _positive("RopeScaling.factor", self.factor)
        _positive("RopeScaling.low_freq_factor", self.low_freq_factor)
        _positive("RopeScaling.high_freq_factor", self.high_freq_factor)
        if self.kind == "llama3" and not self.high_freq_factor > self.low_freq_factor:
            raise ConfigError("RopeScaling: llama3 needs high_freq_factor > low_freq_factor, got "
                              f"{self.high_freq_factor!r} <= {self.low_freq_factor!r}")
        p = self.original_max_position
        if isinstance(p, bool) or not isinstance(p, int) or p < 1:
            raise ConfigError(f"RopeScaling.original_max_position must be an int >= 1, got {p!r}")


@dataclass(frozen=True)
class Rope:
    """The conventions of rotary position embedding (spec: Algorithm 25)."""

    layout: str = "half_split"
    theta: float = 10000.0
    fraction: float = 1.0
    scaling: RopeScaling = field(default_factory=RopeScaling)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ConfigError(f"Rope.layout must be one of {LAYOUTS}, got {self.layout!r}")
        if _positive("Rope.theta", self.theta) <= 1.0:
            raise ConfigError(f"Rope.theta must be > 1, got {self.theta!r}")
        if not 0 < _positive("Rope.fraction", self.fraction) <= 1:
            raise ConfigError(f"Rope.fraction must be in (0, 1], got {self.fraction!r}")
        if not isinstance(self.scaling, RopeScaling):
            raise ConfigError(f"Rope.scaling must be a RopeScaling, got {self.scaling!r}")

    def rotated_features(self, d: int) -> int:
        """d_r = floor(fraction * d) (Algorithm 25 L1): even and >= 2, else ConfigError."""
        d_r = int(math.floor(self.fraction * d + 1e-9))
        if d_r < 2 or d_r % 2:
            raise ConfigError(f"RoPE rotates d_r = floor(fraction * d) = floor({self.fraction} * "
                              f"{d}) = {d_r} features; d_r must be even and >= 2")
        return d_r
