"""Tolerances that fit the dtype and the example (issue 12): torch's own layers pass honestly
in float64, float32, float16 and bfloat16 at the ci profile, while a gross bug still fails in
low precision; constrain may return NumPy integers and sees the batch size and lengths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conformance.examples.torch_layers import TorchLayers
from conformance.registry import PROFILES, Context, all_checks
from conformance.runner import run
from conformance.strategies import Case


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_torch_own_layers_pass_every_check_in_every_dtype(dtype):
    results = run(TorchLayers((dtype,)), "ci", 0)
    ran = [r for r in results if r.status != "not covered"]
    assert len(ran) >= 50 and all(r.dtype == dtype for r in ran)
    assert all(r.status == "passed" for r in ran), [
        (r.algorithm, r.property, r.reason[:300]) for r in ran if r.status != "passed"]


class UnscaledLayers(TorchLayers):
    """SDPA with scale=1 (the 1/sqrt(d_attn) forgotten) and a layer norm without its mean."""

    def _attention(self, X, Z, p, mask):
        q, k = F.linear(X, p["W_q"], p["b_q"]), F.linear(Z, p["W_k"], p["b_k"])
        v = F.linear(Z, p["W_v"], p["b_v"])
        return F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None
                                              else mask.T, scale=1.0)

    @staticmethod
    def _layer_norm(X, p, eps):
        return X / torch.sqrt((X * X).mean(-1, keepdim=True) + eps) * p["gamma"] + p["beta"]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_tolerances_still_catch_a_gross_bug(dtype):
    results = run(UnscaledLayers((dtype,)), "ci", 0,
                  only=["reference.forward_agreement"], shrink=False)
    failed = {r.algorithm for r in results if r.status == "failed"}
    assert {"attention", "layer_norm"} <= failed, [(r.algorithm, r.status) for r in results]


def test_float32_layer_norm_of_two_close_entries_is_standardised_within_its_conditioning():
    (check,) = [c for c in all_checks() if c.key == "layer_norm/layer_norm.standardised"]
    X = np.array([[[-2.076402, -2.091346], [-1.90088, -1.884595]]], dtype=np.float32)
    params = {"gamma": np.ones(2, np.float32), "beta": np.zeros(2, np.float32)}
    case = Case("layer_norm", {"B": 1, "l": 2, "d_e": 2}, 0,
                {"X": X, "params": params, "eps": 0.0})
    from conformance.bound import Bound

    ctx = Context(Bound(TorchLayers(("float32",))), np.dtype("float32"), "layer_norm",
                  PROFILES["ci"])
    check.fn(ctx, case)  # no PropertyViolation
    assert ctx.max_ratio is not None and ctx.max_ratio < 1


def test_constrain_may_return_numpy_integers_and_sees_batch_and_lengths():
    from conformance.adapters.torch_adapter import TorchAdapter

    class Arch(TorchAdapter):
        seen: list = []

        def constrain(self, algorithm, sizes):
            type(self).seen.append((algorithm, dict(sizes)))
            return {k: np.int64(v) if type(v) is int else v for k, v in sizes.items()}

    results = run(Arch(), "quick", 0, only=["ed_transformer", "layer_norm"])
    assert all(r.status in ("passed", "not covered") for r in results), [
        (r.algorithm, r.property, r.reason) for r in results if r.status not in
        ("passed", "not covered")]
    shown = {alg: sizes for alg, sizes in Arch.seen}
    assert {"B", "l", "l_z", "l_max", "d_e"} <= set(shown["ed_transformer"])
    assert {"B", "l", "d_e"} <= set(shown["layer_norm"])
