"""ONNX: torch_impl's D, E and ED transformers exported with torch.onnx.export (dynamo),
verified under onnxruntime through conformance/examples/onnx_runtime.py, and ONNX's reference
evaluator ops Attention, LayerNormalization and Softmax checked against the spec (reference_numpy).

LayerNormalization's ``stash_type`` attribute (default 1 = float32) is, in the ONNX operator
spec, the precision of its mean and variance: float32 statistics even for a float64 input.
The formula is Algorithm 6's; only the statistics' precision may differ, so a float64 graph
with the default stash is held to float32's tolerance -- a documented precision variant (see
examples/README.md), not a loosened float64 tolerance. Observed with onnx 1.23 / onnxruntime
1.32: the reference evaluator implements only stash_type = 1 and computes in the input's
precision; ONNX Runtime's CPU kernel gives float64 results within 1e-15 of the reference.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import reference_numpy as ref  # noqa: E402
from conformance.runner import run  # noqa: E402
from reference_numpy.attention import softmax_columns  # noqa: E402

F64 = TensorProto.DOUBLE


def evaluator(op: str, inputs: list[str], opset: int, **attrs) -> ReferenceEvaluator:
    node = helper.make_node(op, inputs, ["Y"], **attrs)
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info(n, F64, None)
                                            if n != "mask" else
                                            helper.make_tensor_value_info(n, TensorProto.BOOL,
                                                                          None)
                                            for n in inputs],
                              [helper.make_tensor_value_info("Y", F64, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return ReferenceEvaluator(model)


@pytest.mark.parametrize("adapter, laws", [
    ("OnnxDTransformer", {"causal.non_leakage"}),
    ("OnnxETransformer", {"permutation.equivariance"}),
    ("OnnxEDTransformer", {"causal.non_leakage"})])
def test_the_exported_architectures_pass_verify_under_onnxruntime(adapter, laws):
    from conformance.examples import onnx_runtime

    cls = getattr(onnx_runtime, adapter)
    alg = cls.algorithms[0]
    mine = [r for r in run(cls(), "quick", only=[alg]) if r.algorithm == alg]
    passed = {r.property for r in mine if r.status == "passed"}
    assert not [r for r in mine if r.status in ("failed", "error")], \
        [(r.property, r.reason) for r in mine if r.status != "passed"]
    assert {"reference.forward_agreement", "batch.independence",
            "structure.distribution"} | laws <= passed


def test_a_wrong_graph_is_caught():
    from conformance.examples.onnx_runtime import OnnxDTransformer

    class Shifted(OnnxDTransformer):
        """Feeds the positional embedding shifted by one position (an off-by-one W_p)."""

        def d_transformer(self, x, params, config):
            return super().d_transformer(x, params | {"W_p": np.roll(params["W_p"], 1, axis=1)},
                                         config)

    results = run(Shifted(), "quick", only=["reference.forward_agreement"], shrink=False)
    assert any(r.algorithm == "d_transformer" and r.status == "failed" for r in results)


def test_onnx_softmax_is_the_spec_softmax():
    rng = np.random.default_rng(0)
    S = rng.standard_normal((5, 3)) * 10  # spec layout: columns are distributions
    (Y,) = evaluator("Softmax", ["S"], 13, axis=0).run(None, {"S": S})
    np.testing.assert_allclose(Y, softmax_columns(S), rtol=1e-12, atol=1e-15)


def _layer_norm_model(stash_type: int):
    node = helper.make_node("LayerNormalization", ["X", "gamma", "beta"], ["Y"], axis=-1,
                            epsilon=1e-5, stash_type=stash_type)
    graph = helper.make_graph([node], "ln", [helper.make_tensor_value_info(n, F64, None)
                                             for n in ("X", "gamma", "beta")],
                              [helper.make_tensor_value_info("Y", F64, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _layer_norm_case():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((4, 6)) * 3 + 2  # 4 positions (rows), d_e = 6
    gamma, beta = 1 + 0.2 * rng.standard_normal(6), rng.standard_normal(6)
    eps = float(np.float32(1e-5))  # ONNX float attributes are float32
    expected = np.stack([ref.layer_norm(x, gamma, beta, eps=eps) for x in X])
    return {"X": X, "gamma": gamma, "beta": beta}, expected


def test_onnx_layer_normalization_is_algorithm_6():
    inputs, expected = _layer_norm_case()
    (Y,) = ReferenceEvaluator(_layer_norm_model(1)).run(None, inputs)
    np.testing.assert_allclose(Y, expected, rtol=1e-10, atol=1e-10)


def test_onnxruntime_float32_statistics_stash_is_a_precision_variant():
    """stash_type = 1 (the default): ONNX Runtime computes mean and variance of a float64
    input in float32 -- Algorithm 6's formula at float32 precision, not float64's."""
    import onnxruntime

    inputs, expected = _layer_norm_case()
    session = onnxruntime.InferenceSession(_layer_norm_model(1).SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    (Y,) = session.run(None, inputs)
    np.testing.assert_allclose(Y, expected, rtol=1e-5, atol=1e-5)  # float32's tolerance


@pytest.mark.parametrize("masked", [False, True])
def test_onnx_attention_is_algorithm_4_after_the_projections(masked):
    rng = np.random.default_rng(2)
    l_x, l_z, d_x, d_z, d_attn, d_out = 3, 4, 5, 2, 3, 2
    X, Z = rng.standard_normal((d_x, l_x)), rng.standard_normal((d_z, l_z))
    p = {"W_q": rng.standard_normal((d_attn, d_x)), "b_q": rng.standard_normal(d_attn),
         "W_k": rng.standard_normal((d_attn, d_z)), "b_k": rng.standard_normal(d_attn),
         "W_v": rng.standard_normal((d_out, d_z)), "b_v": rng.standard_normal(d_out)}
    Mask = rng.random((l_z, l_x)) < 0.5 if masked else None
    if Mask is not None:
        Mask[0, :] = True  # every query attends somewhere
    expected = ref.attention(X, Z, **p, Mask=Mask)  # (d_out, l_x), spec columns
    Q = (p["W_q"] @ X + p["b_q"][:, None]).T[None, None]  # ONNX (B, H, L, D) rows
    K = (p["W_k"] @ Z + p["b_k"][:, None]).T[None, None]
    V = (p["W_v"] @ Z + p["b_v"][:, None]).T[None, None]
    feeds = {"Q": Q, "K": K, "V": V}
    names = ["Q", "K", "V"]
    if Mask is not None:  # ONNX attn_mask[q, kv] is True where attending: the spec's Mask^T
        feeds["mask"], names = Mask.T[None, None], names + ["mask"]
    (Y,) = evaluator("Attention", names, 23).run(None, feeds)
    np.testing.assert_allclose(Y[0, 0].T, expected, rtol=1e-10, atol=1e-12)
