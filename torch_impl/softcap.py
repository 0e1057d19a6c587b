"""Attention with logit soft-capping, fast and batched (spec: Algorithm 46, 46-softcap.md).

    soft_cap(S, c) -> c tanh(S / c)                                  # any shape
    capped_sdpa(q (B, H, l_x, d_attn), k (B, G, l_z, d_attn), v (B, G, l_z, d_mid), c,
                mask | None, causal=False) -> (B, H, l_x, d_mid)      # G | H, kv repeat-interleaved
    softcap_attention(X (B, l_x, d_x), Z (B, l_z, d_z), W_q, b_q, W_k, b_k, W_v, b_v, c,
                      mask (l_z, l_x) | (B, l_z, l_x) | None, causal=False) -> (B, l_x, d_out)

PyTorch's fused scaled_dot_product_attention has no soft-cap, so the capped scores are formed
explicitly (the math path): this entry has no flash kernel. The cap is applied to the scaled
scores, before the mask; masks are in the spec's orientation ``mask[t_z, t_x]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from formal_transformers.attention_options import check_cap
from torch_impl.attention import causal_mask, check_single_head
from torch_impl.gq_attention import repeat_kv


def soft_cap(S: torch.Tensor, c: float) -> torch.Tensor:
    """c tanh(S / c), elementwise (spec: Algorithm 46, line 3)."""
    c = check_cap(c)
    return c * torch.tanh(S / c)


def capped_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, c: float,
                mask: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
    """softmax(mask(c tanh(K^T Q / (c sqrt(d_attn))))) applied to V, all heads at once."""
    H, l_x, l_z = q.shape[1], q.shape[2], k.shape[2]
    k, v = repeat_kv(k, H), repeat_kv(v, H)  # (B, H, l_z, d)
    S = soft_cap(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), c)  # (B, H, l_x, l_z), L2-3
    allowed = None if mask is None else mask.transpose(-1, -2)  # (.., l_x, l_z)
    if causal:
        c_mask = causal_mask(l_z, l_x, q.device).transpose(0, 1)
        allowed = c_mask if allowed is None else allowed & c_mask
    if allowed is not None:
        S = S.masked_fill(~allowed, float("-inf"))  # Alg 46 L4-5, after the cap
    return torch.softmax(S, dim=-1) @ v  # Alg 46 L6


def softcap_attention(X: torch.Tensor, Z: torch.Tensor, W_q: torch.Tensor, b_q: torch.Tensor,
                      W_k: torch.Tensor, b_k: torch.Tensor, W_v: torch.Tensor,
                      b_v: torch.Tensor, c: float, mask: torch.Tensor | None = None,
                      causal: bool = False) -> torch.Tensor:
    """Single-head soft-capped attention (spec: Algorithm 46); shapes in the module doc."""
    mask = check_single_head(X, Z, W_q, b_q, W_k, b_k, W_v, b_v, mask)
    q = F.linear(X, W_q, b_q)[:, None]  # (B, 1, l_x, d_attn), Alg 46 L1
    k = F.linear(Z, W_k, b_k)[:, None]  # (B, 1, l_z, d_attn)
    v = F.linear(Z, W_v, b_v)[:, None]  # (B, 1, l_z, d_out)
    return capped_sdpa(q, k, v, c, mask, causal)[:, 0]  # (B, l_x, d_out)


def softcap_backward(dV_tilde: torch.Tensor, X: torch.Tensor, Z: torch.Tensor,
                     W_q: torch.Tensor, b_q: torch.Tensor, W_k: torch.Tensor, b_k: torch.Tensor,
                     W_v: torch.Tensor, b_v: torch.Tensor, c: float,
                     mask: torch.Tensor | None = None, causal: bool = False
                     ) -> dict[str, torch.Tensor]:
    """Gradients of soft-capped attention by autograd (spec: Algorithm 47): dV_tilde
    (B, l_x, d_out) -> {"X", "Z", "W_q", "b_q", "W_k", "b_k", "W_v", "b_v"}."""
    from torch_impl.backward import vjp

    inputs = {"X": X, "Z": Z, "W_q": W_q, "b_q": b_q, "W_k": W_k, "b_k": b_k, "W_v": W_v,
              "b_v": b_v}
    return vjp(softcap_attention, dV_tilde, inputs, c=c, mask=mask, causal=causal)
