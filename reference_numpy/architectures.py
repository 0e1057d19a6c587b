"""The three transformer architectures, forward (spec: Algorithms 8-10, spec/algorithms/08-10).

Literal float64 mirror of the pseudocode: one sequence at a time, column layout
``X in R^{d_e x l_x}``, loops over layers and positions where the pseudocode loops, layer norm
applied column by column. Each mirrored line cites its spec line (``# Alg 10 L6``).

Parameters are the canonical flat mapping of ``formal_transformers.canonical`` and the
hyperparameters the frozen configs of ``formal_transformers.hyperparameters``. When ``cache``
is a dict, every primitive's cache is stored in it under the canonical prefix of the primitive's
parameters (``"layers.0.mha"``, ``"layers.0.ln1"`` -- a list, one cache per column --,
``"embedding"``, ``"unembedding"``, ...), which is what the chained backward passes of
``reference_numpy.architectures_backward`` read.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from formal_transformers.canonical import check_parameters, full_parameters
from formal_transformers.errors import ParameterFileError, SpecDTypeError
from formal_transformers.hyperparameters import (
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
)
from formal_transformers.validation import check_array, check_length, check_shape, check_tokens
from reference_numpy.activations import activation_function
from reference_numpy.attention import mh_attention
from reference_numpy.embeddings import positional_embedding, token_embedding
from reference_numpy.layer_norm import layer_norm
from reference_numpy.mlp import mlp
from reference_numpy.unembedding import unembedding

Params = Mapping[str, np.ndarray]


# ---------------------------------------------------------------------------------------------
# Input checks and small helpers shared by the three architectures


def check_token_sequence(name: str, x: object, config) -> np.ndarray:
    """A 1-D sequence of token ids in [N_V] with 1 <= length <= l_max, as an int array."""
    arr = np.asarray(x)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.astype(np.int64)  # an empty list is float64 to NumPy; report its length
    check_shape(name, arr, ("l",))
    check_length(name, arr.shape[0], config.l_max)
    check_tokens(name, arr, config.N_V)
    return arr.astype(np.int64)


def check_model_parameters(config, params: Params) -> dict[str, np.ndarray]:
    """Exactly the canonical entries of ``config`` (its declared variants included) with
    their shapes, each a finite floating-point NumPy array. Returns them as float64 (no copy
    of entries that already are)."""
    if not isinstance(params, Mapping):
        raise ParameterFileError(f"params must be a mapping from canonical names to arrays, "
                                 f"got {type(params).__name__}")
    for name, value in params.items():
        if not isinstance(value, np.ndarray):
            raise SpecDTypeError(f"params['{name}'] must be a NumPy array, "
                                 f"got {type(value).__name__}")
    check_parameters(config, params)
    for name, value in params.items():
        check_array(name, value, tuple(value.shape))
    return {name: np.asarray(value, dtype=np.float64) for name, value in params.items()}


def model_parameters(config, params: Params) -> dict[str, np.ndarray]:
    """``check_model_parameters``, then the paper's full set (``canonical.full_parameters``):
    under the declared variants W_u = W_e^T (tied_unembedding) and every b_* and beta = 0
    (bias = False), so that the pseudocode below runs unchanged."""
    return full_parameters(config, check_model_parameters(config, params))


def group(params: Params, prefix: str) -> dict[str, np.ndarray]:
    """The parameters under ``prefix.``, keyed by their spec symbol (``W_q``, ``gamma``, ...)."""
    n = len(prefix) + 1
    return {name[n:]: value for name, value in params.items() if name.startswith(prefix + ".")}


def causal_mask(l_x: int) -> np.ndarray:
    """Mask[t_z, t_x] = [t_z <= t_x], (l_x, l_x) bool: a query sees itself and earlier tokens."""
    return np.triu(np.ones((l_x, l_x), dtype=bool))


def _sub_cache(cache: dict | None, key: str, value):
    if cache is None:
        return None
    cache[key] = value
    return value


def embed(x: np.ndarray, params: Params, cache: dict | None, key: str) -> np.ndarray:
    """Columns e_t = W_e[:, x[t]] + W_p[:, t] (Algorithms 1-2), stacked: (d_e, l_x)."""
    caches = _sub_cache(cache, key, [])
    columns = []
    for t in range(len(x)):
        c_tok, c_pos = ({}, {}) if caches is not None else (None, None)
        e_t = (token_embedding(int(x[t]), W_e=params["W_e"], cache=c_tok)
               + positional_embedding(t, W_p=params["W_p"], cache=c_pos))
        columns.append(e_t)
        if caches is not None:
            caches.append((c_tok, c_pos))
    return np.stack(columns, axis=1)


def layer_norm_columns(X: np.ndarray, params: Params, prefix: str, eps: float,
                       cache: dict | None) -> np.ndarray:
    """layer_norm (Algorithm 6) of every column of X (d_e, l) with ``prefix.gamma/.beta``."""
    ln = group(params, prefix)
    caches = _sub_cache(cache, prefix, [])
    columns = []
    for t in range(X.shape[1]):
        c_t = {} if caches is not None else None
        columns.append(layer_norm(X[:, t], gamma=ln["gamma"], beta=ln["beta"], eps=eps,
                                  cache=c_t))
        if caches is not None:
            caches.append(c_t)
    return np.stack(columns, axis=1)


def attend(X: np.ndarray, Z: np.ndarray, params: Params, prefix: str, Mask: np.ndarray | None,
           cache: dict | None) -> np.ndarray:
    """MHAttention(X, Z | W_prefix, Mask) (Algorithm 5): (d_e, l_x)."""
    return mh_attention(X, Z, **group(params, prefix), Mask=Mask,
                        cache=_sub_cache(cache, prefix, {}))


def position_wise_mlp(X: np.ndarray, params: Params, prefix: str, activation: str,
                      cache: dict | None) -> np.ndarray:
    """W_mlp2 sigma(W_mlp1 X + b_mlp1 1^T) + b_mlp2 1^T (Algorithm 16): (d_e, l)."""
    return mlp(X, **group(params, prefix), activation=activation,
               cache=_sub_cache(cache, prefix, {}))


def unembed_columns(X: np.ndarray, params: Params, cache: dict | None) -> np.ndarray:
    """P[:, t] = Unembedding(X[:, t] | W_u) (Algorithm 7) for every column: (N_V, l)."""
    caches = _sub_cache(cache, "unembedding", [])
    if cache is not None:
        cache["X_out"] = X  # the final representation, input of the unembedding
    columns = []
    for t in range(X.shape[1]):
        c_t = {} if caches is not None else None
        columns.append(unembedding(X[:, t], W_u=params["W_u"], cache=c_t))
        if caches is not None:
            caches.append(c_t)
    return np.stack(columns, axis=1)


# ---------------------------------------------------------------------------------------------
# Algorithm 10: decoder-only transformer (GPT)


def d_transformer(x, params: Params, config: DTransformerConfig,
                  cache: dict | None = None) -> np.ndarray:
    """Decoder-only transformer (spec: Algorithm 10, spec/algorithms/10-d-transformer.md).

    x: (l_x,) token ids. Returns P: (N_V, l_x); column t is the distribution of x[t+1].
    Pre-LN, causal self-attention, final layer norm.
    """
    params = model_parameters(config, params)
    x = check_token_sequence("x", x, config)  # Alg 10 L1
    l_x, eps, sigma = len(x), config.layer_norm_eps, config.activation
    X = embed(x, params, cache, "embedding")  # Alg 10 L2, L3
    for l in range(config.L):  # Alg 10 L4
        p = f"layers.{l}"
        X_tilde = layer_norm_columns(X, params, f"{p}.ln1", eps, cache)  # Alg 10 L5
        X = X + attend(X_tilde, X_tilde, params, f"{p}.mha", causal_mask(l_x), cache)  # Alg 10 L6
        X_tilde = layer_norm_columns(X, params, f"{p}.ln2", eps, cache)  # Alg 10 L7
        X = X + position_wise_mlp(X_tilde, params, f"{p}.mlp", sigma, cache)  # Alg 10 L8
    X = layer_norm_columns(X, params, "ln_f", eps, cache)  # Alg 10 L9
    return unembed_columns(X, params, cache)  # Alg 10 L10


# ---------------------------------------------------------------------------------------------
# Algorithm 9: encoder-only transformer (BERT)


def dense_activation(X: np.ndarray, W_f: np.ndarray, b_f: np.ndarray, activation: str,
                     cache: dict | None) -> np.ndarray:
    """sigma(W_f X + b_f 1^T), the final dense layer of Algorithm 9 (line 10): (d_e, l_x)."""
    A = W_f @ X + b_f[:, None]
    if cache is not None:
        cache.update(X=X, A=A, W_f=W_f)
    return activation_function(activation)(A)


def e_transformer(x, params: Params, config: ETransformerConfig,
                  cache: dict | None = None) -> np.ndarray:
    """Encoder-only transformer (spec: Algorithm 9, spec/algorithms/09-e-transformer.md).

    x: (l_x,) token ids (some may be a mask token). Returns P: (N_V, l_x); column t is the
    distribution of the token at position t. Post-LN, unmasked self-attention.
    """
    params = model_parameters(config, params)
    x = check_token_sequence("x", x, config)  # Alg 9 L1
    eps, sigma = config.layer_norm_eps, config.activation
    X = embed(x, params, cache, "embedding")  # Alg 9 L2, L3
    if config.embedding_layer_norm:  # Alg 9 L4
        X = layer_norm_columns(X, params, "emb_ln", eps, cache)
    for l in range(config.L):  # Alg 9 L5
        p = f"layers.{l}"
        X = X + attend(X, X, params, f"{p}.mha", None, cache)  # Alg 9 L6
        X = layer_norm_columns(X, params, f"{p}.ln1", eps, cache)  # Alg 9 L7
        X = X + position_wise_mlp(X, params, f"{p}.mlp", sigma, cache)  # Alg 9 L8
        X = layer_norm_columns(X, params, f"{p}.ln2", eps, cache)  # Alg 9 L9
    X = dense_activation(X, params["W_f"], params["b_f"], sigma,
                         _sub_cache(cache, "final_dense", {}))  # Alg 9 L10
    X = layer_norm_columns(X, params, "ln_f", eps, cache)  # Alg 9 L11
    return unembed_columns(X, params, cache)  # Alg 9 L12


# ---------------------------------------------------------------------------------------------
# Algorithm 8: encoder-decoder transformer (Vaswani et al.)


def encode(z: np.ndarray, params: Params, config: EDTransformerConfig,
           cache: dict | None) -> np.ndarray:
    """Lines 2-8 of Algorithm 8: the encoder output Z (d_e, l_z) of checked tokens z."""
    eps = config.layer_norm_eps
    Z = embed(z, params, cache, "enc.embedding")  # Alg 8 L2, L3
    for l in range(config.L_enc):  # Alg 8 L4
        p = f"enc.layers.{l}"
        Z = Z + attend(Z, Z, params, f"{p}.mha", None, cache)  # Alg 8 L5
        Z = layer_norm_columns(Z, params, f"{p}.ln1", eps, cache)  # Alg 8 L6
        Z = Z + position_wise_mlp(Z, params, f"{p}.mlp", config.activation, cache)  # Alg 8 L7
        Z = layer_norm_columns(Z, params, f"{p}.ln2", eps, cache)  # Alg 8 L8
    return Z


def decode(x: np.ndarray, Z: np.ndarray, params: Params, config: EDTransformerConfig,
           cache: dict | None) -> np.ndarray:
    """Lines 10-18 of Algorithm 8: the decoder output X (d_e, l_x) given the encoder output Z."""
    eps, l_x = config.layer_norm_eps, len(x)
    X = embed(x, params, cache, "dec.embedding")  # Alg 8 L10, L11
    for l in range(config.L_dec):  # Alg 8 L12
        p = f"dec.layers.{l}"
        X = X + attend(X, X, params, f"{p}.self_mha", causal_mask(l_x), cache)  # Alg 8 L13
        X = layer_norm_columns(X, params, f"{p}.ln3", eps, cache)  # Alg 8 L14
        X = X + attend(X, Z, params, f"{p}.cross_mha", None, cache)  # Alg 8 L15
        X = layer_norm_columns(X, params, f"{p}.ln4", eps, cache)  # Alg 8 L16
        X = X + position_wise_mlp(X, params, f"{p}.mlp", config.activation, cache)  # Alg 8 L17
        X = layer_norm_columns(X, params, f"{p}.ln5", eps, cache)  # Alg 8 L18
    return X


def ed_transformer(z, x, params: Params, config: EDTransformerConfig,
                   cache: dict | None = None) -> np.ndarray:
    """Encoder-decoder transformer (spec: Algorithm 8, spec/algorithms/08-ed-transformer.md).

    z: (l_z,) context ids, x: (l_x,) primary ids. Returns P: (N_V, l_x); column t is the
    distribution of x[t+1] given x[0 : t+1] and z. Post-LN throughout.
    """
    params = model_parameters(config, params)
    z = check_token_sequence("z", z, config)  # Alg 8 L1
    x = check_token_sequence("x", x, config)  # Alg 8 L9
    Z = encode(z, params, config, cache)
    X = decode(x, Z, params, config, cache)
    return unembed_columns(X, params, cache)  # Alg 8 L19
