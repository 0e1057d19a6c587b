"""Adapter for PyTorch's ``F.scaled_dot_product_attention(enable_gqa=True)``: code we did not
write, held to the spec of grouped-query attention (Algorithm 40).

    formal-transformers verify --impl examples.torch_sdpa_gqa:TorchSDPAGQA

The projections and the output map are plain matrix products written here; the attention of
the H query heads to the G kv heads is PyTorch's fused kernel with ``enable_gqa=True``, which
torch 2.13 documents as ``repeat_interleave``-ing the kv heads H // G times -- the spec's
floor(h G / H). ``mhattention`` is the same kernel with G = H, so that the laws linking the two
(gqa.full_groups_is_mha, gqa.duplicated_kv_is_mha) compare PyTorch with itself, not with
torch_impl. Masks: the spec's ``Mask[t_z, t_x]`` is SDPA's ``attn_mask[t_x, t_z]``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from conformance.adapter import Adapter


def _heads(X: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, l, d) with W (n, e, d), b (n, e) -> (B, n, l, e): W^h X + b^h for every head h."""
    return torch.einsum("bld,ned->bnle", X, W) + b[None, :, None, :]


class TorchSDPAGQA(Adapter):
    """Grouped-query attention by F.scaled_dot_product_attention(enable_gqa=True)."""

    name = "torch F.scaled_dot_product_attention(enable_gqa=True)"
    dtypes = ("float32", "float64")
    algorithms = ("gq_attention", "mhattention")

    def gq_attention(self, X, Z, params, mask=None):
        p = {k: torch.from_numpy(v) for k, v in params.items()}
        X_t, Z_t = torch.from_numpy(X), torch.from_numpy(Z)
        q = _heads(X_t, p["W_q"], p["b_q"])  # (B, H, l_x, d_attn)
        k = _heads(Z_t, p["W_k"], p["b_k"])  # (B, G, l_z, d_attn)
        v = _heads(Z_t, p["W_v"], p["b_v"])  # (B, G, l_z, d_mid)
        attn_mask = None if mask is None else torch.from_numpy(np.ascontiguousarray(mask.T))
        Y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, enable_gqa=True)
        Y = Y.transpose(1, 2).reshape(X.shape[0], X.shape[1], -1)  # (B, l_x, H*d_mid)
        return (Y @ p["W_o"].T + p["b_o"]).numpy()

    def mhattention(self, X, Z, params, mask=None):
        return self.gq_attention(X, Z, params, mask)
