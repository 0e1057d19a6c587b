"""The vision path, fast and batched (spec: Algorithms 75-78).

Layouts: images ``(B, C, h, w)`` (channel axis first, as torchvision and transformers take
them); patch rows ``(B, N, C P^2)`` -- the spec's X_p (C P^2, N) of image b is ``X_p[b].T``;
tokens ``(B, N + 1, d_e)`` with the class token first. ``patch_extraction`` is one
``einops.rearrange``; the patch projection is one ``nn.Linear`` on its rows, which equals a
convolution with kernel size and stride P (property patches.convolution_identity). The encoder
is the D transformer's pre-LN block without the causal mask (torch_impl/blocks.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn
from einops import rearrange

from formal_transformers.canonical import parameter_shapes
from formal_transformers.errors import ConfigError
from formal_transformers.hyperparameters import ViTConfig
from torch_impl._checks import check_tensor
from torch_impl.blocks import Get, LayerNorm, PreLNBlock
from torch_impl.models import CanonicalParameters


def patch_extraction(I: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Algorithm 75, batched: I (B, C, h, w) -> (B, N, C P^2), rows in the spec's order
    (patches row-major over the grid; channel, row, column inside a patch)."""
    check_tensor("I", I, ("B", "C", "h", "w"))
    P = patch_size
    if not isinstance(P, int) or isinstance(P, bool) or P < 1:
        raise ConfigError(f"patch_size must be a positive integer, got {P!r}")
    h, w = I.shape[2:]
    if h % P or w % P:
        raise ConfigError(f"patch_size P = {P} must divide the image height h = {h} and width "
                          f"w = {w}: a partial patch is never padded or dropped")
    return rearrange(I, "b c (nh p1) (nw p2) -> b (nh nw) (c p1 p2)", p1=P, p2=P)


class ViTClassifier(CanonicalParameters):
    """The ViT classifier (spec: Algorithm 77): images (B, C, h, w) -> logits (B, K).

    Canonical parameters as in formal_transformers.canonical.vit_parameter_shapes; the spec's
    p is the softmax of the logits (``probabilities``).
    """

    def __init__(self, config: ViTConfig):
        super().__init__()
        c = config
        self.config = c
        self.patch = nn.Linear(c.d_patch, c.d_e)  # weight W_pe, bias b_pe
        self.cls = nn.Parameter(torch.zeros(c.d_e))  # e_cls
        self.pos = (nn.Parameter(torch.zeros(c.n_patches + 1, c.d_e))  # W_p^T
                    if c.positions == "learned" else None)
        self.layers = nn.ModuleList(PreLNBlock(c.d_e, c.d_mlp, c.H, c.activation,
                                               c.layer_norm_eps, causal=False)
                                    for _ in range(c.L))
        self.ln_f = LayerNorm(c.d_e, eps=c.layer_norm_eps)
        self.head = nn.Linear(c.d_e, c.n_classes)  # W_head, b_head

    def canonical_views(self, get: Get) -> dict[str, torch.Tensor]:
        views = {"W_pe": get(self.patch.weight), "b_pe": get(self.patch.bias),
                 "e_cls": get(self.cls)}
        if self.pos is not None:
            views["W_p"] = get(self.pos).T
        for l, layer in enumerate(self.layers):
            views |= layer.canonical_views(f"layers.{l}", get)
        views |= self.ln_f.canonical_views("ln_f", get)
        views |= {"W_head": get(self.head.weight), "b_head": get(self.head.bias)}
        return {name: views[name] for name in parameter_shapes(self.config)}

    def embed_images(self, I: torch.Tensor) -> torch.Tensor:
        """Algorithm 76, batched: (B, C, h, w) -> X (B, N + 1, d_e)."""
        c = self.config
        check_tensor("I", I, ("B", c.C, c.height, c.width), self.patch.weight.dtype)
        E = self.patch(patch_extraction(I, c.patch_size))  # (B, N, d_e), Alg 76 L1-2
        cls = self.cls.expand(I.shape[0], 1, -1)  # Alg 76 L3
        X = torch.cat([cls, E], dim=1)  # Alg 76 L4
        return X + self.pos if self.pos is not None else X  # Alg 76 L5

    def forward(self, I: torch.Tensor) -> torch.Tensor:
        """I (B, C, h, w) -> logits W_head y + b_head: (B, n_classes) (Algorithm 77)."""
        X = self.embed_images(I)  # Alg 77 L1
        for layer in self.layers:
            X = layer(X)  # Alg 77 L2-6
        return self.head(self.ln_f(X[:, 0]))  # Alg 77 L7-8, before the softmax


@torch.no_grad()
def class_token_attention(model: ViTClassifier, I: torch.Tensor) -> torch.Tensor:
    """The attention weights of the class token (query column 0) over all N + 1 tokens in
    every layer and head: (B, L, H, N + 1), each row summing to one (Alg 77 L4, Alg 4 L6).

    Recomputed from the layers' own modules (the forward pass does not keep them)."""
    X = model.embed_images(I)
    out = []
    for layer in model.layers:
        mha = layer.mha
        B, T, _ = X.shape
        q, k, _v = mha.qkv(layer.ln1(X)).view(B, T, 3, mha.H, -1).permute(2, 0, 3, 1, 4)
        scores = q[:, :, :1] @ k.transpose(-1, -2) / q.shape[-1] ** 0.5  # (B, H, 1, T)
        out.append(torch.softmax(scores, dim=-1)[:, :, 0])
        X = layer(X)
    return torch.stack(out, dim=1)


def patch_embedding(I: torch.Tensor, params: Mapping[str, torch.Tensor], patch_size: int
                    ) -> torch.Tensor:
    """Algorithm 76 from parameters W_pe, b_pe, e_cls and optional W_p: (B, N + 1, d_e)."""
    rows = patch_extraction(I, patch_size)  # (B, N, C P^2)
    B, N, _ = rows.shape
    W_pe, b_pe, e_cls = params["W_pe"], params["b_pe"], params["e_cls"]
    d_e = W_pe.shape[0]
    check_tensor("W_pe", W_pe, (d_e, rows.shape[2]), I.dtype)
    check_tensor("b_pe", b_pe, (d_e,), I.dtype)
    check_tensor("e_cls", e_cls, (d_e,), I.dtype)
    X = torch.cat([e_cls.expand(B, 1, d_e), torch.nn.functional.linear(rows, W_pe, b_pe)],
                  dim=1)
    W_p = params.get("W_p")
    if W_p is not None:
        check_tensor("W_p", W_p, (d_e, N + 1), I.dtype)
        X = X + W_p.T
    return X


def vit_classifier(I: torch.Tensor, params: Mapping[str, object], config: ViTConfig
                   ) -> torch.Tensor:
    """p (B, n_classes) of the ViT classifier from canonical parameters (Algorithm 77)."""
    model = ViTClassifier.from_canonical(config, params)
    return torch.softmax(model(I), dim=-1)


def vit_classifier_backward(dp: torch.Tensor, I: torch.Tensor, params: Mapping[str, object],
                            config: ViTConfig) -> dict[str, torch.Tensor]:
    """Algorithm 78 by autograd: the gradients of sum(p * dp), dp (B, n_classes), for every
    canonical parameter (summed over the batch) and for the images ("I", (B, C, h, w))."""
    model = ViTClassifier.from_canonical(config, params)
    I = I.detach().clone().requires_grad_(True)
    p = torch.softmax(model(I), dim=-1)
    (p * dp).sum().backward()
    grads = {k: torch.from_numpy(v) for k, v in model.canonical_grads().items()}
    return grads | {"I": I.grad}
