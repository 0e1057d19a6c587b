"""One call (conformance/one_call.py): check(fn, "attention") on plain functions and modules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conformance import ConformanceFailure, Report, check
from formal_transformers.errors import AdapterError


def numpy_attention(X, Z, params, mask=None, axis=-1):
    """Alg 4 in the adapter layout: X (B, l_x, d_x), Z (B, l_z, d_z), Mask[t_z, t_x]."""
    Q = X @ params["W_q"].T + params["b_q"]
    K = Z @ params["W_k"].T + params["b_k"]
    V = Z @ params["W_v"].T + params["b_v"]
    S = Q @ K.transpose(0, 2, 1) / math.sqrt(Q.shape[-1])  # (B, l_x, l_z)
    if mask is not None:
        S = np.where(mask.T, S, -np.inf)
    A = np.exp(S - S.max(axis, keepdims=True))
    return (A / A.sum(axis, keepdims=True)) @ V


def softmax_over_queries(X, Z, params, mask=None):
    """A mutant: the softmax normalises over the queries (axis 1) instead of the keys."""
    with np.errstate(invalid="ignore"):
        return numpy_attention(X, Z, params, mask, axis=1)


def test_plain_numpy_attention_passes():
    report = check(numpy_attention, "attention")
    assert isinstance(report, Report) and report.passed, str(report)
    assert report.checked >= 8  # the attention laws ran, in both dtypes
    assert {r.dtype for r in report if r.status == "passed"} == {"float64", "float32"}
    assert all(r.examples > 0 for r in report if r.status == "passed")
    assert report.raise_for_failures() is report


def test_softmax_over_the_wrong_axis_is_caught():
    report = check(softmax_over_queries, "attention", shrink=False)
    assert not report.passed
    failed = {r.property for r in report.failures()}
    assert {"softmax.normalised", "reference.forward_agreement"} <= failed
    with pytest.raises(ConformanceFailure, match="softmax.normalised"):
        report.raise_for_failures()
    with pytest.raises(ConformanceFailure):
        check(softmax_over_queries, "attention", shrink=False, only=["softmax"],
              raise_on_failure=True)


def test_report_renders_as_html_and_rich():
    report = check(softmax_over_queries, "attention", shrink=False, only=["softmax"])
    page = report._repr_html_()
    assert "<table>" in page and "softmax.normalised" in page and "FAILED" in page
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(report)
    text = console.export_text()
    assert "softmax.normalised" in text and "failed" in text


def test_an_empty_run_is_not_a_pass():
    report = Report("nothing", [])
    assert not report.passed
    with pytest.raises(ConformanceFailure, match="nothing was checked"):
        report.raise_for_failures()


def test_a_function_needs_an_algorithm_id():
    from formal_transformers.errors import AdapterError

    with pytest.raises(AdapterError, match="name the algorithm"):
        check(numpy_attention)
    with pytest.raises(AdapterError, match="unknown algorithm"):
        check(numpy_attention, "atention")


def _torch_attention_module(d_x: int, d_z: int, d_attn: int, d_out: int):
    torch = pytest.importorskip("torch")

    class Attention(torch.nn.Module):
        """A user's single-head attention; its key weights are stored (in, out)."""

        def __init__(self):
            super().__init__()
            self.q = torch.nn.Linear(d_x, d_attn)
            self.k_weight = torch.nn.Parameter(torch.zeros(d_z, d_attn))
            self.k_bias = torch.nn.Parameter(torch.zeros(d_attn))
            self.v = torch.nn.Linear(d_z, d_out)

        def forward(self, X, Z, mask=None):
            Q, K, V = self.q(X), Z @ self.k_weight + self.k_bias, self.v(Z)
            S = Q @ K.transpose(1, 2) / math.sqrt(Q.shape[-1])
            if mask is not None:
                S = S.masked_fill(~mask.T, float("-inf"))
            return torch.softmax(S, dim=-1) @ V

    return Attention()


MAPPING = {"W_q": "q.weight", "b_q": "q.bias", "W_k": ("k_weight", "T"), "b_k": "k_bias",
           "W_v": "v.weight", "b_v": "v.bias"}


def test_a_torch_module_through_a_mapping():
    module = _torch_attention_module(3, 2, 4, 3)
    report = check(module, "attention", mapping=MAPPING)
    assert report.passed, str(report)
    # the module's sizes were read from its parameters through the mapping
    assert report.checked >= 8


def test_a_wrong_mapping_is_caught():
    module = _torch_attention_module(3, 3, 3, 3)
    wrong = MAPPING | {"W_k": "k_weight"}  # the transpose rule forgotten
    report = check(module, "attention", mapping=wrong, shrink=False,
                   only=["reference.forward_agreement"])
    assert not report.passed and report.failures()


def test_a_jax_function():
    jnp = pytest.importorskip("jax.numpy")

    def jax_attention(X, Z, params, mask=None):
        Q = X @ params["W_q"].T + params["b_q"]
        K = Z @ params["W_k"].T + params["b_k"]
        V = Z @ params["W_v"].T + params["b_v"]
        S = Q @ jnp.swapaxes(K, 1, 2) / math.sqrt(Q.shape[-1])
        if mask is not None:
            S = jnp.where(mask.T, S, -jnp.inf)
        return jnp.exp(S - S.max(-1, keepdims=True)) / jnp.exp(
            S - S.max(-1, keepdims=True)).sum(-1, keepdims=True) @ V

    report = check(jax_attention, "attention", arrays="jax", only=["reference", "softmax"])
    assert report.passed, str(report)


def test_torch_multihead_attention_through_a_fused_mapping():
    """nn.MultiheadAttention's fused in_proj: W_q, W_k, W_v (H, d_head, E) merged over the
    heads and concatenated on one key; its mask is True where attention is *blocked*."""
    torch = pytest.importorskip("torch")
    E, H = 4, 2
    module = torch.nn.MultiheadAttention(E, H, batch_first=True)
    fused = {f"{w}_{n}": (f"in_proj_{'weight' if w == 'W' else 'bias'}", "heads")
             for n in "qkv" for w in ("W", "b")}
    mapping = {k: fused[k] for k in ("W_q", "W_k", "W_v", "b_q", "b_k", "b_v")}
    mapping |= {"W_o": "out_proj.weight", "b_o": "out_proj.bias"}

    def call(forward, X, Z, mask=None):
        blocked = None if mask is None else ~mask.T
        return forward(X, Z, Z, attn_mask=blocked, need_weights=False)[0]

    report = check(module, "mhattention", mapping=mapping, call=call,
                   sizes={"H": H, "d_attn": E // H, "d_mid": E // H, "d_x": E, "d_z": E},
                   only=["reference", "mask"])
    assert report.passed, str(report)


def bias_free_attention(X, Z, params, mask=None):
    """Llama-style attention: projections without bias (Alg 4 under bias = False)."""
    zero = {k: np.zeros(params[w].shape[0]) for k, w in (("b_q", "W_q"), ("b_k", "W_k"),
                                                          ("b_v", "W_v"))}
    return numpy_attention(X, Z, {k: v for k, v in params.items() if k.startswith("W_")}
                           | zero, mask).astype(X.dtype)


def test_a_bias_free_function_passes_when_it_declares_the_variant():
    report = check(bias_free_attention, "attention", variants={"bias": False}, shrink=False)
    assert report.passed and report.checked >= 8, str(report)
    undeclared = check(bias_free_attention, "attention", shrink=False)
    assert "reference.forward_agreement" in {r.property for r in undeclared.failures()}
    with pytest.raises(AdapterError, match="'bias' must be True or False"):
        check(bias_free_attention, "attention", variants={"bias": "no"})
