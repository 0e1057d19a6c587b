"""Hand-written backward passes of the primitives (spec: Algorithms 17-23,
spec/algorithms/17-*.md to 23-*.md).

Every backward is ``<forward>_backward(d_out, cache) -> dict``: ``d_out`` is the gradient of a
scalar loss with respect to the forward's output, ``cache`` the dict the forward filled when
called with ``cache={}``, and the result maps the spec names of the forward's inputs and
parameters to their gradients (``{"X": dX, "W_q": dW_q, ...}``), each of the same shape as
what it differentiates. Each mirrored line cites its spec line (``# Alg 19 L3``).
"""

from __future__ import annotations

import numpy as np

from formal_transformers.errors import BackwardCacheError
from formal_transformers.validation import check_array
from reference_numpy.activations import activation_derivative


def _need(cache: object, forward: str, *keys: str) -> None:
    """The cache must be a dict that ``forward`` filled (it holds every key)."""
    if not isinstance(cache, dict):
        raise BackwardCacheError(f"cache must be the dict that {forward}(..., cache=cache) "
                                 f"filled, got {type(cache).__name__}")
    missing = [k for k in keys if k not in cache]
    if missing:
        raise BackwardCacheError(f"cache lacks {missing}: run {forward}(..., cache=cache) "
                                 "with a dict before its backward pass")


need = _need  # the same check, for the backward passes that live beside their forward


def softmax_columns_backward(d_out: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Gradient of the column-wise softmax A = softmax(S) (Algorithm 19, line 3 without the
    score scale): dS = A * (dA - 1 1^T (A * dA)). d_out: dA, A: the kept weights, same shape;
    a masked entry (A = 0) gets gradient 0."""
    return A * (d_out - np.sum(A * d_out, axis=0, keepdims=True))


def token_embedding_backward(d_out: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Gradient of Algorithm 1 (spec: Algorithm 17, 17-token-embedding-backward.md).

    d_out: de (d_e,). Returns {"W_e": dW_e (d_e, N_V)}, zero outside column v.
    """
    _need(cache, "token_embedding", "v", "W_e_shape")
    v, (d_e, N_V) = cache["v"], cache["W_e_shape"]
    check_array("de", d_out, (d_e,))
    dW_e = np.zeros((d_e, N_V))  # Alg 17 L1
    dW_e[:, v] = d_out  # Alg 17 L2
    return {"W_e": dW_e}  # Alg 17 L3


def positional_embedding_backward(d_out: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Gradient of Algorithm 2 (spec: Algorithm 18, 18-positional-embedding-backward.md).

    d_out: de_p (d_e,). Returns {"W_p": dW_p (d_e, l_max)}, zero outside column t.
    """
    _need(cache, "positional_embedding", "t", "W_p_shape")
    t, (d_e, l_max) = cache["t"], cache["W_p_shape"]
    check_array("de_p", d_out, (d_e,))
    dW_p = np.zeros((d_e, l_max))  # Alg 18 L1
    dW_p[:, t] = d_out  # Alg 18 L2
    return {"W_p": dW_p}  # Alg 18 L3


def attention_backward(d_out: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Gradient of Algorithm 4 (spec: Algorithm 19, 19-attention-backward.md).

    d_out: dV_tilde (d_out, l_x). Returns the gradients of X (d_x, l_x), Z (d_z, l_z), W_q,
    b_q, W_k, b_k, W_v, b_v. For self-attention (Z = X) the caller adds "X" and "Z".
    """
    _need(cache, "attention", "X", "Z", "Q", "K", "V", "A", "W_q", "W_k", "W_v")
    X, Z, Q, K, V, A = (cache[k] for k in ("X", "Z", "Q", "K", "V", "A"))
    W_q, W_k, W_v = cache["W_q"], cache["W_k"], cache["W_v"]
    d_attn = Q.shape[0]
    check_array("dV_tilde", d_out, (V.shape[0], X.shape[1]))

    dV = d_out @ A.T  # Alg 19 L1, (d_out, l_z)
    dA = V.T @ d_out  # Alg 19 L2, (l_z, l_x)
    dS = softmax_columns_backward(dA, A) / np.sqrt(d_attn)  # Alg 19 L3
    dQ = K @ dS  # Alg 19 L4, (d_attn, l_x)
    dK = Q @ dS.T  # Alg 19 L5, (d_attn, l_z)
    dW_q, db_q = dQ @ X.T, dQ.sum(axis=1)  # Alg 19 L6
    dW_k, db_k = dK @ Z.T, dK.sum(axis=1)  # Alg 19 L7
    dW_v, db_v = dV @ Z.T, dV.sum(axis=1)  # Alg 19 L8
    dX = W_q.T @ dQ  # Alg 19 L9
    dZ = W_k.T @ dK + W_v.T @ dV  # Alg 19 L10
    return {"X": dX, "Z": dZ, "W_q": dW_q, "b_q": db_q, "W_k": dW_k,  # Alg 19 L11
            "b_k": db_k, "W_v": dW_v, "b_v": db_v}


_HEAD_PARAMETERS = ("W_q", "b_q", "W_k", "b_k", "W_v", "b_v")


def mh_attention_backward(d_out: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Gradient of Algorithm 5 (spec: Algorithm 20, 20-mhattention-backward.md).

    d_out: dV_tilde (d_out, l_x). Returns the gradients of X, Z, the stacked head parameters
    W_q (H, d_attn, d_x), b_q (H, d_attn), W_k, b_k, W_v (H, d_mid, d_z), b_v, and of W_o, b_o.
    """
    _need(cache, "mh_attention", "heads", "Y", "W_o")
    Y, W_o, heads = cache["Y"], cache["W_o"], cache["heads"]
    H = len(heads)
    d_mid = Y.shape[0] // H
    check_array("dV_tilde", d_out, (W_o.shape[0], Y.shape[1]))

    dW_o, db_o = d_out @ Y.T, d_out.sum(axis=1)  # Alg 20 L1
    dY = W_o.T @ d_out  # Alg 20 L2, (H*d_mid, l_x)
    dX, dZ = np.zeros_like(heads[0]["X"]), np.zeros_like(heads[0]["Z"])  # Alg 20 L3
    per_head: dict[str, list[np.ndarray]] = {name: [] for name in _HEAD_PARAMETERS}
    for h in range(H):  # Alg 20 L4
        dY_h = dY[h * d_mid:(h + 1) * d_mid, :]  # Alg 20 L5
        grads_h = attention_backward(dY_h, heads[h])  # Alg 20 L6
        dX, dZ = dX + grads_h["X"], dZ + grads_h["Z"]  # Alg 20 L7
        for name in _HEAD_PARAMETERS:
            per_head[name].append(grads_h[name])
    stacked = {name: np.stack(per_head[name]) for name in _HEAD_PARAMETERS}
    return {"X": dX, "Z": dZ, **stacked, "W_o": dW_o, "b_o": db_o}  # Alg 20 L8


def layer_norm_backward(d_out: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Gradient of Algorithm 6 (spec: Algorithm 21, 21-layer-norm-backward.md).

    d_out: de_hat (d_e,). Returns {"e": de, "gamma": dgamma, "beta": dbeta}, each (d_e,).
    """
    _need(cache, "layer_norm", "e", "m", "v", "gamma", "eps")
    e, m, v, gamma, eps = (cache[k] for k in ("e", "m", "v", "gamma", "eps"))
    d_e = e.shape[0]
    check_array("de_hat", d_out, (d_e,))

    sigma = np.sqrt(v + eps)  # Alg 21 L1
    x_hat = (e - m) / sigma
    dgamma = d_out * x_hat  # Alg 21 L2
    dbeta = d_out.copy()  # Alg 21 L3
    dx_hat = d_out * gamma  # Alg 21 L4
    de = (dx_hat - np.sum(dx_hat) / d_e - x_hat * (x_hat @ dx_hat) / d_e) / sigma  # Alg 21 L5
    return {"e": de, "gamma": dgamma, "beta": dbeta}  # Alg 21 L6


def mlp_backward(d_out: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Gradient of Algorithm 16 (spec: Algorithm 22, 22-mlp-backward.md).

    d_out: dY (d_e, l). Returns the gradients of X (d_e, l), W_mlp1 (d_mlp, d_e),
    b_mlp1 (d_mlp,), W_mlp2 (d_e, d_mlp) and b_mlp2 (d_e,).
    """
    _need(cache, "mlp", "X", "U", "G", "W_mlp1", "W_mlp2", "activation")
    X, U, G, W_mlp1, W_mlp2 = (cache[k] for k in ("X", "U", "G", "W_mlp1", "W_mlp2"))
    phi_prime = activation_derivative(cache["activation"])
    check_array("dY", d_out, X.shape)

    dW_mlp2, db_mlp2 = d_out @ G.T, d_out.sum(axis=1)  # Alg 22 L1
    dG = W_mlp2.T @ d_out  # Alg 22 L2, (d_mlp, l)
    dU = dG * phi_prime(U)  # Alg 22 L3
    dW_mlp1, db_mlp1 = dU @ X.T, dU.sum(axis=1)  # Alg 22 L4
    dX = W_mlp1.T @ dU  # Alg 22 L5
    return {"X": dX, "W_mlp1": dW_mlp1, "b_mlp1": db_mlp1,  # Alg 22 L6
            "W_mlp2": dW_mlp2, "b_mlp2": db_mlp2}


def unembedding_backward(d_out: float | np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Gradient of the loss -log p[y], p = Unembedding(e | W_u) (spec: Algorithm 23,
    23-unembedding-backward.md).

    d_out: dloss, a scalar (1.0 for a plain sum of token losses); ``cache`` as filled by
    reference_numpy.unembedding.unembedding_loss. Returns {"e": de (d_e,), "W_u": dW_u (N_V, d_e)}.
    """
    _need(cache, "unembedding_loss", "e", "W_u", "p", "y")
    e, W_u, p, y = (cache[k] for k in ("e", "W_u", "p", "y"))
    is_number = isinstance(d_out, (int, float)) and not isinstance(d_out, bool)
    dloss = np.asarray(d_out, dtype=np.float64) if is_number else d_out
    check_array("dloss", dloss, ())

    e_y = np.zeros_like(p)
    e_y[y] = 1.0
    dz = dloss * (p - e_y)  # Alg 23 L1, (N_V,)
    dW_u = np.outer(dz, e)  # Alg 23 L2
    de = W_u.T @ dz  # Alg 23 L3
    return {"e": de, "W_u": dW_u}  # Alg 23 L4
