"""The growth law of attention memory (spec/memory.md section 7, property memory.growth_law).

One multi-head self-attention layer of torch_impl (the fused module the models use, causal)
runs forward at sequence lengths l; the bytes autograd saves for its backward pass are
measured and predicted, on the naive path (PyTorch's math kernel, which keeps the attention
weights: B H l^2 numbers) and on the sdpa path (a flash kernel, which keeps one
log-normaliser per query and head: O(l)). The exponent k of M(l) ~ l^k is the least-squares
slope of log M against log l.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from formal_transformers.memory.activations import self_attention_terms, total_bytes
from formal_transformers.memory.predict import dtype_bytes

LENGTHS = (64, 128, 256, 512)
# Many small heads, so that the H l^2 term dominates the per-token terms from l = 64 on.
GROWTH_H, GROWTH_D_E = 16, 64


@dataclass(frozen=True)
class Growth:
    """Measured and predicted attention activation bytes per length, per path."""

    lengths: tuple[int, ...]
    measured: dict[str, tuple[int, ...]]
    predicted: dict[str, tuple[int, ...]]

    def exponent(self, path: str, which: str = "measured") -> float:
        return fit_exponent(self.lengths, getattr(self, which)[path])

    def to_dict(self) -> dict:
        return {"lengths": list(self.lengths), "H": GROWTH_H, "d_e": GROWTH_D_E,
                "paths": {p: {"measured_bytes": list(self.measured[p]),
                              "predicted_bytes": list(self.predicted[p]),
                              "measured_exponent": self.exponent(p),
                              "predicted_exponent": self.exponent(p, "predicted")}
                          for p in self.measured}}


def fit_exponent(lengths: Sequence[int], values: Sequence[float]) -> float:
    """Least-squares slope k of log(values) = k log(lengths) + c."""
    xs = [math.log(l) for l in lengths]
    ys = [math.log(v) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return (sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
            / sum((x - mx) ** 2 for x in xs))


def measured_attention_bytes(l: int, path: str, batch: int = 1, dtype: str = "float32",
                             seed: int = 0) -> int:
    """Bytes autograd saves for one causal MultiHeadAttention(X) at length l."""
    import torch

    from formal_transformers.memory.measure import saved_tensor_bytes
    from formal_transformers.memory.runs import _kernel
    from torch_impl.blocks import MultiHeadAttention

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16,
                   "float64": torch.float64}[dtype]
    generator = torch.Generator().manual_seed(seed)
    module = MultiHeadAttention(GROWTH_D_E, GROWTH_H).to(torch_dtype)
    X = torch.randn(batch, l, GROWTH_D_E, generator=generator).to(torch_dtype)
    X.requires_grad_(True)  # as inside a model, where X comes from the layer below
    with _kernel(path):
        _, saved = saved_tensor_bytes(lambda: module(X, causal=True),
                                      exclude=[*module.parameters(), X])
    return saved


def attention_growth(lengths: Sequence[int] = LENGTHS, batch: int = 1,
                     dtype: str = "float32") -> Growth:
    """Measure and predict the attention activation memory at every length, both paths."""
    b = dtype_bytes(dtype)
    measured, predicted = {}, {}
    for path in ("naive", "sdpa"):
        measured[path] = tuple(measured_attention_bytes(l, path, batch, dtype) for l in lengths)
        predicted[path] = tuple(total_bytes(self_attention_terms(
            GROWTH_H, GROWTH_D_E, batch, l, b, path)) for l in lengths)
    return Growth(tuple(lengths), measured, predicted)
