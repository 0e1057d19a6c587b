"""Grouped-query attention, fast and batched (spec: Algorithm 40, 40-gq-attention.md).

Signature (same names and canonical orientation as ``torch_impl.mh_attention``)::

    gq_attention(X (B, l_x, d_x), Z (B, l_z, d_z),
                 W_q (H, d_attn, d_x), b_q (H, d_attn),
                 W_k (G, d_attn, d_z), b_k (G, d_attn),
                 W_v (G, d_mid, d_z),  b_v (G, d_mid),
                 W_o (d_out, H*d_mid), b_o (d_out,),
                 mask (l_z, l_x) | (B, l_z, l_x) bool | None, causal=False) -> (B, l_x, d_out)

Inside, heads live in (B, heads, l, d) layout: q (B, H, l_x, d_attn), k (B, G, l_z, d_attn),
v (B, G, l_z, d_mid). The kernel is PyTorch's ``scaled_dot_product_attention(enable_gqa=True)``
through ``torch_impl.attention.sdpa``: torch 2.13 documents it as repeating each kv head
``H // G`` times with ``repeat_interleave`` on the head axis, which is the spec's
floor(h G / H); ``repeat_kv`` does the same explicitly for paths that need the repeated heads
(the soft-capped scores, the online-softmax recurrence). Where SDPA does not match the spec:
a query whose mask column is all zeros gets NaN or zeros from SDPA where the spec leaves it
undefined, so ``check_batched_mask`` refuses such masks first (as for Algorithm 4). Kernels:
on CPU the float32/float64 results are checked here (tests and ``verify``); on CUDA, according
to a PyTorch maintainer (pytorch/torchtitan#2259), ``enable_gqa`` is not taken by the
memory-efficient kernel and SDPA falls back to the math kernel there -- not measured in this
project yet.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from formal_transformers.attention_options import check_groups
from torch_impl._checks import check_batched_mask, check_parameters, check_tensor
from torch_impl.attention import sdpa


def repeat_kv(k: torch.Tensor, H: int) -> torch.Tensor:
    """(B, G, l, d) -> (B, H, l, d): kv head floor(h G / H) in slot h (repeat-interleave)."""
    G = k.shape[1]
    return k.repeat_interleave(H // G, dim=1)


def gq_attention(X: torch.Tensor, Z: torch.Tensor, W_q: torch.Tensor, b_q: torch.Tensor,
                 W_k: torch.Tensor, b_k: torch.Tensor, W_v: torch.Tensor, b_v: torch.Tensor,
                 W_o: torch.Tensor, b_o: torch.Tensor, mask: torch.Tensor | None = None,
                 causal: bool = False) -> torch.Tensor:
    """Grouped-query attention (spec: Algorithm 40); shapes in the module docstring."""
    check_tensor("X", X, ("B", "l_x", "d_x"))
    B, l_x, d_x = X.shape
    check_tensor("Z", Z, (B, "l_z", "d_z"), X.dtype)
    l_z, d_z = Z.shape[1], Z.shape[2]
    H, d_attn, G, d_mid, d_out = W_q.shape[0], W_q.shape[1], W_k.shape[0], W_v.shape[1], \
        W_o.shape[0]
    check_groups(H, G)
    check_parameters([("W_q", W_q, (H, d_attn, d_x)), ("b_q", b_q, (H, d_attn)),
                      ("W_k", W_k, (G, d_attn, d_z)), ("b_k", b_k, (G, d_attn)),
                      ("W_v", W_v, (G, d_mid, d_z)), ("b_v", b_v, (G, d_mid)),
                      ("W_o", W_o, (d_out, H * d_mid)), ("b_o", b_o, (d_out,))], X.dtype)
    if mask is not None:
        check_batched_mask(mask, B, l_z, l_x)
        mask = mask if mask.ndim == 2 else mask[:, None]  # (B, 1, l_z, l_x)
    q = F.linear(X, W_q.reshape(H * d_attn, d_x), b_q.reshape(-1))  # (B, l_x, H*d_attn)
    k = F.linear(Z, W_k.reshape(G * d_attn, d_z), b_k.reshape(-1))  # (B, l_z, G*d_attn)
    v = F.linear(Z, W_v.reshape(G * d_mid, d_z), b_v.reshape(-1))  # (B, l_z, G*d_mid)
    q = rearrange(q, "b l (h d) -> b h l d", h=H)  # (B, H, l_x, d_attn)
    k, v = (rearrange(t, "b l (g d) -> b g l d", g=G) for t in (k, v))  # (B, G, l_z, d)
    Y = sdpa(q, k, v, mask, causal, enable_gqa=True)  # (B, H, l_x, d_mid), Alg 40 L1-3
    Y = rearrange(Y, "b h l d -> b l (h d)")  # (B, l_x, H*d_mid), Alg 40 L4
    return F.linear(Y, W_o, b_o)  # (B, l_x, d_out), Alg 40 L5


def gq_attention_backward(dV_tilde: torch.Tensor, X: torch.Tensor, Z: torch.Tensor,
                          W_q: torch.Tensor, b_q: torch.Tensor, W_k: torch.Tensor,
                          b_k: torch.Tensor, W_v: torch.Tensor, b_v: torch.Tensor,
                          W_o: torch.Tensor, b_o: torch.Tensor,
                          mask: torch.Tensor | None = None, causal: bool = False
                          ) -> dict[str, torch.Tensor]:
    """Gradients of grouped-query attention by autograd (spec: Algorithm 41): dV_tilde
    (B, l_x, d_out) -> {"X", "Z", "W_q", ..., "W_o", "b_o"}, kv gradients of shape (G, ...)."""
    from torch_impl.backward import vjp

    inputs = {"X": X, "Z": Z, "W_q": W_q, "b_q": b_q, "W_k": W_k, "b_k": b_k, "W_v": W_v,
              "b_v": b_v, "W_o": W_o, "b_o": b_o}
    return vjp(gq_attention, dV_tilde, inputs, mask=mask, causal=causal)
