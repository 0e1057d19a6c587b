"""Adapter for ``torch.nn.TransformerEncoderLayer``: BERT-style layers we did not write.

    formal-transformers verify --impl conformance.examples.torch_encoder_layer:TorchEncoder

Algorithm 9 (the E transformer) is the embedding, L post-LN encoder layers, a final dense
layer with the activation, a layer norm and the unembedding. ``nn.TransformerEncoderLayer``
with ``norm_first=False`` and ``dropout=0`` is exactly one such layer:
``X <- LN1(X + MHA(X)); X <- LN2(X + MLP(X))``. This adapter builds the layers from PyTorch and
writes only the parts around them (embedding lookup, final dense layer, unembedding).

``canonical_views`` is the whole mapping between PyTorch's names and the spec's canonical names;
it serves both ways (load the parameters, read the gradients back).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from conformance.adapter import Adapter
from conformance.examples.torch_multihead_attention import canonical_views as attention_views

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu,
               "gelu_tanh": functools.partial(F.gelu, approximate="tanh")}


class Encoder(nn.Module):
    """Algorithm 9 around a stack of nn.TransformerEncoderLayer."""

    def __init__(self, c, dtype: torch.dtype):
        super().__init__()
        kw = {"dtype": dtype}
        self.config = c
        self.W_e = nn.Parameter(torch.empty(c.d_e, c.N_V, **kw))
        self.W_p = nn.Parameter(torch.empty(c.d_e, c.l_max, **kw))
        self.emb_ln = nn.LayerNorm(c.d_e, c.layer_norm_eps, **kw) \
            if c.embedding_layer_norm else None
        self.layers = nn.ModuleList(nn.TransformerEncoderLayer(
            c.d_e, c.H, c.d_mlp, dropout=0.0, activation=ACTIVATIONS[c.activation],
            layer_norm_eps=c.layer_norm_eps, batch_first=True, norm_first=False, **kw)
            for _ in range(c.L))
        self.dense = nn.Linear(c.d_e, c.d_e, **kw)  # W_f, b_f
        self.ln_f = nn.LayerNorm(c.d_e, c.layer_norm_eps, **kw)
        self.W_u = nn.Parameter(torch.empty(c.N_V, c.d_e, **kw))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Token ids (B, l) -> probabilities P (B, l, N_V)."""
        X = self.W_e.T[x] + self.W_p.T[: x.shape[1]]  # Alg 9 L2-3: (B, l, d_e)
        if self.emb_ln is not None:
            X = self.emb_ln(X)
        for layer in self.layers:
            X = layer(X)
        X = self.ln_f(ACTIVATIONS[self.config.activation](self.dense(X)))  # Alg 9 L10-11
        return torch.softmax(X @ self.W_u.T, dim=-1)

    def canonical_views(self, get) -> dict[str, torch.Tensor]:
        """Every canonical name of formal_transformers.canonical as a view of ``get(p)``."""
        views = {"W_e": get(self.W_e), "W_p": get(self.W_p), "W_u": get(self.W_u),
                 "W_f": get(self.dense.weight), "b_f": get(self.dense.bias),
                 "ln_f.gamma": get(self.ln_f.weight), "ln_f.beta": get(self.ln_f.bias)}
        if self.emb_ln is not None:
            views |= {"emb_ln.gamma": get(self.emb_ln.weight),
                      "emb_ln.beta": get(self.emb_ln.bias)}
        for l, layer in enumerate(self.layers):
            p = f"layers.{l}"
            views |= {f"{p}.mha.{k}": v for k, v in attention_views(layer.self_attn, get).items()}
            views |= {f"{p}.ln1.gamma": get(layer.norm1.weight),
                      f"{p}.ln1.beta": get(layer.norm1.bias),
                      f"{p}.ln2.gamma": get(layer.norm2.weight),
                      f"{p}.ln2.beta": get(layer.norm2.bias),
                      f"{p}.mlp.W_mlp1": get(layer.linear1.weight),
                      f"{p}.mlp.b_mlp1": get(layer.linear1.bias),
                      f"{p}.mlp.W_mlp2": get(layer.linear2.weight),
                      f"{p}.mlp.b_mlp2": get(layer.linear2.bias)}
        return views


class TorchEncoder(Adapter):
    """The E transformer with PyTorch's encoder layers (float32 and float64)."""

    name = "torch.nn.TransformerEncoderLayer (E transformer)"
    dtypes = ("float32", "float64")
    algorithms = ("e_transformer", "e_transformer_backward", "count_parameters")

    def model(self, params, config) -> Encoder:
        m = Encoder(config, torch.from_numpy(params["W_e"]).dtype)
        with torch.no_grad():
            for name, view in m.canonical_views(lambda p: p.data).items():
                view.copy_(torch.from_numpy(params[name]))
        return m.eval()

    def e_transformer(self, x, params, config):
        with torch.no_grad():
            return self.model(params, config)(torch.from_numpy(x)).numpy()

    def e_transformer_backward(self, x, params, config, dP):
        m = self.model(params, config)
        m(torch.from_numpy(x)).backward(torch.from_numpy(dP))
        return {k: v.numpy().copy() for k, v in m.canonical_views(lambda p: p.grad).items()}

    def count_parameters(self, algorithm, sizes):
        return sum(p.numel() for p in Encoder(sizes, torch.float32).parameters())
