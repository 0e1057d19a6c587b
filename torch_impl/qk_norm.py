"""QK-norm, fast and batched (spec: Algorithm 44, spec/algorithms/44-qk-norm.md).

    qk_norm(q (B, H, l, d_attn), gamma, axis, eps) -> (B, H, l, d_attn)

Heads in (B, H, l, d) layout, as the attention kernels take them. axis "per_head": gamma
(d_attn,), the mean square over each head's d_attn entries (Qwen3's q_norm/k_norm);
axis "projection": gamma (H*d_attn,) in the stacked order of the projection, the mean square
over all H*d_attn entries of a token (OLMo 2), computed before the head split in effect.
"""

from __future__ import annotations

import torch

from formal_transformers.attention_options import check_qk_norm_options
from torch_impl._checks import check_tensor


def qk_norm(q: torch.Tensor, gamma: torch.Tensor, axis: str, eps: float) -> torch.Tensor:
    """gamma * q / sqrt(mean(q^2) + eps) per head or per token (spec: Algorithm 44)."""
    eps = check_qk_norm_options(axis, eps)
    check_tensor("q", q, ("B", "H", "l", "d_attn"))
    H, d_attn = q.shape[1], q.shape[3]
    if axis == "per_head":
        check_tensor("gamma", gamma, (d_attn,), q.dtype)
        r = torch.sqrt(q.pow(2).mean(dim=-1, keepdim=True) + eps)  # (B, H, l, 1)
        return gamma * q / r  # Alg 44 L5
    check_tensor("gamma", gamma, (H * d_attn,), q.dtype)
    r = torch.sqrt(q.pow(2).mean(dim=(1, 3), keepdim=True) + eps)  # (B, 1, l, 1)
    return gamma.reshape(H, 1, d_attn) * q / r  # Alg 44 L8


def qk_norm_backward(dq_hat: torch.Tensor, q: torch.Tensor, gamma: torch.Tensor, axis: str,
                     eps: float) -> dict[str, torch.Tensor]:
    """Gradients of QK-norm by autograd (spec: Algorithm 45): dq_hat (B, H, l, d_attn) ->
    {"q": (B, H, l, d_attn), "gamma": gamma's shape}."""
    from torch_impl.backward import vjp

    return vjp(qk_norm, dq_hat, {"q": q, "gamma": gamma}, axis=axis, eps=eps)
