"""ONNX export of torch_impl's architectures, with the canonical parameters as graph inputs.

``export_probabilities(config, arch)`` exports the D, E or ED transformer's probabilities
P = softmax(W_u X) (spec: Algorithms 8-10) with ``torch.onnx.export(..., dynamo=True)`` (the
torch.export-based exporter, torch >= 2.9's default; the TorchScript exporter cannot trace
torch.func.functional_call). The graph's inputs are the token ids (B, l) int64 -- B and
l dynamic, l at most l_max -- and one input per canonical parameter name
(formal_transformers.canonical), so one export serves every parameter draw of its config.
The config (sizes, activation, eps) is baked into the graph: an adapter over the graph fixes
it through ``constrain``.

ONNX Runtime's CPU kernels have no float64 Erf, so the exact-GELU graph runs in float32 only.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from formal_transformers.canonical import parameter_shapes
from torch_impl.models import DTransformer, EDTransformer, ETransformer

MODELS = {"d_transformer": DTransformer, "e_transformer": ETransformer,
          "ed_transformer": EDTransformer}


class _Probabilities(nn.Module):
    """P = softmax(logits) of ``model`` (its token checks are skipped while torch.export
    traces: they read data)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *tokens: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(*tokens), dim=-1)


class _CanonicalInputs(nn.Module):
    """forward(x, canon): the module parameters assembled from the canonical tensors.

    Each canonical name is a view (transpose, slice of a fused projection) of a module
    parameter (CanonicalModel.canonical_views); writing the canonical tensors into zero
    tensors through the same views gives the parameters, whatever the fusion."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.inner = _Probabilities(model)
        self.names = list(parameter_shapes(model.config))

    def forward(self, tokens: tuple[torch.Tensor, ...], canon: dict[str, torch.Tensor]
                ) -> torch.Tensor:
        model = self.inner.model
        state = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
        key = {id(p): k for k, p in model.named_parameters()}
        views = model.canonical_views(lambda p: state[key[id(p)]])
        for name in self.names:
            views[name].copy_(canon[name])
        return functional_call(self.inner, {f"model.{k}": v for k, v in state.items()},
                               tokens)


def export_probabilities(config: Any, arch: str = "d_transformer",
                         dtype: torch.dtype = torch.float32) -> bytes:
    """The ONNX model (bytes) of ``arch``'s probabilities for ``config``; inputs the token ids
    (``z`` then ``x`` for the encoder-decoder, else ``x``), then the canonical names in
    canonical order; output P (B, l_x, N_V)."""
    model = MODELS[arch](config).to(dtype).eval()
    graph = _CanonicalInputs(model)
    names = graph.names
    canon = {n: torch.zeros(s, dtype=dtype) for n, s in parameter_shapes(config).items()}
    inputs = ["z", "x"] if arch == "ed_transformer" else ["x"]
    B = torch.export.Dim("B", max=1024)
    lengths = {n: torch.export.Dim(f"l_{n}", max=config.l_max) for n in inputs}
    tokens = tuple(torch.zeros((2, min(2, config.l_max)), dtype=torch.int64) for _ in inputs)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (), buf, kwargs={"tokens": tokens, "canon": canon},
                          dynamo=True, input_names=[*inputs, *names], output_names=["P"],
                          dynamic_shapes={"tokens": tuple({0: B, 1: lengths[n]} for n in inputs),
                                          "canon": dict.fromkeys(names)},
                          verbose=False)
    return buf.getvalue()
