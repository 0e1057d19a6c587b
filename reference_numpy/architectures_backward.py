"""Chained backward passes of the three architectures (spec: Algorithms 8-10 with the
primitive gradients of Algorithms 17-23, spec/algorithms/17-23).

Given the gradient ``dX_out`` (d_e, l_x) of a scalar loss with respect to the final
representation (the input of the unembedding, line 10 of Algorithm 10), each function walks
the forward's cache backwards, line by line, calling only the primitive backward functions of
``reference_numpy.backward`` (and the elementwise activation derivative for the encoder's final
dense layer), and returns the gradient of that loss with respect to every canonical parameter
except ``W_u`` (whose gradient the loss computes with the unembedding), for the paper's full
parameter set (``canonical.fold_gradients`` maps it to a declared variant's own parameters).
The forward must have been run with ``cache={}``. Residual additions ``X <- X + f(X)`` send
the gradient both ways.
"""

from __future__ import annotations

import numpy as np

from formal_transformers.canonical import full_parameter_shapes
from formal_transformers.errors import BackwardCacheError
from formal_transformers.hyperparameters import (
    Config,
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
)
from reference_numpy.activations import activation_derivative
from reference_numpy.backward import (
    layer_norm_backward,
    mh_attention_backward,
    mlp_backward,
    positional_embedding_backward,
    token_embedding_backward,
)

Grads = dict[str, np.ndarray]


def zero_gradients(config: Config) -> Grads:
    """A zero array for every parameter of the paper's full set (every bias, beta and W_u,
    whatever the declared variants: ``canonical.fold_gradients`` maps them back)."""
    return {name: np.zeros(shape) for name, shape in full_parameter_shapes(config).items()}


def _accumulate(grads: Grads, prefix: str, g: dict[str, np.ndarray], inputs: tuple[str, ...]
                ) -> None:
    """Add a primitive's parameter gradients ``g`` to ``grads[prefix.<name>]``."""
    for name, value in g.items():
        if name not in inputs:
            grads[f"{prefix}.{name}"] += value


def _entry(cache: dict, key: str):
    if key not in cache:
        raise BackwardCacheError(f"cache has no entry '{key}': run the forward with cache={{}} "
                                 "and pass that dict to the backward")
    return cache[key]


def layer_norm_columns_backward(dY: np.ndarray, cache: dict, prefix: str, grads: Grads,
                                backward=layer_norm_backward) -> np.ndarray:
    """Backward of layer_norm applied to every column (Algorithm 21 per column): dX (d_e, l).

    ``backward``: the per-column backward of another norm with the same cache layout and
    result keys ("e" and its parameters), e.g. rmsnorm_backward (Algorithm 30)."""
    columns = []
    for t, c_t in enumerate(_entry(cache, prefix)):
        g = backward(dY[:, t], c_t)
        _accumulate(grads, prefix, g, inputs=("e",))
        columns.append(g["e"])
    return np.stack(columns, axis=1)


def attend_backward(dV: np.ndarray, cache: dict, prefix: str, grads: Grads
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Backward of MHAttention(X, Z) (Algorithm 20): (dX (d_e, l_x), dZ (d_e, l_z))."""
    g = mh_attention_backward(dV, _entry(cache, prefix))
    _accumulate(grads, prefix, g, inputs=("X", "Z"))
    return g["X"], g["Z"]


def mlp_columns_backward(dY: np.ndarray, cache: dict, prefix: str, grads: Grads) -> np.ndarray:
    """Backward of the position-wise MLP (Algorithm 22): dX (d_e, l)."""
    g = mlp_backward(dY, _entry(cache, prefix))
    _accumulate(grads, prefix, g, inputs=("X",))
    return g["X"]


def embed_backward(dX: np.ndarray, cache: dict, key: str, grads: Grads,
                   padding_idx: int | None = None, kappa: float = 1.0) -> None:
    """Backward of e_t = kappa W_e[:, x[t]] + W_p[:, t] (Algorithms 17-18), summed over
    positions; a position cached without a positional embedding (None) has no W_p share.

    With the variant ``padding_idx`` (spec: Algorithm 17, variants) a position holding that
    token sends no gradient to W_e (its positional embedding still gets its share)."""
    for t, (c_tok, c_pos) in enumerate(_entry(cache, key)):
        if c_tok["v"] != padding_idx:
            grads["W_e"] += token_embedding_backward(kappa * dX[:, t], c_tok)["W_e"]
        if c_pos is not None:
            grads["W_p"] += positional_embedding_backward(dX[:, t], c_pos)["W_p"]


def post_ln_layer_backward(dX: np.ndarray, cache: dict, prefix: str, grads: Grads) -> np.ndarray:
    """Backward of one post-LN encoder layer (Alg 9 L6-9 = Alg 8 L5-8): mha, ln1, mlp, ln2."""
    dY = layer_norm_columns_backward(dX, cache, f"{prefix}.ln2", grads)  # backward of Alg 9 L9
    dX = dY + mlp_columns_backward(dY, cache, f"{prefix}.mlp", grads)  # backward of Alg 9 L8
    dY = layer_norm_columns_backward(dX, cache, f"{prefix}.ln1", grads)  # backward of Alg 9 L7
    dQ, dKV = attend_backward(dY, cache, f"{prefix}.mha", grads)  # backward of Alg 9 L6
    return dY + dQ + dKV  # self-attention: queries, keys and values all come from X


def d_transformer_backward(dX_out: np.ndarray, cache: dict, config: DTransformerConfig
                           ) -> Grads:
    """Gradients of Algorithm 10's parameters (all but W_u) from dX_out (d_e, l_x)."""
    grads = zero_gradients(config)
    dX = layer_norm_columns_backward(dX_out, cache, "ln_f", grads)  # backward of Alg 10 L9
    for l in reversed(range(config.L)):  # backward of Alg 10 L4
        p = f"layers.{l}"
        dX_tilde = mlp_columns_backward(dX, cache, f"{p}.mlp", grads)  # backward of Alg 10 L8
        dX = dX + layer_norm_columns_backward(dX_tilde, cache, f"{p}.ln2", grads)  # Alg 10 L7
        dQ, dKV = attend_backward(dX, cache, f"{p}.mha", grads)  # backward of Alg 10 L6
        dX = dX + layer_norm_columns_backward(dQ + dKV, cache, f"{p}.ln1", grads)  # Alg 10 L5
    embed_backward(dX, cache, "embedding", grads, config.padding_idx)  # backward of Alg 10 L2-3
    return grads


def dense_activation_backward(dY: np.ndarray, cache: dict, activation: str, grads: Grads
                              ) -> np.ndarray:
    """Backward of Y = sigma(W_f X + b_f 1^T) (Algorithm 9, line 10): dX (d_e, l_x)."""
    dA = dY * activation_derivative(activation)(cache["A"])  # (d_e, l_x)
    grads["W_f"] += dA @ cache["X"].T
    grads["b_f"] += dA.sum(axis=1)
    return cache["W_f"].T @ dA


def e_transformer_backward(dX_out: np.ndarray, cache: dict, config: ETransformerConfig
                           ) -> Grads:
    """Gradients of Algorithm 9's parameters (all but W_u) from dX_out (d_e, l_x)."""
    grads = zero_gradients(config)
    dX = layer_norm_columns_backward(dX_out, cache, "ln_f", grads)  # backward of Alg 9 L11
    dX = dense_activation_backward(dX, _entry(cache, "final_dense"), config.activation,
                                   grads)  # backward of Alg 9 L10
    for l in reversed(range(config.L)):  # backward of Alg 9 L5
        dX = post_ln_layer_backward(dX, cache, f"layers.{l}", grads)
    if config.embedding_layer_norm:  # backward of Alg 9 L4
        dX = layer_norm_columns_backward(dX, cache, "emb_ln", grads)
    embed_backward(dX, cache, "embedding", grads, config.padding_idx)  # backward of Alg 9 L2-3
    return grads


def decoder_layer_backward(dX: np.ndarray, cache: dict, prefix: str, grads: Grads
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Backward of one decoder layer (Algorithm 8, lines 13-18): (dX, this layer's dZ)."""
    dY = layer_norm_columns_backward(dX, cache, f"{prefix}.ln5", grads)  # backward of Alg 8 L18
    dX = dY + mlp_columns_backward(dY, cache, f"{prefix}.mlp", grads)  # backward of Alg 8 L17
    dY = layer_norm_columns_backward(dX, cache, f"{prefix}.ln4", grads)  # backward of Alg 8 L16
    dQ, dZ = attend_backward(dY, cache, f"{prefix}.cross_mha", grads)  # backward of Alg 8 L15
    dX = dY + dQ
    dY = layer_norm_columns_backward(dX, cache, f"{prefix}.ln3", grads)  # backward of Alg 8 L14
    dQ, dKV = attend_backward(dY, cache, f"{prefix}.self_mha", grads)  # backward of Alg 8 L13
    return dY + dQ + dKV, dZ


def ed_transformer_backward(dX_out: np.ndarray, cache: dict, config: EDTransformerConfig
                            ) -> Grads:
    """Gradients of Algorithm 8's parameters (all but W_u) from dX_out (d_e, l_x).

    The encoder output Z feeds the cross-attention of every decoder layer, so its gradient is
    the sum over decoder layers before it flows back through the encoder.
    """
    grads = zero_gradients(config)
    l_z = len(_entry(cache, "enc.embedding"))
    dX, dZ = dX_out, np.zeros((config.d_e, l_z))
    for l in reversed(range(config.L_dec)):  # backward of Alg 8 L12
        dX, dZ_l = decoder_layer_backward(dX, cache, f"dec.layers.{l}", grads)
        dZ = dZ + dZ_l
    embed_backward(dX, cache, "dec.embedding", grads, config.padding_idx)  # Alg 8 L10-11
    for l in reversed(range(config.L_enc)):  # backward of Alg 8 L4
        dZ = post_ln_layer_backward(dZ, cache, f"enc.layers.{l}", grads)  # Alg 8 L5-8
    embed_backward(dZ, cache, "enc.embedding", grads, config.padding_idx)  # Alg 8 L2-3
    return grads
