"""Adapter for an ONNX export of torch_impl's D transformer, run by ONNX Runtime.

    formal-transformers verify --impl examples.onnx_runtime:OnnxDTransformer --only d_transformer

The graph (torch_impl/interop/onnx_export.py, torch.onnx.export with dynamo=True) takes the
token ids and every canonical parameter as inputs and returns P; its config is baked in, so
``constrain`` maps every drawn config onto ``CONFIG`` (batch and length stay free: they are
dynamic axes of the graph). float32 only: ONNX Runtime's CPU Erf (exact GELU) has no float64
kernel. The export happens once, on first use.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from conformance.adapter import Adapter
from formal_transformers.canonical import parameter_shapes
from formal_transformers.hyperparameters import DTransformerConfig

CONFIG = DTransformerConfig(N_V=6, l_max=5, d_e=4, d_mlp=6, L=2, H=2, activation="gelu",
                            layer_norm_eps=1e-5)


class OnnxDTransformer(Adapter):
    """Algorithm 10 as an ONNX graph under onnxruntime (CPU)."""

    name = "torch_impl D transformer as ONNX (onnxruntime)"
    dtypes = ("float32",)
    algorithms = ("d_transformer",)
    config = CONFIG

    def constrain(self, algorithm, sizes):
        fields = self.config.to_dict()
        return {k: fields.get(k, v) for k, v in sizes.items()}

    @cached_property
    def session(self):
        import onnxruntime

        from torch_impl.interop.onnx_export import export_probabilities

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        return onnxruntime.InferenceSession(export_probabilities(self.config), options,
                                            providers=["CPUExecutionProvider"])

    def d_transformer(self, x, params, config):
        if config != self.config:
            raise ValueError(f"the graph was exported for {self.config}, got {config}")
        feeds = {"x": np.asarray(x, dtype=np.int64)}
        feeds |= {name: np.ascontiguousarray(params[name]) for name in parameter_shapes(config)}
        return self.session.run(["P"], feeds)[0]
