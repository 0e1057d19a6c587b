"""Backward passes by autograd (spec: Algorithms 17-23, 17-23-*-backward.md).

torch_impl does not hand-write gradients: each ``<name>_backward`` runs the batched forward of
torch_impl under autograd and returns the vector-Jacobian product with the upstream gradient,
keyed by the names of the forward's arguments (``{"X": dX, "W_q": dW_q, ...}``), as
reference_numpy's hand-written backward passes are. The agreement tests compare the two.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from formal_transformers.errors import SpecShapeError
from torch_impl.attention import attention, mh_attention
from torch_impl.embeddings import positional_embedding, token_embedding
from torch_impl.layer_norm import layer_norm
from torch_impl.mlp import mlp
from torch_impl.training import token_log_loss
from torch_impl.unembedding import unembedding_logits


def vjp(forward: Callable[..., torch.Tensor], d_out: torch.Tensor,
        inputs: Mapping[str, torch.Tensor], **fixed: object) -> dict[str, torch.Tensor]:
    """Gradients of <d_out, forward(**inputs, **fixed)> with respect to every tensor of
    ``inputs`` (the differentiable ones); ``fixed`` are passed through untouched."""
    leaves = {k: v.detach().requires_grad_(True) for k, v in inputs.items()}
    with torch.enable_grad():
        out = forward(**leaves, **fixed)
        if tuple(d_out.shape) != tuple(out.shape):
            raise SpecShapeError(f"the upstream gradient must have the output's shape "
                                 f"{tuple(out.shape)}, got {tuple(d_out.shape)}")
        grads = torch.autograd.grad(out, list(leaves.values()), d_out, allow_unused=True)
    return {k: torch.zeros_like(v) if g is None else g
            for (k, v), g in zip(leaves.items(), grads, strict=True)}


def token_embedding_backward(de: torch.Tensor, x: torch.Tensor, W_e: torch.Tensor
                             ) -> dict[str, torch.Tensor]:
    """dW_e from de (B, l, d_e) (spec: Algorithm 17): {"W_e": (d_e, N_V)}."""
    return vjp(token_embedding, de, {"W_e": W_e}, x=x)


def positional_embedding_backward(de_p: torch.Tensor, l: int, W_p: torch.Tensor,
                                  offset: int = 0) -> dict[str, torch.Tensor]:
    """dW_p from de_p (l, d_e) (spec: Algorithm 18): {"W_p": (d_e, l_max)}."""
    return vjp(positional_embedding, de_p, {"W_p": W_p}, l=l, offset=offset)


def attention_backward(dV_tilde: torch.Tensor, X: torch.Tensor, Z: torch.Tensor,
                       W_q: torch.Tensor, b_q: torch.Tensor, W_k: torch.Tensor,
                       b_k: torch.Tensor, W_v: torch.Tensor, b_v: torch.Tensor,
                       mask: torch.Tensor | None = None, causal: bool = False
                       ) -> dict[str, torch.Tensor]:
    """Gradients of attention (spec: Algorithm 19): dV_tilde (B, l_x, d_out) ->
    {"X", "Z", "W_q", "b_q", "W_k", "b_k", "W_v", "b_v"}."""
    inputs = {"X": X, "Z": Z, "W_q": W_q, "b_q": b_q, "W_k": W_k, "b_k": b_k, "W_v": W_v,
              "b_v": b_v}
    return vjp(attention, dV_tilde, inputs, mask=mask, causal=causal)


def mhattention_backward(dV_tilde: torch.Tensor, X: torch.Tensor, Z: torch.Tensor,
                         W_q: torch.Tensor, b_q: torch.Tensor, W_k: torch.Tensor,
                         b_k: torch.Tensor, W_v: torch.Tensor, b_v: torch.Tensor,
                         W_o: torch.Tensor, b_o: torch.Tensor, mask: torch.Tensor | None = None,
                         causal: bool = False) -> dict[str, torch.Tensor]:
    """Gradients of multi-head attention (spec: Algorithm 20), heads stacked on axis 0."""
    inputs = {"X": X, "Z": Z, "W_q": W_q, "b_q": b_q, "W_k": W_k, "b_k": b_k, "W_v": W_v,
              "b_v": b_v, "W_o": W_o, "b_o": b_o}
    return vjp(mh_attention, dV_tilde, inputs, mask=mask, causal=causal)


def layer_norm_backward(de_hat: torch.Tensor, X: torch.Tensor, gamma: torch.Tensor,
                        beta: torch.Tensor, eps: float) -> dict[str, torch.Tensor]:
    """Gradients of layer norm (spec: Algorithm 21): {"X", "gamma", "beta"}."""
    return vjp(layer_norm, de_hat, {"X": X, "gamma": gamma, "beta": beta}, eps=eps)


def mlp_backward(dY: torch.Tensor, X: torch.Tensor, W_mlp1: torch.Tensor, b_mlp1: torch.Tensor,
                 W_mlp2: torch.Tensor, b_mlp2: torch.Tensor, activation: str
                 ) -> dict[str, torch.Tensor]:
    """Gradients of the MLP (spec: Algorithm 22): {"X", "W_mlp1", "b_mlp1", "W_mlp2", "b_mlp2"}."""
    inputs = {"X": X, "W_mlp1": W_mlp1, "b_mlp1": b_mlp1, "W_mlp2": W_mlp2, "b_mlp2": b_mlp2}
    return vjp(mlp, dY, inputs, activation=activation)


def unembedding_loss(X: torch.Tensor, W_u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-log softmax(W_u e)[y] at every position: X (B, l, d_e), y (B, l) -> (B, l)."""
    logits = unembedding_logits(X, W_u)  # (B, l, N_V)
    return token_log_loss(logits.flatten(0, -2)[:, None], y.reshape(-1, 1)).view(y.shape)


def unembedding_backward(dloss: torch.Tensor, X: torch.Tensor, W_u: torch.Tensor,
                         y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Gradients of the softmax cross-entropy -log softmax(W_u e)[y] (spec: Algorithm 23).

    dloss: (B, l) upstream gradient of each position's loss (ones for a plain sum).
    Returns {"X": (B, l, d_e), "W_u": (N_V, d_e)}.
    """
    return vjp(unembedding_loss, dloss, {"X": X, "W_u": W_u}, y=y)
