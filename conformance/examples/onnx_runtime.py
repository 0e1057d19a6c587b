"""Adapters for ONNX exports of torch_impl's D, E and ED transformers, run by ONNX Runtime.

    formal-transformers verify --impl conformance.examples.onnx_runtime:OnnxDTransformer \
        --only d_transformer
    formal-transformers verify --impl conformance.examples.onnx_runtime:OnnxETransformer \
        --only e_transformer

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
from formal_transformers.hyperparameters import (
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
)

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
        return onnxruntime.InferenceSession(
            export_probabilities(self.config, self.algorithms[0]), options,
            providers=["CPUExecutionProvider"])

    def _run(self, config, params, **tokens):
        if config != self.config:
            raise ValueError(f"the graph was exported for {self.config}, got {config}")
        feeds = {k: np.asarray(v, dtype=np.int64) for k, v in tokens.items()}
        feeds |= {name: np.ascontiguousarray(params[name]) for name in parameter_shapes(config)}
        return self.session.run(["P"], feeds)[0]

    def d_transformer(self, x, params, config):
        return self._run(config, params, x=x)


class OnnxETransformer(OnnxDTransformer):
    """Algorithm 9 (BERT style, post-LN) as an ONNX graph under onnxruntime."""

    name = "torch_impl E transformer as ONNX (onnxruntime)"
    algorithms = ("e_transformer",)
    config = ETransformerConfig(N_V=6, l_max=5, d_e=4, d_mlp=6, L=2, H=2,
                                activation="gelu_tanh", layer_norm_eps=1e-3,
                                embedding_layer_norm=True)

    def e_transformer(self, x, params, config):
        return self._run(config, params, x=x)


class OnnxEDTransformer(OnnxDTransformer):
    """Algorithm 8 (encoder-decoder) as an ONNX graph under onnxruntime."""

    name = "torch_impl ED transformer as ONNX (onnxruntime)"
    algorithms = ("ed_transformer",)
    config = EDTransformerConfig(N_V=6, l_max=5, d_e=4, d_mlp=3, L_enc=1, L_dec=2, H=2,
                                 activation="relu", layer_norm_eps=1e-5)

    def ed_transformer(self, z, x, params, config):
        return self._run(config, params, z=z, x=x)
