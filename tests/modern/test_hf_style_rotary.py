"""A rotary embedding written the way the `transformers` Llama code writes it (inv_freq, a
cos/sin table built from cat(freqs, freqs) in float32, rotate_half, position_ids) passes the
rope checks through an adapter that declares what it computes -- layout half_split, scaling
none or linear, full rotary, float32 -- and fails them when it declares interleaved (issue 13).
Our own code, in the style of `modeling_llama.py`; nothing is imported from transformers."""

from __future__ import annotations

import numpy as np
import torch

from conformance.runner import run
from formal_transformers.rope import Rope


class LlamaStyleRotaryEmbedding(torch.nn.Module):
    """inv_freq = 1 / base^(arange(0, dim, 2) / dim), divided by the linear factor."""

    def __init__(self, dim: int, base: float, factor: float = 1.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        self.register_buffer("inv_freq", inv_freq / factor, persistent=False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor):
        inv_freq = self.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
        freqs = (inv_freq @ position_ids[:, None, :].float()).transpose(1, 2)  # (B, l, dim/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (B, l, dim)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


class LlamaStyleRopeAdapter:
    """Declares rope in the layout the Llama code computes: half_split, full rotary, scaling
    none or linear, float32 (the cos/sin table is built in float32)."""

    name = "llama-style rotary (tests)"
    dtypes = ("float32",)
    algorithms = ("rope",)
    declared_layout = "half_split"

    def constrain(self, algorithm, sizes):
        scaling = sizes["scaling"] if sizes["scaling"] in ("none", "linear") else "linear"
        return sizes | {"layout": self.declared_layout, "rest": 0, "scaling": scaling}

    def rope(self, X, positions, config: Rope):
        B, H, l, d = X.shape
        rotary = LlamaStyleRotaryEmbedding(d, config.theta, config.scaling.factor
                                           if config.scaling.kind == "linear" else 1.0)
        x = torch.from_numpy(X)
        position_ids = torch.from_numpy(positions)[None].expand(B, l)
        cos, sin = rotary(x, position_ids)
        q, _ = apply_rotary_pos_emb(x, x, cos, sin)
        return q.numpy()


class DeclaresInterleaved(LlamaStyleRopeAdapter):
    """The same code, declared as the Meta (interleaved) layout it does not compute."""

    declared_layout = "interleaved"


def _results(adapter):
    results = run(adapter, "quick", 0, only=("rope",), shrink=False)
    return {r.property: r for r in results if r.algorithm == "rope"}


def test_llama_style_rotary_passes_every_rope_check_as_half_split():
    results = _results(LlamaStyleRopeAdapter())
    assert {"reference.forward_agreement", "rope.relative", "rope.layout_permutation",
            "rope.cache_step", "rope.norm_preserving", "rope.scaling_identity",
            "rope.heads_alike"} <= set(results)
    bad = {p: (r.status, r.reason[:400]) for p, r in results.items() if r.status != "passed"}
    assert not bad, bad
    assert all(r.examples > 0 for r in results.values())


def test_llama_style_rotary_declared_interleaved_fails_layout_and_agreement():
    results = _results(DeclaresInterleaved())
    failed = {p for p, r in results.items() if r.status == "failed"}
    assert {"rope.layout_permutation", "reference.forward_agreement"} <= failed
    assert not [r for r in results.values() if r.status == "error"]


def test_the_llama_style_table_is_the_spec_formula():
    """The table of the style code itself: cos(p omega_i) repeated in both halves."""
    cos, _ = LlamaStyleRotaryEmbedding(6, 10000.0)(torch.zeros(1), torch.tensor([[5]]))
    omega = 10000.0 ** (-np.arange(0, 6, 2) / 6)
    np.testing.assert_allclose(cos[0, 0].numpy(), np.cos(5 * np.concatenate([omega, omega])),
                               rtol=1e-6)
