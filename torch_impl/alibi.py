"""ALiBi, attention with linear biases, batched (spec: Algorithm 26, spec/algorithms/26-alibi.md).

Signature and layout::

    alibi(positions_x, positions_z, H, dtype=torch.float32, form="signed") -> bias: (H, l_x, l_z)
        query-major, the orientation of scaled_dot_product_attention's attn_mask (add it to the
        (B, H, l_x, l_z) scores); the spec's Bias[h, t_z, t_x] is bias[h, t_x, t_z].
    alibi_slopes(H, device="cpu") -> (H,) float64 tensor.
"""

from __future__ import annotations

import math

import torch

from formal_transformers.errors import ConfigError, SpecDTypeError


def alibi_slopes(H: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """m_h: 2^(-8(h+1)/n) for h < n = 2^floor(log2 H), then 2^(-4(2(h-n)+1)/n) (Alg 26 L1-3)."""
    if isinstance(H, bool) or not isinstance(H, int) or H < 1:
        raise ConfigError(f"H must be an integer >= 1, got {H!r}")
    n = 2 ** int(math.floor(math.log2(H)))
    h = torch.arange(H, dtype=torch.float64, device=device)
    return torch.where(h < n, 2.0 ** (-8 * (h + 1) / n), 2.0 ** (-4 * (2 * (h - n) + 1) / n))


def alibi(positions_x: torch.Tensor, positions_z: torch.Tensor, H: int,
          dtype: torch.dtype = torch.float32, form: str = "signed") -> torch.Tensor:
    """bias[h, t_x, t_z] = -m_h (p_x[t_x] - p_z[t_z]) (signed; -m_h |.| symmetric; m_h p_z
    key_position), computed in float64 and cast once."""
    if form not in ("signed", "symmetric", "key_position"):
        raise ConfigError(f"form must be signed, symmetric or key_position, got {form!r}")
    for name, p in (("positions_x", positions_x), ("positions_z", positions_z)):
        if not isinstance(p, torch.Tensor) or p.dtype.is_floating_point or p.ndim != 1:
            raise SpecDTypeError(f"{name} must be a 1-D integer torch.Tensor, got {p!r}")
    distance = positions_x.to(torch.float64)[:, None] - positions_z.to(torch.float64)[None, :]
    m = alibi_slopes(H, positions_x.device)[:, None, None]
    if form == "key_position":
        bias = m * positions_z.to(torch.float64)[None, None, :].expand_as(distance[None])
    else:
        bias = -m * (distance.abs() if form == "symmetric" else distance)
    return bias.to(dtype)  # (H, l_x, l_z)
