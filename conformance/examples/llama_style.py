"""A hand-written Llama-style decoder of our own, in the style of Meta's reference code, to be
verified through a declarative mapping file instead of an adapter class (see
conformance/examples/llama_style_mapping.toml and examples/README.md, "Bring your model").

Its conventions differ from ``transformers``' Llama on purpose, the way real checkpoints do:
rotary embedding on interleaved pairs (2i, 2i + 1) through complex multiplication, one fused
``wqkv`` projection, Meta's names ``w1`` (gate), ``w3`` (up), ``w2`` (down), and kv heads
repeated with ``repeat_interleave``. The mapping declares these; the suite checks them.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotary(x: torch.Tensor, theta: float) -> torch.Tensor:
    """x (B, T, heads, d): pairs (2i, 2i+1) as complex numbers times e^{i t theta^(-2i/d)}."""
    T, d = x.shape[1], x.shape[-1]
    freqs = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.outer(torch.arange(T, dtype=torch.float64), freqs)  # (T, d/2)
    rot = torch.polar(torch.ones_like(angles), angles)[None, :, None, :]  # (1, T, 1, d/2)
    z = torch.view_as_complex(x.to(torch.float64).reshape(*x.shape[:-1], d // 2, 2))
    return torch.view_as_real(z * rot).flatten(-2).to(x.dtype)


class Block(nn.Module):
    def __init__(self, dim: int, n_heads: int, n_kv_heads: int, hidden: int, eps: float,
                 theta: float):
        super().__init__()
        self.h, self.kv, self.hd, self.theta = n_heads, n_kv_heads, dim // n_heads, theta
        self.attention_norm, self.ffn_norm = RMSNorm(dim, eps), RMSNorm(dim, eps)
        self.wqkv = nn.Linear(dim, (n_heads + 2 * n_kv_heads) * self.hd, bias=False)
        self.wo = nn.Linear(n_heads * self.hd, dim, bias=False)
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.wqkv(self.attention_norm(x)).split(
            [self.h * self.hd, self.kv * self.hd, self.kv * self.hd], dim=-1)
        q = rotary(q.view(B, T, self.h, self.hd), self.theta).transpose(1, 2)
        k = rotary(k.view(B, T, self.kv, self.hd), self.theta).transpose(1, 2)
        v = v.view(B, T, self.kv, self.hd).transpose(1, 2)
        k = k.repeat_interleave(self.h // self.kv, dim=1)
        v = v.repeat_interleave(self.h // self.kv, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, h, T, hd)
        x = x + self.wo(y.transpose(1, 2).reshape(B, T, -1))
        h = self.ffn_norm(x)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


class TinyLlama(nn.Module):
    """tokens (B, T) -> logits (B, T, vocab_size)."""

    def __init__(self, vocab_size: int, dim: int, n_layers: int, n_heads: int, n_kv_heads: int,
                 hidden: int, eps: float = 1e-5, theta: float = 10000.0):
        super().__init__()
        self.tok_embeddings = nn.Embedding(vocab_size, dim)
        self.layers = nn.ModuleList(Block(dim, n_heads, n_kv_heads, hidden, eps, theta)
                                    for _ in range(n_layers))
        self.norm = RMSNorm(dim, eps)
        self.output = nn.Linear(dim, vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.tok_embeddings(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.output(self.norm(x))
