"""The modern primitives as the modern decoder uses them (spec: Algorithm 65's lines 2-16).

Interim module: the primitives' own entries (RoPE, RMSNorm, ALiBi, soft-capping; issue 13)
land in torch_impl/{rope,rmsnorm,alibi,softcap}.py; this module then re-exports them instead.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from formal_transformers.hyperparameters import ModernDTransformerConfig
from torch_impl.mlp import activation_function


class Norm(nn.Module):
    """Layer norm (gamma, beta; Algorithm 6) or RMSNorm (gamma; scale 1 + gamma with
    ``offset``) over the last axis, eps inside the root."""

    def __init__(self, d: int, kind: str, eps: float, offset: bool = False):
        super().__init__()
        self.kind, self.eps, self.offset = kind, eps, offset
        self.gamma = nn.Parameter(torch.zeros(d) if offset else torch.ones(d))
        self.beta = nn.Parameter(torch.zeros(d)) if kind == "layer_norm" else None

    def canonical_views(self, prefix: str, get) -> dict[str, torch.Tensor]:
        views = {f"{prefix}.gamma": get(self.gamma)}
        if self.beta is not None:
            views[f"{prefix}.beta"] = get(self.beta)
        return views

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if self.kind == "layer_norm":
            return F.layer_norm(X, X.shape[-1:], self.gamma, self.beta, self.eps)
        scale = 1 + self.gamma if self.offset else self.gamma
        return X * torch.rsqrt(X.pow(2).mean(-1, keepdim=True) + self.eps) * scale


def rope_frequencies(c: ModernDTransformerConfig) -> torch.Tensor:
    """Angular frequencies omega_i = theta^(-2i / r), i < r / 2 (r rotated features), after
    the config's scaling: (r / 2,) float64."""
    r = c.rotated
    omega = c.rope_theta ** (-torch.arange(0, r, 2, dtype=torch.float64) / r)
    if c.rope_scaling == "linear":
        return omega / c.rope_factor
    if c.rope_scaling == "llama3":
        wavelen = 2 * math.pi / omega
        low = c.rope_original_l_max / c.rope_low_freq_factor
        high = c.rope_original_l_max / c.rope_high_freq_factor
        smooth = ((c.rope_original_l_max / wavelen - c.rope_low_freq_factor)
                  / (c.rope_high_freq_factor - c.rope_low_freq_factor))
        mid = (1 - smooth) * omega / c.rope_factor + smooth * omega
        return torch.where(wavelen > low, omega / c.rope_factor,
                           torch.where(wavelen < high, omega, mid))
    return omega


def apply_rope(q: torch.Tensor, positions: torch.Tensor, omega: torch.Tensor, layout: str
               ) -> torch.Tensor:
    """Rotate the first r features of every head: q (B, n, T, d_head), positions (T,).

    half_split pairs feature i with i + r/2; interleaved pairs 2i with 2i + 1."""
    r = 2 * omega.shape[0]
    angles = positions.to(torch.float64)[:, None] * omega[None, :]  # (T, r/2)
    cos, sin = angles.cos().to(q.dtype), angles.sin().to(q.dtype)
    rot, rest = q[..., :r], q[..., r:]
    if layout == "half_split":
        a, b = rot[..., : r // 2], rot[..., r // 2:]
        out = torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)
    else:
        a, b = rot[..., 0::2], rot[..., 1::2]
        out = torch.stack([a * cos - b * sin, b * cos + a * sin], dim=-1).flatten(-2)
    return torch.cat([out, rest], dim=-1)


def softcap(S: torch.Tensor, c: float) -> torch.Tensor:
    """c tanh(S / c): |result| < c, ~S for |S| << c."""
    return c * torch.tanh(S / c)


def alibi_slopes(H: int) -> torch.Tensor:
    """The ALiBi head slopes, the paper code's rule for H not a power of two: (H,)."""
    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]
    n = 2 ** math.floor(math.log2(H))
    slopes = power_of_two(n)
    if n < H:
        slopes += power_of_two(2 * n)[0::2][: H - n]
    return torch.tensor(slopes, dtype=torch.float64)


def alibi_bias(H: int, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
    """-m_h (t - s) for query positions t (T,) and key positions s (n,): (H, T, n)."""
    distance = (q_pos[:, None] - k_pos[None, :]).to(torch.float64)
    return -alibi_slopes(H)[:, None, None] * distance


def modern_activation(name: str):
    """phi of the (gated) MLP: Algorithm 16's activations plus SiLU (SwiGLU's x sigmoid(x))."""
    return F.silu if name == "silu" else activation_function(name)
