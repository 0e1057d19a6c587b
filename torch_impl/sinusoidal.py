"""Sinusoidal positional embedding, batched (spec: Algorithm 24,
spec/algorithms/24-sinusoidal-embedding.md).

Signature and layout::

    sinusoidal_embedding(positions, d_e, base=10000.0, index_offset=0, dtype=torch.float32)
        -> E: (..., l, d_e) for integer positions (..., l); angles in float64, cast once.
"""

from __future__ import annotations

import torch

from formal_transformers.errors import ConfigError, SpecDTypeError


def sinusoidal_embedding(positions: torch.Tensor, d_e: int, base: float = 10000.0,
                         index_offset: int = 0, dtype: torch.dtype = torch.float32
                         ) -> torch.Tensor:
    """E[..., t, 2i] = sin(p_t omega_i), E[..., t, 2i+1] = cos(p_t omega_i) (Algorithm 24)."""
    if not isinstance(positions, torch.Tensor) or positions.dtype.is_floating_point \
            or positions.dtype == torch.bool:
        raise SpecDTypeError(f"positions must be an integer torch.Tensor, got {positions!r}")
    if isinstance(d_e, bool) or not isinstance(d_e, int) or d_e < 2 or d_e % 2:
        raise ConfigError(f"d_e must be an even integer >= 2, got {d_e!r}")
    if not isinstance(base, (int, float)) or isinstance(base, bool) or not base > 1:
        raise ConfigError(f"base must be a number > 1, got {base!r}")
    if index_offset not in (0, 1) or isinstance(index_offset, bool):
        raise ConfigError(f"index_offset must be 0 or 1, got {index_offset!r}")
    if positions.numel() and int(positions.min()) < 0:
        raise ConfigError(f"positions must be >= 0, got {int(positions.min())}")
    i = torch.arange(d_e // 2, dtype=torch.float64, device=positions.device)
    omega = base ** (-2 * (i + index_offset) / d_e)  # (d_e/2,)
    angles = positions.to(torch.float64)[..., None] * omega  # (..., l, d_e/2)
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2).to(dtype)  # (.., d_e)
