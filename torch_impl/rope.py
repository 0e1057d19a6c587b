"""Rotary position embedding, batched (spec: Algorithm 25, spec/algorithms/25-rope.md).

Signature and layout (stable; the modern decoder builds on it)::

    rope(X, positions, config) -> Y
        X: (B, l, d) or (B, H, l, d) float tensor (queries or keys; features last);
        positions: (l,) or (B, l) int tensor, absolute positions (a cache step at offset t
        passes positions = tensor([t]));
        config: formal_transformers.rope.Rope. Y has the shape and dtype of X.
    rope_frequencies(d_r, config, device) -> omega: (d_r / 2,) float64 tensor.
    rope_backward(dY, X, positions, config) -> {"X": dX}, by autograd (Algorithm 29).
    cos_sin(positions, omega, X) and rotate(x, cos, sin, layout): the two steps of rope, for
        callers that cache the cos/sin tables.

Angles are formed in float64 and cos/sin are cast to X's dtype once, so a float32 call does not
lose accuracy at large positions. The layouts differ only in which features form a pair:
half_split uses `transformers`' rotate_half, interleaved views pairs (2i, 2i+1).
"""

from __future__ import annotations

import math

import torch

from formal_transformers.errors import ConfigError, SpecDTypeError, SpecShapeError
from formal_transformers.rope import Rope
from torch_impl._checks import check_features
from torch_impl.backward import vjp


def rope_frequencies(d_r: int, config: Rope, device: torch.device | str = "cpu"
                     ) -> torch.Tensor:
    """omega_i = scale(theta^(-2i / d_r)), i in [d_r / 2] (Algorithm 25 L2-3), float64."""
    omega = config.theta ** (-torch.arange(0, d_r, 2, dtype=torch.float64, device=device) / d_r)
    s = config.scaling
    if s.kind == "linear":
        omega = omega / s.factor
    elif s.kind == "llama3":
        wavelength = 2 * math.pi / omega
        L = s.original_max_position
        smooth = (L / wavelength - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
        mixed = (1 - smooth) * omega / s.factor + smooth * omega
        omega = torch.where(wavelength < L / s.high_freq_factor, omega,
                            torch.where(wavelength > L / s.low_freq_factor, omega / s.factor,
                                        mixed))
    return omega


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def cos_sin(positions: torch.Tensor, omega: torch.Tensor, X: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of p_t omega_i in X's dtype, (.., l, d_r / 2), broadcastable against X's
    (.., l, .): (l, d_r/2) for positions (l,); (B, l, d_r/2) or (B, 1, l, d_r/2) for (B, l)."""
    angles = positions.to(torch.float64)[..., None] * omega  # (l, d_r/2) or (B, l, d_r/2)
    if positions.ndim == 2 and X.ndim == 4:
        angles = angles[:, None]  # (B, 1, l, d_r/2)
    return angles.cos().to(X.dtype), angles.sin().to(X.dtype)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, layout: str) -> torch.Tensor:
    """Algorithm 25 L5-7 on the rotated features x (.., l, d_r) with cos, sin (.., l, d_r/2)."""
    if layout == "half_split":
        cos, sin = torch.cat((cos, cos), dim=-1), torch.cat((sin, sin), dim=-1)  # (.., d_r)
        return x * cos + _rotate_half(x) * sin
    pairs = x.unflatten(-1, (x.shape[-1] // 2, 2))  # (.., l, d_r/2, 2)
    a, b = pairs[..., 0], pairs[..., 1]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)


def _check_positions(positions: object, X: torch.Tensor) -> None:
    if not isinstance(positions, torch.Tensor) or positions.dtype.is_floating_point \
            or positions.dtype == torch.bool:
        raise SpecDTypeError(f"positions must be an integer torch.Tensor, got {positions!r}")
    l = X.shape[-2]
    if positions.shape not in ((l,), (X.shape[0], l)):
        raise SpecShapeError(f"positions must have shape (l,) = ({l},) or (B, l) = "
                             f"({X.shape[0]}, {l}), got {tuple(positions.shape)}")
    if positions.numel() and not torch.compiler.is_compiling() and int(positions.min()) < 0:
        raise ConfigError(f"positions must be >= 0, got {int(positions.min())}")


def rope(X: torch.Tensor, positions: torch.Tensor, config: Rope) -> torch.Tensor:
    """Rotate the first d_r features of every vector of X by its position (Algorithm 25)."""
    if not isinstance(config, Rope):
        raise ConfigError(f"config must be a formal_transformers.rope.Rope, got {config!r}")
    check_features("X", X)
    if X.ndim not in (3, 4):
        raise SpecShapeError(f"X must be (B, l, d) or (B, H, l, d), got {tuple(X.shape)}")
    _check_positions(positions, X)
    d_r = config.rotated_features(X.shape[-1])
    cos, sin = cos_sin(positions, rope_frequencies(d_r, config, X.device), X)
    return torch.cat((rotate(X[..., :d_r], cos, sin, config.layout), X[..., d_r:]), dim=-1)


def rope_backward(dY: torch.Tensor, X: torch.Tensor, positions: torch.Tensor, config: Rope
                  ) -> dict[str, torch.Tensor]:
    """Gradient of RoPE by autograd (spec: Algorithm 29): dY like X -> {"X": dX}."""
    return vjp(rope, dY, {"X": X}, positions=positions, config=config)
