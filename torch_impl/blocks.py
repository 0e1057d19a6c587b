"""Transformer layers as nn.Modules (spec: Algorithms 5, 6, 16 inside Algorithms 8-10).

Each module stores its weights in the layout its fast path wants (one fused QKV matrix, one
fused KV matrix for cross-attention) and exposes them under the canonical names through
``canonical_views(prefix, get)``: a dict of *views* of its parameters in the spec's shapes.
Copying into a view loads canonical parameters; reading a view exports them; the same views
of ``p.grad`` give the gradients by canonical name. So the layout conversion lives in exactly
one place per module, and it is the same both ways. ``bias=False`` (the declared variant of
formal_transformers.hyperparameters) builds every Linear and LayerNorm without its bias: the
canonical b_* and beta entries are absent, i.e. zero.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from formal_transformers.canonical import layer_norm_shapes, mha_shapes, mlp_shapes
from torch_impl.attention import causal_mask, sdpa
from torch_impl.kv_cache import KVCache
from torch_impl.mlp import activation_function

Get = Callable[[nn.Parameter], torch.Tensor]  # a parameter -> its data or its gradient


def _head_views(W: torch.Tensor, b: torch.Tensor | None, H: int, names: tuple[str, ...],
                prefix: str) -> dict[str, torch.Tensor]:
    """Split fused projection rows [W^0 .. W^{H-1} of names[0]; of names[1]; ...] into views
    (H, d_head, d_in) and (H, d_head) named ``prefix.W_q``/``prefix.b_q`` etc. (no bias
    views when ``b`` is None)."""
    n = len(names)
    Ws = W.view(n, H, -1, W.shape[-1])  # (n, H, d_head, d_in)
    views = {}
    for i, s in enumerate(names):
        views[f"{prefix}.W_{s}"] = Ws[i]
        if b is not None:
            views[f"{prefix}.b_{s}"] = b.view(n, H, -1)[i]  # (H, d_head)
    return views


def _get(get: Get, p: nn.Parameter | None) -> torch.Tensor | None:
    return None if p is None else get(p)


def _bias_views(prefix: str, get: Get, **biases: nn.Parameter | None) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": get(v) for k, v in biases.items() if v is not None}


class MultiHeadAttention(nn.Module):
    """Multi-head attention with fused projections (spec: Algorithm 5).

    Self-attention (``cross=False``): one (3 d_e, d_e) matrix projects Q, K and V at once.
    Cross-attention (``cross=True``): Q from X, one (2 d_e, d_e) matrix projects K, V from Z.
    """

    def __init__(self, d_e: int, H: int, cross: bool = False, bias: bool = True):
        super().__init__()
        self.H, self.cross, self.bias = H, cross, bias
        if cross:
            self.q = nn.Linear(d_e, d_e, bias=bias)  # rows: W_q^0..W_q^{H-1}
            self.kv = nn.Linear(d_e, 2 * d_e, bias=bias)  # rows: W_k^h..; W_v^h..
        else:
            self.qkv = nn.Linear(d_e, 3 * d_e, bias=bias)  # rows: W_q^h..; W_k^h..; W_v^h..
        self.out = nn.Linear(d_e, d_e, bias=bias)  # W_o, b_o

    def canonical_views(self, prefix: str, get: Get) -> dict[str, torch.Tensor]:
        if self.cross:
            views = _head_views(get(self.q.weight), _get(get, self.q.bias), self.H, ("q",),
                                prefix)
            views |= _head_views(get(self.kv.weight), _get(get, self.kv.bias), self.H,
                                 ("k", "v"), prefix)
        else:
            views = _head_views(get(self.qkv.weight), _get(get, self.qkv.bias), self.H,
                                ("q", "k", "v"), prefix)
        views |= {f"{prefix}.W_o": get(self.out.weight)}
        views |= _bias_views(prefix, get, b_o=self.out.bias)
        d_e = self.out.weight.shape[0]
        assert {k: tuple(v.shape) for k, v in views.items()} == mha_shapes(
            prefix, self.H, d_e // self.H, d_e // self.H, d_e, d_e, d_e, self.bias)
        return views

    def context(self, Z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of a context Z (B, l_z, d_e): two (B, H, l_z, d_head) tensors."""
        B, l_z, _ = Z.shape
        k, v = self.kv(Z).view(B, l_z, 2, self.H, -1).permute(2, 0, 3, 1, 4)  # (B, H, l_z, d)
        return k, v

    def forward(self, X: torch.Tensor, causal: bool = False,
                kv: tuple[torch.Tensor, torch.Tensor] | None = None,
                cache: KVCache | None = None, layer: int = 0,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """X: (B, T, d_e). Self-attention over X (plus the cached tokens of ``layer`` when a
        cache is given), or cross-attention to precomputed context keys/values ``kv``.
        ``mask``: a padded batch's self-attention mask (torch_impl.padding): (B, 1, T, T)
        without a cache, the complete (B, 1, offset + T, T) one (causal included) with it."""
        # view/transpose rather than einops here: this is the decode loop's hot path
        B, T, _ = X.shape
        if self.cross:
            q = self.q(X).view(B, T, self.H, -1).transpose(1, 2)  # (B, H, T, d_head)
            assert kv is not None, "cross-attention needs the context's keys and values"
            k, v = kv
            y = sdpa(q, k, v, mask)  # Mask = 1 (or a padded context's real keys)
        else:
            qkv = self.qkv(X).view(B, T, 3, self.H, -1)  # (B, T, 3, H, d_head)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, d_head)
            if mask is not None and cache is not None:  # padded decoding: mask is complete
                k, v, _ = cache.update(layer, k, v)
                y = sdpa(q, k, v, mask)
            elif mask is not None:
                y = sdpa(q, k, v, mask, causal=causal)
            else:
                y = self._self_attend(q, k, v, causal, cache, layer)
        return self.out(y.transpose(1, 2).reshape(B, T, -1))  # (B, T, H * d_head)

    @staticmethod
    def _self_attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool,
                     cache: KVCache | None, layer: int) -> torch.Tensor:
        if cache is None:
            return sdpa(q, k, v, causal=causal)
        k, v, offset = cache.update(layer, k, v)  # (B, H, offset + T, d_head)
        T = q.shape[2]
        if offset == 0 or not causal:
            return sdpa(q, k, v, causal=causal)
        if T == 1:  # the newest token may attend to every cached token: no mask at all
            return sdpa(q, k, v)
        return sdpa(q, k, v, causal_mask(offset + T, T, q.device, offset=offset))


class MLP(nn.Module):
    """W_mlp2 phi(W_mlp1 X + b_mlp1) + b_mlp2 (spec: Algorithm 16)."""

    def __init__(self, d_e: int, d_mlp: int, activation: str, bias: bool = True):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d_e, d_mlp, bias=bias), nn.Linear(d_mlp, d_e, bias=bias)
        self.phi = activation_function(activation)

    def canonical_views(self, prefix: str, get: Get) -> dict[str, torch.Tensor]:
        views = {f"{prefix}.W_mlp1": get(self.fc1.weight), f"{prefix}.W_mlp2": get(self.fc2.weight)}
        views |= _bias_views(prefix, get, b_mlp1=self.fc1.bias, b_mlp2=self.fc2.bias)
        assert {k: tuple(v.shape) for k, v in views.items()} == mlp_shapes(
            prefix, self.fc1.in_features, self.fc1.out_features, self.fc1.bias is not None)
        return views

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.phi(self.fc1(X)))  # (B, T, d_e)


class LayerNorm(nn.LayerNorm):
    """Layer norm with the spec's eps (spec: Algorithm 6); gamma = weight, beta = bias."""

    def canonical_views(self, prefix: str, get: Get) -> dict[str, torch.Tensor]:
        views = {f"{prefix}.gamma": get(self.weight)} | _bias_views(prefix, get, beta=self.bias)
        assert {k: tuple(v.shape) for k, v in views.items()} == layer_norm_shapes(
            prefix, self.weight.shape[0], self.bias is not None)
        return views


def _views(prefix: str, get: Get, **modules: nn.Module) -> dict[str, torch.Tensor]:
    views: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        views |= module.canonical_views(f"{prefix}.{name}", get)  # type: ignore[operator]
    return views


class PreLNBlock(nn.Module):
    """One pre-LN layer: of the D transformer with the causal mask (spec: Algorithm 10, L4-8),
    or of the ViT encoder without a mask (``causal=False``, Algorithm 77, L2-6)."""

    def __init__(self, d_e: int, d_mlp: int, H: int, activation: str, eps: float,
                 causal: bool = True, bias: bool = True):
        super().__init__()
        self.causal = causal
        self.ln1 = LayerNorm(d_e, eps=eps, bias=bias)
        self.mha = MultiHeadAttention(d_e, H, bias=bias)
        self.ln2 = LayerNorm(d_e, eps=eps, bias=bias)
        self.mlp = MLP(d_e, d_mlp, activation, bias)

    def canonical_views(self, prefix: str, get: Get) -> dict[str, torch.Tensor]:
        return _views(prefix, get, ln1=self.ln1, mha=self.mha, ln2=self.ln2, mlp=self.mlp)

    def forward(self, X: torch.Tensor, cache: KVCache | None = None, layer: int = 0,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        X = X + self.mha(self.ln1(X), causal=self.causal, cache=cache, layer=layer, mask=mask)
        return X + self.mlp(self.ln2(X))


class PostLNEncoderBlock(nn.Module):
    """One encoder layer, post-LN (spec: Algorithm 9 L5-8; Algorithm 8 L5-8)."""

    def __init__(self, d_e: int, d_mlp: int, H: int, activation: str, eps: float,
                 bias: bool = True):
        super().__init__()
        self.mha, self.ln1 = MultiHeadAttention(d_e, H, bias=bias), LayerNorm(d_e, eps=eps,
                                                                             bias=bias)
        self.mlp, self.ln2 = MLP(d_e, d_mlp, activation, bias), LayerNorm(d_e, eps=eps,
                                                                         bias=bias)

    def canonical_views(self, prefix: str, get: Get) -> dict[str, torch.Tensor]:
        return _views(prefix, get, mha=self.mha, ln1=self.ln1, mlp=self.mlp, ln2=self.ln2)

    def forward(self, X: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        X = self.ln1(X + self.mha(X, mask=mask))
        return self.ln2(X + self.mlp(X))


class PostLNDecoderBlock(nn.Module):
    """One decoder layer of the ED transformer, post-LN (spec: Algorithm 8, L13-18)."""

    def __init__(self, d_e: int, d_mlp: int, H: int, activation: str, eps: float,
                 bias: bool = True):
        super().__init__()
        self.self_mha = MultiHeadAttention(d_e, H, bias=bias)
        self.ln3 = LayerNorm(d_e, eps=eps, bias=bias)
        self.cross_mha = MultiHeadAttention(d_e, H, cross=True, bias=bias)
        self.ln4 = LayerNorm(d_e, eps=eps, bias=bias)
        self.mlp, self.ln5 = MLP(d_e, d_mlp, activation, bias), LayerNorm(d_e, eps=eps,
                                                                         bias=bias)

    def canonical_views(self, prefix: str, get: Get) -> dict[str, torch.Tensor]:
        return _views(prefix, get, self_mha=self.self_mha, ln3=self.ln3,
                      cross_mha=self.cross_mha, ln4=self.ln4, mlp=self.mlp, ln5=self.ln5)

    def forward(self, X: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor],
                cache: KVCache | None = None, layer: int = 0, mask: torch.Tensor | None = None,
                cross_mask: torch.Tensor | None = None) -> torch.Tensor:
        """X: (B, T, d_e); kv: this layer's keys/values of the encoder output Z; ``mask`` /
        ``cross_mask``: a padded batch's self- and cross-attention masks (torch_impl.padding)."""
        X = self.ln3(X + self.self_mha(X, causal=True, cache=cache, layer=layer, mask=mask))
        X = self.ln4(X + self.cross_mha(X, kv=kv, mask=cross_mask))
        return self.ln5(X + self.mlp(X))
