"""Attention by the online softmax over key blocks, batched (spec: Algorithm 48, 48-*.md).

    online_softmax_sdpa(q (B, H, l_x, d_attn), k (B, G, l_z, d_attn), v (B, G, l_z, d_mid),
                        block, mask | None, causal=False) -> (B, H, l_x, d_mid)
    online_softmax_attention(X (B, l_x, d_x), Z (B, l_z, d_z), W_q, b_q, W_k, b_k, W_v, b_v,
                             block, mask (l_z, l_x) | (B, l_z, l_x) | None, causal=False)
        -> (B, l_x, d_out)

The recurrence of the spec written in torch, one key block per loop step (kv heads are
repeat-interleaved when G < H, as in Algorithm 40). It is the reference for what the fused
flash kernels of ``scaled_dot_product_attention`` compute; on its own it is not faster than
``sdpa``. Its backward (Algorithm 49) is autograd through the loop, which keeps every block's
weights: the recomputing backward with linear memory is the flash kernel's (or
reference_numpy's).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from formal_transformers.attention_options import check_positive_int
from torch_impl.attention import causal_mask, check_single_head
from torch_impl.gq_attention import repeat_kv


def online_softmax_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block: int,
                        mask: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
    """The running-max / running-sum recurrence over key blocks (Alg 48 L2-11)."""
    block = check_positive_int("block (B_c)", block)
    H, l_x, l_z = q.shape[1], q.shape[2], k.shape[2]
    k, v = repeat_kv(k, H), repeat_kv(v, H)  # (B, H, l_z, d)
    allowed = None if mask is None else mask.transpose(-1, -2)  # (.., l_x, l_z)
    if causal:
        c_mask = causal_mask(l_z, l_x, q.device).transpose(0, 1)
        allowed = c_mask if allowed is None else allowed & c_mask
    shape = q.shape[:-1] + (1,)  # (B, H, l_x, 1)
    m = torch.full(shape, float("-inf"), dtype=q.dtype, device=q.device)
    s = torch.zeros(shape, dtype=q.dtype, device=q.device)
    O = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    for start in range(0, l_z, block):  # Alg 48 L3-4
        J = slice(start, min(start + block, l_z))
        S = q @ k[:, :, J].transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, H, l_x, |J|), L5
        if allowed is not None:
            S = S.masked_fill(~allowed[..., J], float("-inf"))
        m_new = torch.maximum(m, S.amax(dim=-1, keepdim=True))  # Alg 48 L6
        seen = torch.isfinite(m_new)
        m_seen = torch.where(seen, m_new, torch.zeros_like(m_new))
        alpha = torch.where(seen, torch.exp(torch.where(seen, m, m_seen) - m_seen), 0.0)  # L7
        P = torch.where(seen, torch.exp(S - m_seen), 0.0)
        s = alpha * s + P.sum(dim=-1, keepdim=True)  # Alg 48 L8
        O = O * alpha + P @ v[:, :, J]  # Alg 48 L9
        m = m_new  # Alg 48 L10
    return O / s  # Alg 48 L11


def online_softmax_attention(X: torch.Tensor, Z: torch.Tensor, W_q: torch.Tensor,
                             b_q: torch.Tensor, W_k: torch.Tensor, b_k: torch.Tensor,
                             W_v: torch.Tensor, b_v: torch.Tensor, block: int,
                             mask: torch.Tensor | None = None, causal: bool = False
                             ) -> torch.Tensor:
    """Single-head attention by the online softmax (spec: Algorithm 48); shapes above."""
    mask = check_single_head(X, Z, W_q, b_q, W_k, b_k, W_v, b_v, mask)
    q = F.linear(X, W_q, b_q)[:, None]  # (B, 1, l_x, d_attn), Alg 48 L1
    k = F.linear(Z, W_k, b_k)[:, None]  # (B, 1, l_z, d_attn)
    v = F.linear(Z, W_v, b_v)[:, None]  # (B, 1, l_z, d_out)
    return online_softmax_sdpa(q, k, v, block, mask, causal)[:, 0]  # (B, l_x, d_out)


def online_softmax_attention_backward(dV_tilde: torch.Tensor, X: torch.Tensor,
                                      Z: torch.Tensor, W_q: torch.Tensor, b_q: torch.Tensor,
                                      W_k: torch.Tensor, b_k: torch.Tensor, W_v: torch.Tensor,
                                      b_v: torch.Tensor, block: int,
                                      mask: torch.Tensor | None = None, causal: bool = False
                                      ) -> dict[str, torch.Tensor]:
    """Gradients by autograd through the recurrence (spec: Algorithm 49): dV_tilde
    (B, l_x, d_out) -> {"X", "Z", "W_q", "b_q", "W_k", "b_k", "W_v", "b_v"}."""
    from torch_impl.backward import vjp

    inputs = {"X": X, "Z": Z, "W_q": W_q, "b_q": b_q, "W_k": W_k, "b_k": b_k, "W_v": W_v,
              "b_v": b_v}
    return vjp(online_softmax_attention, dV_tilde, inputs, block=block, mask=mask,
               causal=causal)
