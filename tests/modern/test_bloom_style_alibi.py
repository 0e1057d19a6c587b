"""An ALiBi written the way BLOOM-style code writes it (slopes from a base per power of two,
the key positions times the slopes) passes the alibi checks through an adapter that declares
the form it computes (key_position), and fails them when it declares the signed form. Our own
code, in the style of `build_alibi_tensor`; nothing is imported from transformers."""

from __future__ import annotations

import math

import numpy as np
import torch

from conformance.runner import run
from reference_numpy.alibi import alibi


def bloom_style_slopes(num_heads: int) -> torch.Tensor:
    closest = 2 ** math.floor(math.log2(num_heads))
    base = torch.tensor(2 ** (-(2 ** -(math.log2(closest) - 3))), dtype=torch.float64)
    slopes = torch.pow(base, torch.arange(1, 1 + closest, dtype=torch.int64))
    if closest != num_heads:
        extra_base = torch.tensor(2 ** (-(2 ** -(math.log2(2 * closest) - 3))),
                                  dtype=torch.float64)
        remaining = min(closest, num_heads - closest)
        extra = torch.pow(extra_base, torch.arange(1, 1 + 2 * remaining, 2, dtype=torch.int64))
        slopes = torch.cat([slopes, extra], dim=0)
    return slopes


class BloomStyleAlibiAdapter:
    """Declares alibi in the key_position form: bias[h, key] = slope_h * key position."""

    name = "bloom-style alibi (tests)"
    dtypes = ("float32", "float64")
    algorithms = ("alibi",)
    declared_form = "key_position"

    def constrain(self, algorithm, sizes):
        return sizes | {"form": self.declared_form}

    def alibi(self, positions_x, positions_z, H, form, dtype):
        keys = torch.from_numpy(positions_z).to(torch.float64)[None, :]  # (1, l_z)
        bias = bloom_style_slopes(H)[:, None] * keys  # (H, l_z)
        out = bias[:, :, None].expand(H, len(positions_z), len(positions_x))
        return out.numpy().astype(dtype)


class DeclaresSigned(BloomStyleAlibiAdapter):
    """The same code declared as the signed distance form it does not compute."""

    declared_form = "signed"


def _results(adapter):
    return {(r.property, r.dtype): r for r in run(adapter, "quick", 0, only=("alibi",),
                                                  shrink=False)}


def test_bloom_style_alibi_passes_as_key_position():
    results = _results(BloomStyleAlibiAdapter())
    assert {p for p, _ in results} == {"alibi.linear_in_distance", "alibi.slopes",
                                       "reference.forward_agreement"}
    bad = {k: r.reason[:300] for k, r in results.items() if r.status != "passed"}
    assert not bad, bad


def test_bloom_style_alibi_declared_signed_fails():
    failed = {p for (p, _), r in _results(DeclaresSigned()).items() if r.status == "failed"}
    assert {"alibi.linear_in_distance", "reference.forward_agreement"} <= failed


def test_the_forms_agree_after_the_softmax_under_the_causal_mask():
    p = np.arange(6)
    causal = p[:, None] <= p[None, :]  # Mask[t_z, t_x]
    weights = {}
    for form in ("signed", "symmetric", "key_position"):
        S = np.where(causal[None], alibi(p, p, 4, form), -np.inf)
        e = np.exp(S - S.max(axis=1, keepdims=True))
        weights[form] = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(weights["symmetric"], weights["signed"], atol=1e-15)
    np.testing.assert_allclose(weights["key_position"], weights["signed"], atol=1e-15)
