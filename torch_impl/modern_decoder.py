"""The modern decoder-only transformer as an nn.Module (spec: Algorithm 65,
spec/algorithms/65-modern-d-transformer.md).

Layout (B, T, features). Fused projections: one (H + 2G) d_head x d_e matrix for Q, K, V and
one 2 d_mlp x d_e matrix for gate and up; the canonical names are views of them
(``canonical_views``), as in torch_impl/blocks.py. Attention goes through SDPA with
``enable_gqa`` (query head h reads kv head floor(h G / H)) and a boolean mask built from
absolute positions (causal, and the layer's window); with soft-capping, which SDPA cannot do,
the scores are formed explicitly. ``RingKVCache`` stores G heads and, for a windowed layer, at
most w positions.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from formal_transformers.canonical import parameter_shapes
from formal_transformers.errors import SequenceLengthError
from formal_transformers.hyperparameters import ModernDTransformerConfig
from torch_impl._checks import check_token_batch
from torch_impl.alibi import alibi
from torch_impl.models import CanonicalParameters, Get, probabilities
from torch_impl.modern_primitives import Norm, mlp_activation
from torch_impl.qk_norm import qk_norm
from torch_impl.ring_kv_cache import RingKVCache
from torch_impl.rope import rope
from torch_impl.softcap import capped_sdpa, soft_cap


class GQAttention(nn.Module):
    """Grouped-query causal self-attention with RoPE / ALiBi, QK-norm, soft-capping and a
    sliding window (spec: Algorithm 65, lines 6-13)."""

    def __init__(self, c: ModernDTransformerConfig, window: int | None):
        super().__init__()
        self.c, self.window = c, window
        H, G, d = c.H, c.G, c.d_head
        self.qkv = nn.Linear(c.d_e, (H + 2 * G) * d, bias=c.attention_bias in ("qkv", "all"))
        self.out = nn.Linear(H * d, c.d_e, bias=c.attention_bias == "all")
        if c.qk_norm == "none":
            self.q_gamma = self.k_gamma = None
        else:  # Algorithm 44's gains: (d_head,) per head, (heads d_head,) over the projection
            per_head = c.qk_norm == "per_head"
            self.q_gamma = nn.Parameter(torch.ones(d if per_head else H * d))
            self.k_gamma = nn.Parameter(torch.ones(d if per_head else G * d))

    def canonical_views(self, prefix: str, get: Get) -> dict[str, torch.Tensor]:
        c = self.c
        W = get(self.qkv.weight)  # rows: W_q^0..W_q^{H-1}; W_k^0..W_k^{G-1}; W_v^0..
        sizes = [c.H * c.d_head, c.G * c.d_head, c.G * c.d_head]
        heads = (c.H, c.G, c.G)
        views = {f"{prefix}.W_{s}": w.view(n, c.d_head, c.d_e)
                 for s, w, n in zip("qkv", W.split(sizes), heads, strict=True)}
        if self.qkv.bias is not None:
            views |= {f"{prefix}.b_{s}": b.view(n, c.d_head)
                      for s, b, n in zip("qkv", get(self.qkv.bias).split(sizes), heads,
                                         strict=True)}
        if self.q_gamma is not None:
            views[f"{prefix}.q_norm.gamma"] = get(self.q_gamma)
            views[f"{prefix}.k_norm.gamma"] = get(self.k_gamma)
        views[f"{prefix}.W_o"] = get(self.out.weight)
        if self.out.bias is not None:
            views[f"{prefix}.b_o"] = get(self.out.bias)
        return views

    def forward(self, X: torch.Tensor, offset: int, cache: RingKVCache | None, layer: int
                ) -> torch.Tensor:
        """X: (B, T, d_e) at positions offset .. offset + T - 1 -> (B, T, d_e)."""
        c = self.c
        B, T, _ = X.shape
        q, k, v = self.qkv(X).split([c.H * c.d_head, c.G * c.d_head, c.G * c.d_head], dim=-1)
        q = q.view(B, T, c.H, c.d_head).transpose(1, 2)  # (B, H, T, d_head)
        k = k.view(B, T, c.G, c.d_head).transpose(1, 2)  # (B, G, T, d_head)
        v = v.view(B, T, c.G, c.d_head).transpose(1, 2)  # (B, G, T, d_head)
        if self.q_gamma is not None:  # Algorithm 44
            q = qk_norm(q, self.q_gamma, c.qk_norm, c.norm_eps)
            k = qk_norm(k, self.k_gamma, c.qk_norm, c.norm_eps)
        q_pos = torch.arange(offset, offset + T, device=X.device)
        if c.positions == "rope":
            q, k = self.rotate(q, k, q_pos)
        if cache is not None:
            k, v, k_pos = cache.update(layer, k, v)  # (B, G, n, d_head), (n,)
        else:
            k_pos = q_pos
        allowed = self.visible(q_pos, k_pos, cache)  # (T, n)
        y = self._attend(q, k, v, allowed, q_pos, k_pos)  # (B, H, T, d_head)
        return self.out(y.transpose(1, 2).reshape(B, T, c.H * c.d_head))

    def rotate(self, q: torch.Tensor, k: torch.Tensor, q_pos: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE (Algorithm 25) of the queries (B, H, T, d) and keys (B, G, T, d) at q_pos."""
        return rope(q, q_pos, self.c.rope), rope(k, q_pos, self.c.rope)

    def visible(self, q_pos: torch.Tensor, k_pos: torch.Tensor, cache: RingKVCache | None
                ) -> torch.Tensor:
        """Mask[t_z, t_x] in (query, key) order: causal, and t_z > t_x - w with a window."""
        allowed = k_pos[None, :] <= q_pos[:, None]  # (T, n)
        if self.window is not None:
            allowed = allowed & (k_pos[None, :] > q_pos[:, None] - self.window)
        return allowed

    def _attend(self, q, k, v, allowed, q_pos, k_pos) -> torch.Tensor:
        """q (B, H, T, d), k and v (B, G, n, d), allowed (T, n) -> (B, H, T, d)."""
        c = self.c
        if c.attn_softcap is not None:  # Algorithm 46's math path; its scale is 1/sqrt(d)
            q = q * (c.scale * c.d_head ** 0.5)
            return capped_sdpa(q, k, v, c.attn_softcap, mask=allowed.transpose(0, 1))
        mask = allowed
        if c.positions == "alibi":  # the bias rides in SDPA's float mask, -inf where masked
            bias = alibi(q_pos, k_pos, c.H, dtype=q.dtype)  # (H, T, n), Algorithm 26
            mask = bias.masked_fill(~allowed, float("-inf"))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=c.scale,
                                              enable_gqa=c.G != c.H)


class GatedMLP(nn.Module):
    """W_down (phi(W_gate X + b_gate) * (W_up X + b_up)) + b_down, or the plain MLP of
    Algorithm 16 (spec: Algorithm 65, line 16)."""

    def __init__(self, c: ModernDTransformerConfig):
        super().__init__()
        self.gated, self.d_mlp = c.mlp == "gated", c.d_mlp
        self.fc1 = nn.Linear(c.d_e, (2 if self.gated else 1) * c.d_mlp, bias=c.mlp_bias)
        self.fc2 = nn.Linear(c.d_mlp, c.d_e, bias=c.mlp_bias)
        self.phi = mlp_activation(c.activation, self.gated)

    def canonical_views(self, prefix: str, get: Get) -> dict[str, torch.Tensor]:
        W, b = get(self.fc1.weight), get(self.fc1.bias) if self.fc1.bias is not None else None
        if self.gated:
            views = dict(zip((f"{prefix}.W_gate", f"{prefix}.W_up"), W.split(self.d_mlp),
                             strict=True))
            views[f"{prefix}.W_down"] = get(self.fc2.weight)
            if b is not None:
                views |= {f"{prefix}.b_gate": b[:self.d_mlp], f"{prefix}.b_up": b[self.d_mlp:],
                          f"{prefix}.b_down": get(self.fc2.bias)}
            return views
        views = {f"{prefix}.W_mlp1": W, f"{prefix}.W_mlp2": get(self.fc2.weight)}
        if b is not None:
            views |= {f"{prefix}.b_mlp1": b, f"{prefix}.b_mlp2": get(self.fc2.bias)}
        return views

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if not self.gated:
            return self.fc2(self.phi(self.fc1(X)))
        gate, up = self.fc1(X).split(self.d_mlp, dim=-1)  # (B, T, d_mlp) each
        return self.fc2(self.phi(gate) * up)


class ModernBlock(nn.Module):
    """One pre-norm layer (spec: Algorithm 65, lines 5-18)."""

    def __init__(self, c: ModernDTransformerConfig, window: int | None):
        super().__init__()
        def norm() -> Norm:
            return Norm(c.d_e, c.norm, c.norm_eps, c.norm_offset)
        self.ln1, self.mha, self.ln2, self.mlp = norm(), GQAttention(c, window), norm(), GatedMLP(c)
        self.ln1_post = norm() if c.post_norms else None
        self.ln2_post = norm() if c.post_norms else None

    def canonical_views(self, prefix: str, get: Get) -> dict[str, torch.Tensor]:
        views: dict[str, torch.Tensor] = {}
        for name in ("ln1", "mha", "ln1_post", "ln2", "mlp", "ln2_post"):
            module = getattr(self, name)
            if module is not None:
                views |= module.canonical_views(f"{prefix}.{name}", get)
        return views

    def forward(self, X, offset, cache, layer):
        A = self.mha(self.ln1(X), offset, cache, layer)
        X = X + (self.ln1_post(A) if self.ln1_post is not None else A)
        M = self.mlp(self.ln2(X))
        return X + (self.ln2_post(M) if self.ln2_post is not None else M)


class ModernDTransformer(CanonicalParameters):
    """Modern decoder-only transformer (spec: Algorithm 65): logits (B, T, N_V)."""

    def __init__(self, config: ModernDTransformerConfig):
        super().__init__()
        c = self.config = config
        self.wte = nn.Embedding(c.N_V, c.d_e)  # weight = W_e^T (N_V, d_e)
        self.wpe = nn.Embedding(c.l_max, c.d_e) if c.positions == "learned" else None
        self.layers = nn.ModuleList(ModernBlock(c, c.window(l)) for l in range(c.L))
        self.ln_f = Norm(c.d_e, c.norm, c.norm_eps, c.norm_offset)
        self.lm_head = None if c.tie_embeddings else nn.Linear(c.d_e, c.N_V, bias=False)

    def canonical_views(self, get: Get) -> dict[str, torch.Tensor]:
        views = {"W_e": get(self.wte.weight).T}
        if self.wpe is not None:
            views["W_p"] = get(self.wpe.weight).T
        for l, layer in enumerate(self.layers):
            views |= layer.canonical_views(f"layers.{l}", get)
        views |= self.ln_f.canonical_views("ln_f", get)
        if self.lm_head is not None:
            views["W_u"] = get(self.lm_head.weight)
        return {name: views[name] for name in parameter_shapes(self.config)}

    def new_cache(self, B: int, capacity: int | None = None) -> RingKVCache:
        """An empty cache: G heads per layer, w slots for a layer with window w."""
        c, w = self.config, self.wte.weight
        return RingKVCache([c.window(l) for l in range(c.L)], B, c.G, capacity or c.l_max,
                           c.d_head, w.dtype, w.device)

    def check_tokens(self, name: str, x: torch.Tensor, offset: int = 0) -> None:
        """x: (B, l) ids in [0, N_V) that fit in the context after ``offset`` cached tokens
        (skipped while torch.compile traces: the range check reads data)."""
        if torch.compiler.is_compiling():
            return
        check_token_batch(name, x, self.config.N_V, self.config.l_max)
        if offset + x.shape[1] > self.config.l_max:
            raise SequenceLengthError(f"{name} has {x.shape[1]} tokens after {offset} cached "
                                      f"ones, more than l_max = {self.config.l_max}")

    def forward(self, x: torch.Tensor, cache: RingKVCache | None = None) -> torch.Tensor:
        """x: (B, T) ids after ``cache.length`` cached tokens -> logits (B, T, N_V)."""
        offset = cache.length if cache is not None else 0
        self.check_tokens("x", x, offset)
        return self._logits(x, cache, offset)

    def last_logits(self, x: torch.Tensor, cache: RingKVCache | None) -> torch.Tensor:
        """Logits of the last position only, (B, N_V), without input checks: the decode step
        of Algorithm 14 (torch_impl.inference.d_inference)."""
        offset = cache.length if cache is not None else 0
        return self._logits(x, cache, offset, last_only=True)[:, -1]

    def _logits(self, x, cache, offset, last_only: bool = False):
        """Alg 65 L2-L12; ``last_only``: the final norm and W_u of the last column alone."""
        c = self.config
        X = self.wte(x)  # (B, T, d_e), Alg 65 L2
        if c.embedding_scale:
            X = X * torch.tensor(c.d_e ** 0.5, dtype=X.dtype)
        if self.wpe is not None:
            X = X + self.wpe.weight[offset:offset + x.shape[1]]
        for l, layer in enumerate(self.layers):
            X = layer(X, offset, cache, l)
        if cache is not None:
            cache.advance(x.shape[1])
        if last_only:  # a decode step needs P[:, l - 1] only: N_V x 1, not N_V x l logits
            X = X[:, -1:]
        logits = self.unembed(self.ln_f(X))
        return soft_cap(logits, c.final_softcap) if c.final_softcap is not None else logits


    def unembed(self, X: torch.Tensor) -> torch.Tensor:
        """W_u X for X (B, T, d_e): the tied W_e^T or lm_head (Alg 65 L20) -> (B, T, N_V)."""
        return X @ self.wte.weight.T if self.lm_head is None else self.lm_head(X)


def modern_d_transformer(x: torch.Tensor, params: Mapping[str, object],
                         config: ModernDTransformerConfig) -> torch.Tensor:
    """P (B, l, N_V) of the modern D transformer from canonical parameters (Algorithm 65)."""
    return probabilities(ModernDTransformer.from_canonical(config, params)(x))


def modern_d_transformer_backward(dP: torch.Tensor, x: torch.Tensor,
                                  params: Mapping[str, object],
                                  config: ModernDTransformerConfig) -> dict[str, torch.Tensor]:
    """Algorithm 66 by autograd: the gradients of sum(P * dP), dP (B, l, N_V), for every
    canonical parameter of ``config`` (summed over the batch)."""
    return probability_vjp(ModernDTransformer.from_canonical(config, params), x, dP)


def probability_vjp(model: ModernDTransformer, x: torch.Tensor, dP: torch.Tensor
                    ) -> dict[str, torch.Tensor]:
    """The canonical gradients of sum(P * dP) by autograd through ``model``, P its
    probabilities of the tokens x (B, l)."""
    (probabilities(model(x)) * dP).sum().backward()
    return {k: torch.from_numpy(v) for k, v in model.canonical_grads().items()}
