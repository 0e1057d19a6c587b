"""Attention family, fast and batched (spec: Algorithms 3-5, spec/algorithms/03-05).

Layout (B, l, d): the spec's column matrix X (d_x, l_x) of sequence b is ``X[b].T``. Weights
keep the spec's orientation (W_q is (d_attn, d_x), like nn.Linear.weight), so W_q X + b_q 1^T
is ``F.linear(X, W_q, b_q)``. The kernel is chosen in one place, ``sdpa``: PyTorch's
scaled_dot_product_attention (flash / memory-efficient kernels on CUDA, a fused kernel or the
math path on CPU; float64 always takes the exact math path).

Masks follow the spec: ``mask[t_z, t_x]`` (or ``mask[b, t_z, t_x]``) is True when query token
t_x may attend to context token t_z; SDPA wants the transpose. ``causal=True`` is the spec's
Mask[t_z, t_x] = [t_z <= t_x]; with a mask as well, both must allow a pair.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from torch_impl._checks import check_batched_mask, check_parameters, check_tensor


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
         causal: bool = False, enable_gqa: bool = False) -> torch.Tensor:
    """softmax(K^T Q / sqrt(d_attn)) applied to V, for all heads at once (Alg 4 L4-7).

    q: (B, H, l_x, d_attn), k: (B, H, l_z, d_attn), v: (B, H, l_z, d_mid);
    mask: None or bool broadcastable to (B, H, l_z, l_x) in the spec's orientation.
    Returns (B, H, l_x, d_mid). Every fast path of torch_impl goes through here.
    ``enable_gqa``: k and v hold G heads, G | H, and query head h reads kv head floor(h G / H)
    (SDPA repeat-interleaves them; spec: Algorithm 40).
    """
    attn_mask = None
    if mask is not None:
        attn_mask = mask.transpose(-1, -2)  # (.., l_x, l_z): SDPA's (query, key) order
        if causal:
            l_x, l_z = q.shape[-2], k.shape[-2]
            attn_mask = attn_mask & causal_mask(l_z, l_x, q.device).transpose(0, 1)
            causal = False
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal,
                                          enable_gqa=enable_gqa)


def causal_mask(l_z: int, l_x: int, device: torch.device | str | None = None,
                offset: int = 0) -> torch.Tensor:
    """Mask[t_z, t_x] = [t_z <= t_x + offset], shape (l_z, l_x) (spec: Algorithm 10, L6).

    ``offset`` is the number of tokens already cached before the first query (KV cache).
    """
    t_z = torch.arange(l_z, device=device)[:, None]
    t_x = torch.arange(l_x, device=device)[None, :]
    return t_z <= t_x + offset


def _check_inputs(X: torch.Tensor, Z: torch.Tensor) -> tuple[int, int, int, int, int]:
    check_tensor("X", X, ("B", "l_x", "d_x"))
    B, l_x, d_x = X.shape
    check_tensor("Z", Z, (B, "l_z", "d_z"), X.dtype)
    return B, l_x, d_x, Z.shape[1], Z.shape[2]


def check_single_head(X, Z, W_q, b_q, W_k, b_k, W_v, b_v, mask):
    """Shapes and dtypes of one head's inputs and W_qkv; returns the mask as None, (l_z, l_x)
    or (B, 1, l_z, l_x), ready to broadcast over a head axis."""
    B, l_x, d_x, l_z, d_z = _check_inputs(X, Z)
    d_attn, d_out = W_q.shape[0], W_v.shape[0]
    check_parameters([("W_q", W_q, (d_attn, d_x)), ("b_q", b_q, (d_attn,)),
                      ("W_k", W_k, (d_attn, d_z)), ("b_k", b_k, (d_attn,)),
                      ("W_v", W_v, (d_out, d_z)), ("b_v", b_v, (d_out,))], X.dtype)
    if mask is not None:
        check_batched_mask(mask, B, l_z, l_x)
        mask = mask if mask.ndim == 2 else mask[:, None]  # (B, 1, l_z, l_x)
    return mask


def attention(X: torch.Tensor, Z: torch.Tensor, W_q: torch.Tensor, b_q: torch.Tensor,
              W_k: torch.Tensor, b_k: torch.Tensor, W_v: torch.Tensor, b_v: torch.Tensor,
              mask: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
    """Single-head attention (spec: Algorithm 4, spec/algorithms/04-attention.md).

    X: (B, l_x, d_x), Z: (B, l_z, d_z), W_q/W_k: (d_attn, d_x/d_z), W_v: (d_out, d_z).
    Returns V_tilde: (B, l_x, d_out).
    """
    mask = check_single_head(X, Z, W_q, b_q, W_k, b_k, W_v, b_v, mask)
    q = F.linear(X, W_q, b_q)[:, None]  # (B, 1, l_x, d_attn), Alg 4 L1
    k = F.linear(Z, W_k, b_k)[:, None]  # (B, 1, l_z, d_attn), Alg 4 L2
    v = F.linear(Z, W_v, b_v)[:, None]  # (B, 1, l_z, d_out), Alg 4 L3
    return sdpa(q, k, v, mask, causal)[:, 0]  # (B, l_x, d_out)


def basic_attention(e: torch.Tensor, E_ctx: torch.Tensor, W_q: torch.Tensor, b_q: torch.Tensor,
                    W_k: torch.Tensor, b_k: torch.Tensor, W_v: torch.Tensor, b_v: torch.Tensor
                    ) -> torch.Tensor:
    """One query token attends to a context (spec: Algorithm 3, 03-basic-attention.md).

    e: (B, d_x), E_ctx: (B, l_z, d_z). Returns v_tilde: (B, d_out). It is Algorithm 4 with
    l_x = 1 and no mask.
    """
    check_tensor("e", e, ("B", "d_x"))
    check_tensor("E_ctx", E_ctx, (e.shape[0], "l_z", "d_z"), e.dtype)
    return attention(e[:, None, :], E_ctx, W_q, b_q, W_k, b_k, W_v, b_v)[:, 0]


def mh_attention(X: torch.Tensor, Z: torch.Tensor, W_q: torch.Tensor, b_q: torch.Tensor,
                 W_k: torch.Tensor, b_k: torch.Tensor, W_v: torch.Tensor, b_v: torch.Tensor,
                 W_o: torch.Tensor, b_o: torch.Tensor, mask: torch.Tensor | None = None,
                 causal: bool = False) -> torch.Tensor:
    """Multi-head attention (spec: Algorithm 5, spec/algorithms/05-mhattention.md).

    Heads are stacked on axis 0 as in the canonical parameters: W_q, W_k (H, d_attn, d_x/d_z),
    b_q, b_k (H, d_attn), W_v (H, d_mid, d_z), b_v (H, d_mid), W_o (d_out, H * d_mid),
    b_o (d_out,). All heads are projected by one matrix product each; the concatenation
    Y = [Y^0; ...; Y^{H-1}] puts head h at features h*d_mid:(h+1)*d_mid. Returns (B, l_x, d_out).
    """
    B, l_x, d_x, l_z, d_z = _check_inputs(X, Z)
    H, d_attn, d_mid, d_out = W_q.shape[0], W_q.shape[1], W_v.shape[1], W_o.shape[0]
    check_parameters([("W_q", W_q, (H, d_attn, d_x)), ("b_q", b_q, (H, d_attn)),
                      ("W_k", W_k, (H, d_attn, d_z)), ("b_k", b_k, (H, d_attn)),
                      ("W_v", W_v, (H, d_mid, d_z)), ("b_v", b_v, (H, d_mid)),
                      ("W_o", W_o, (d_out, H * d_mid)), ("b_o", b_o, (d_out,))], X.dtype)
    if mask is not None:
        check_batched_mask(mask, B, l_z, l_x)
        mask = mask if mask.ndim == 2 else mask[:, None]  # (B, 1, l_z, l_x)
    q = F.linear(X, W_q.reshape(H * d_attn, d_x), b_q.reshape(-1))  # (B, l_x, H*d_attn)
    k = F.linear(Z, W_k.reshape(H * d_attn, d_z), b_k.reshape(-1))  # (B, l_z, H*d_attn)
    v = F.linear(Z, W_v.reshape(H * d_mid, d_z), b_v.reshape(-1))  # (B, l_z, H*d_mid)
    q, k, v = (rearrange(t, "b l (h d) -> b h l d", h=H) for t in (q, k, v))
    Y = rearrange(sdpa(q, k, v, mask, causal), "b h l d -> b l (h d)")  # (B, l_x, H*d_mid)
    return F.linear(Y, W_o, b_o)  # (B, l_x, d_out)
