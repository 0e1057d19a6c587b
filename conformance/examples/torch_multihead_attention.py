"""Adapter for ``torch.nn.MultiheadAttention``: code we did not write, held to the spec.

    formal-transformers verify \
        --impl conformance.examples.torch_multihead_attention:TorchMultiheadAttention

PyTorch's module implements Algorithm 5 at the shapes of a transformer layer: the query size
``embed_dim`` is split over the heads (d_attn = d_mid = d_x / H) and the output has d_out = d_x;
keys and values may come from a context of another size (``kdim = vdim = d_z``). ``constrain``
says so, and every other size of the suite's search is mapped onto these.

Parameters travel through *views*: each canonical name (``W_q`` of shape (H, d_attn, d_x), ...)
is a reshaped view of the module's own tensors, so the same table loads the spec's parameters
and reads the gradients back under the spec's names.

``TorchMultiheadAttention(bias=False)`` is ``nn.MultiheadAttention(..., bias=False)`` -- the
bias-free projections of Llama-style models -- and declares the variant ``bias = False``
(spec: 05-mhattention.md, "Declared variant: bias"): it has no b_q, b_k, b_v, b_o.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from conformance.adapter import Adapter


def canonical_views(m: nn.MultiheadAttention, get) -> dict[str, torch.Tensor]:
    """Views of ``get(parameter)`` under the spec's names (Algorithm 5's heads on axis 0).

    Head h owns rows h*d_head:(h+1)*d_head of each projection, as in torch's head split.
    """
    E, H = m.embed_dim, m.num_heads
    if m._qkv_same_embed_dim:
        W_q, W_k, W_v = get(m.in_proj_weight).view(3, E, E)
    else:
        W_q, W_k, W_v = get(m.q_proj_weight), get(m.k_proj_weight), get(m.v_proj_weight)
    views = {"W_q": W_q.view(H, E // H, -1), "W_k": W_k.view(H, E // H, -1),
             "W_v": W_v.view(H, E // H, -1), "W_o": get(m.out_proj.weight)}
    if m.in_proj_bias is None:  # nn.MultiheadAttention(bias=False): no b_* at all
        return views
    b_q, b_k, b_v = get(m.in_proj_bias).view(3, E)
    return views | {"b_q": b_q.view(H, E // H), "b_k": b_k.view(H, E // H),
                    "b_v": b_v.view(H, E // H), "b_o": get(m.out_proj.bias)}


class TorchMultiheadAttention(Adapter):
    """``torch.nn.MultiheadAttention(d_x, H, kdim=d_z, vdim=d_z, batch_first=True)``."""

    name = "torch.nn.MultiheadAttention"
    dtypes = ("float32", "float64")
    algorithms = ("mhattention", "mhattention_backward", "count_parameters")

    def __init__(self, bias: bool = True):
        self.bias = bias
        self.variants = {} if bias else {"bias": False}

    def constrain(self, algorithm, sizes):
        """d_x = d_out = H d_attn and d_mid = d_attn: embed_dim is split over the heads."""
        H, d_head = sizes["H"], sizes["d_attn"]
        return sizes | {"d_x": H * d_head, "d_mid": d_head, "d_out": H * d_head}

    def module(self, params, dtype) -> nn.MultiheadAttention:
        H, _, d_x = params["W_q"].shape
        d_z = params["W_k"].shape[2]
        m = nn.MultiheadAttention(d_x, H, kdim=d_z, vdim=d_z, batch_first=True, dtype=dtype,
                                  bias=self.bias)
        with torch.no_grad():
            for name, view in canonical_views(m, lambda p: p.data).items():
                view.copy_(torch.from_numpy(params[name]))
        return m.eval()

    def _run(self, X, Z, params, mask):
        m = self.module(params, torch.from_numpy(X).dtype)
        # torch's attn_mask is (l_x, l_z) with True = "may NOT attend": the spec's Mask, negated
        # and transposed.
        attn_mask = None if mask is None else torch.from_numpy(~mask.T)
        X_t = torch.from_numpy(X).requires_grad_(True)
        Z_t = torch.from_numpy(Z).requires_grad_(True)
        out, _ = m(X_t, Z_t, Z_t, attn_mask=attn_mask, need_weights=False)
        return m, X_t, Z_t, out

    def mhattention(self, X, Z, params, mask=None):
        with torch.no_grad():
            return self._run(X, Z, params, mask)[3].numpy()

    def mhattention_backward(self, X, Z, params, dY, mask=None):
        m, X_t, Z_t, out = self._run(X, Z, params, mask)
        out.backward(torch.from_numpy(dY))
        grads = {k: v.numpy().copy() for k, v in canonical_views(m, lambda p: p.grad).items()}
        # a bias the module does not have gets no gradient: report 0 rather than drop it
        zeros = {k: np.zeros_like(v) for k, v in params.items() if k not in grads}
        return {"X": X_t.grad.numpy(), "Z": Z_t.grad.numpy()} | grads | zeros

    def count_parameters(self, algorithm, sizes):
        m = nn.MultiheadAttention(sizes["d_x"], sizes["H"], kdim=sizes["d_z"],
                                  vdim=sizes["d_z"], bias=self.bias)
        return sum(p.numel() for p in m.parameters())

