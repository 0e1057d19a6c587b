"""Adapter for PyTorch's own layers, in every dtype the protocol knows: code we did not write.

    formal-transformers verify --impl examples.torch_layers:TorchLayers

``F.embedding`` (Algorithms 1-2), ``F.scaled_dot_product_attention`` (3-4),
``nn.MultiheadAttention`` (5, through examples/torch_multihead_attention.py), ``F.layer_norm``
(6), ``F.linear`` + ``softmax`` (7) and ``F.linear`` + activation (16), with their gradients by
autograd. A correct implementation in float16 or bfloat16 must pass the suite honestly: this
adapter is the test of the suite's low-precision tolerances (tests/conformance). ``dtypes`` may
be narrowed, e.g. ``TorchLayers(("float16",))`` runs every check in float16.

``TorchLayers(bias=False)`` builds every layer without its bias -- ``F.linear(x, W)``,
``nn.MultiheadAttention(bias=False)``, ``F.layer_norm`` without beta (``nn.LayerNorm(bias=
False)``), the Llama-style bias-free projections -- and declares the variant ``bias = False``
(spec: "Declared variant: bias" of Algorithms 3-6 and 16): it never reads a b_* or beta.
``TorchLayers(padding_idx=p)`` embeds with ``F.embedding(..., padding_idx=p)`` and declares
the variant ``padding_idx`` (spec: Algorithm 1, "Declared variant").

bfloat16 arrays are NumPy arrays of ``ml_dtypes.bfloat16``; torch reads them as int16 bits.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from conformance.adapter import Adapter
from conformance.adapters.torch_adapter import _np as to_numpy
from conformance.adapters.torch_adapter import _t
from conformance.examples.torch_multihead_attention import TorchMultiheadAttention, canonical_views

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu,
               "gelu_tanh": functools.partial(F.gelu, approximate="tanh")}


def to_torch(a: np.ndarray | None, grad: bool = False) -> torch.Tensor | None:
    """A tensor of a NumPy array (bfloat16 through its bits); ``grad``: a leaf with grad."""
    t = _t(a)
    return t.clone().requires_grad_(True) if grad and t is not None else t


def _leaves(arrays: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: to_torch(v, grad=True) for k, v in arrays.items()}


def _grads(out: torch.Tensor, upstream: np.ndarray, leaves: Mapping[str, torch.Tensor]
           ) -> dict[str, np.ndarray]:
    out.backward(to_torch(upstream))
    return {k: to_numpy(v.grad if v.grad is not None else torch.zeros_like(v))
            for k, v in leaves.items()}


class TorchLayers(Adapter):
    """torch.nn.functional and nn.MultiheadAttention behind the protocol, in four dtypes."""

    name = "torch.nn layers"
    dtypes = ("float64", "float32", "float16", "bfloat16")
    algorithms = ("token_embedding", "positional_embedding", "basic_attention", "attention",
                  "mhattention", "layer_norm", "unembedding", "mlp",
                  "token_embedding_backward", "positional_embedding_backward",
                  "attention_backward", "mhattention_backward", "layer_norm_backward",
                  "mlp_backward", "unembedding_backward", "count_parameters")

    def __init__(self, dtypes: tuple[str, ...] | None = None, bias: bool = True,
                 padding_idx: int | None = None):
        if dtypes is not None:
            self.dtypes = tuple(dtypes)
        self.bias, self.padding_idx = bias, padding_idx
        self.variants = ({} if bias else {"bias": False}) | (
            {} if padding_idx is None else {"padding_idx": padding_idx})
        self.mha = TorchMultiheadAttention(bias)

    def constrain(self, algorithm, sizes):
        if algorithm == "mhattention":
            return self.mha.constrain(algorithm, sizes)
        return sizes

    # -- the layers on tensors ------------------------------------------------------------------
    def _b(self, p, name):
        """The bias ``name`` of a biased layer; None (no bias) for a bias-free one."""
        return p[name] if self.bias else None

    def _attention(self, X, Z, p, mask):
        q, k = F.linear(X, p["W_q"], self._b(p, "b_q")), F.linear(Z, p["W_k"], self._b(p, "b_k"))
        v = F.linear(Z, p["W_v"], self._b(p, "b_v"))
        # SDPA's attn_mask is (l_x, l_z) with True = may attend: the spec's Mask transposed.
        return F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None
                                              else mask.T)

    def _layer_norm(self, X, p, eps):
        return F.layer_norm(X, X.shape[-1:], p["gamma"], self._b(p, "beta"), eps)

    def _mlp(self, X, p, activation):
        hidden = ACTIVATIONS[activation](F.linear(X, p["W_mlp1"], self._b(p, "b_mlp1")))
        return F.linear(hidden, p["W_mlp2"], self._b(p, "b_mlp2"))

    @staticmethod
    def _probs(X, p):
        return torch.softmax(F.linear(X, p["W_u"]), dim=-1)

    # -- forward -------------------------------------------------------------------------------
    def token_embedding(self, x, params):
        return to_numpy(F.embedding(torch.from_numpy(x), to_torch(params["W_e"]).T,
                                    padding_idx=self.padding_idx))

    def positional_embedding(self, l, params):
        return to_numpy(F.embedding(torch.arange(l), to_torch(params["W_p"]).T))

    def basic_attention(self, e, E_ctx, params):
        p = {k: to_torch(v) for k, v in params.items()}
        return to_numpy(self._attention(to_torch(e)[:, None], to_torch(E_ctx), p, None)[:, 0])

    def attention(self, X, Z, params, mask=None):
        p = {k: to_torch(v) for k, v in params.items()}
        return to_numpy(self._attention(to_torch(X), to_torch(Z), p, to_torch(mask)))

    def _mha(self, X, Z, params, mask):
        """nn.MultiheadAttention loaded with the spec's parameters; (module, X, Z, output)."""
        H, _, d_x = params["W_q"].shape
        X_t, Z_t = to_torch(X, grad=True), to_torch(Z, grad=True)
        m = torch.nn.MultiheadAttention(d_x, H, kdim=Z.shape[-1], vdim=Z.shape[-1],
                                        batch_first=True, dtype=X_t.dtype, bias=self.bias)
        with torch.no_grad():
            for name, view in canonical_views(m, lambda q: q.data).items():
                view.copy_(to_torch(params[name]))
        attn_mask = None if mask is None else torch.from_numpy(~mask.T)
        out, _ = m.eval()(X_t, Z_t, Z_t, attn_mask=attn_mask, need_weights=False)
        return m, X_t, Z_t, out

    def mhattention(self, X, Z, params, mask=None):
        return to_numpy(self._mha(X, Z, params, mask)[3])

    def layer_norm(self, X, params, eps):
        p = {k: to_torch(v) for k, v in params.items()}
        return to_numpy(self._layer_norm(to_torch(X), p, eps))

    def unembedding(self, X, params):
        return to_numpy(self._probs(to_torch(X), {"W_u": to_torch(params["W_u"])}))

    def mlp(self, X, params, activation):
        p = {k: to_torch(v) for k, v in params.items()}
        return to_numpy(self._mlp(to_torch(X), p, activation))

    def count_parameters(self, algorithm, sizes):
        """Parameters of the torch.nn modules these layers are: nn.MultiheadAttention,
        nn.LayerNorm, two nn.Linear (each with or without its bias)."""
        if algorithm == "mhattention":
            return self.mha.count_parameters(algorithm, sizes)
        if algorithm == "layer_norm":
            modules = [torch.nn.LayerNorm(sizes["d_e"], bias=self.bias)]
        else:
            modules = [torch.nn.Linear(sizes["d_e"], sizes["d_mlp"], bias=self.bias),
                       torch.nn.Linear(sizes["d_mlp"], sizes["d_e"], bias=self.bias)]
        return sum(p.numel() for m in modules for p in m.parameters())

    # -- backward by autograd ------------------------------------------------------------------
    def token_embedding_backward(self, x, params, dY):
        leaves = _leaves(params)
        return _grads(F.embedding(torch.from_numpy(x), leaves["W_e"].T,
                                  padding_idx=self.padding_idx), dY, leaves)

    def positional_embedding_backward(self, l, params, dY):
        leaves = _leaves(params)
        return _grads(F.embedding(torch.arange(l), leaves["W_p"].T), dY, leaves)

    def attention_backward(self, X, Z, params, dY, mask=None):
        leaves = _leaves({"X": X, "Z": Z} | dict(params))
        return _grads(self._attention(leaves["X"], leaves["Z"], leaves, to_torch(mask)), dY,
                      leaves)

    def mhattention_backward(self, X, Z, params, dY, mask=None):
        m, X_t, Z_t, out = self._mha(X, Z, params, mask)
        out.backward(to_torch(dY))
        grads = {k: to_numpy(v).copy() for k, v in canonical_views(m, lambda q: q.grad).items()}
        zeros = {k: np.zeros_like(v) for k, v in params.items() if k not in grads}  # unused
        return {"X": to_numpy(X_t.grad), "Z": to_numpy(Z_t.grad)} | grads | zeros

    def layer_norm_backward(self, X, params, eps, dY):
        leaves = _leaves({"X": X} | dict(params))
        return _grads(self._layer_norm(leaves["X"], leaves, eps), dY, leaves)

    def mlp_backward(self, X, params, activation, dY):
        leaves = _leaves({"X": X} | dict(params))
        return _grads(self._mlp(leaves["X"], leaves, activation), dY, leaves)

    def unembedding_backward(self, X, params, y):
        leaves = _leaves({"X": X} | dict(params))
        logp = torch.log_softmax(F.linear(leaves["X"], leaves["W_u"]), dim=-1)
        (-logp.gather(-1, torch.from_numpy(y)[..., None]).sum()).backward()
        return {k: to_numpy(v.grad) for k, v in leaves.items()}
