"""The vision path, forward and backward (spec: Algorithms 75-78, spec/algorithms/75-78).

Literal float64 mirror of the pseudocode. Layouts are the spec's: an image is ``I`` (C, h, w),
channel axis first; patch columns ``X_p`` (C P^2, N); token columns ``X`` (d_e, N + 1) with
the class token in column 0. Signatures::

    patch_extraction(I, patch_size) -> X_p                        Algorithm 75 (loops)
    patch_extraction_vectorised(I, patch_size) -> X_p             the same map: views + one copy
    patch_reassembly(X_p, C, h, w, patch_size) -> I               its inverse
    patch_embedding(I, W_pe, b_pe, e_cls, W_p, patch_size) -> X   Algorithm 76 (W_p may be None)
    vit_classifier(I, params, config, cache=None) -> p            Algorithm 77, p (K,)
    vit_classifier_backward(dp, cache, config) -> (dI, grads)     Algorithm 78
"""

from __future__ import annotations

import numpy as np

from formal_transformers.errors import ConfigError
from formal_transformers.hyperparameters import ViTConfig
from formal_transformers.validation import check_array
from reference_numpy.architectures import (
    _sub_cache,
    attend,
    check_model_parameters,
    layer_norm_columns,
    position_wise_mlp,
)
from reference_numpy.architectures_backward import (
    _entry,
    attend_backward,
    layer_norm_columns_backward,
    mlp_columns_backward,
    zero_gradients,
)
from reference_numpy.attention import softmax_columns


def _grid(h: int, w: int, P: object) -> tuple[int, int]:
    """(n_h, n_w) for patch size P, which must be a positive integer dividing h and w."""
    if not isinstance(P, (int, np.integer)) or isinstance(P, bool) or P < 1:
        raise ConfigError(f"patch_size must be a positive integer, got {P!r}")
    if h % P or w % P:
        raise ConfigError(f"patch_size P = {P} must divide the image height h = {h} and width "
                          f"w = {w}: a partial patch is never padded or dropped")
    return h // P, w // P


def patch_extraction(I: np.ndarray, patch_size: int) -> np.ndarray:
    """Patch extraction (spec: Algorithm 75): I (C, h, w) -> X_p (C P^2, N), N = (h/P)(w/P)."""
    check_array("I", I, ("C", "h", "w"))
    C, h, w = I.shape
    P = patch_size
    n_h, n_w = _grid(h, w, P)  # Alg 75 L1
    X_p = np.empty((C * P * P, n_h * n_w), dtype=np.float64)
    for r in range(n_h):  # Alg 75 L2
        for c in range(n_w):  # Alg 75 L3
            n = r * n_w + c  # Alg 75 L4
            for k in range(C):  # Alg 75 L5
                for i in range(P):
                    for j in range(P):
                        X_p[k * P * P + i * P + j, n] = I[k, r * P + i, c * P + j]  # Alg 75 L6
    return X_p  # Alg 75 L7


def patch_extraction_vectorised(I: np.ndarray, patch_size: int) -> np.ndarray:
    """Algorithm 75 without loops: a strided view, an axis permutation (a view), one copy.

    I.reshape(C, n_h, P, n_w, P) reuses I's memory; transpose only changes strides; the
    final reshape to (N, C P^2) must copy (the permuted axes are not contiguous): one new
    array of C h w values, the image's size. The transpose to (C P^2, N) is a view again.
    """
    check_array("I", I, ("C", "h", "w"))
    C, h, w = I.shape
    P = patch_size
    n_h, n_w = _grid(h, w, P)
    grid = I.reshape(C, n_h, P, n_w, P)  # a view
    patches = grid.transpose(1, 3, 0, 2, 4)  # (n_h, n_w, C, P, P), a view
    return patches.reshape(n_h * n_w, C * P * P).T  # the one copy, then a view


def patch_reassembly(X_p: np.ndarray, C: int, h: int, w: int, patch_size: int) -> np.ndarray:
    """The inverse of Algorithm 75 (Algorithm 78 line 9): X_p (C P^2, N) -> I (C, h, w)."""
    P = patch_size
    n_h, n_w = _grid(h, w, P)
    check_array("X_p", X_p, (C * P * P, n_h * n_w))
    I = np.empty((C, h, w), dtype=np.float64)
    for r in range(n_h):
        for c in range(n_w):
            for k in range(C):
                for i in range(P):
                    for j in range(P):
                        I[k, r * P + i, c * P + j] = X_p[k * P * P + i * P + j, r * n_w + c]
    return I


def patch_embedding(I: np.ndarray, W_pe: np.ndarray, b_pe: np.ndarray, e_cls: np.ndarray,
                    W_p: np.ndarray | None, patch_size: int, cache: dict | None = None
                    ) -> np.ndarray:
    """Patch embedding with a class token (spec: Algorithm 76): I (C, h, w) -> X (d_e, N + 1).

    W_pe (d_e, C P^2), b_pe (d_e,), e_cls (d_e,), W_p (d_e, N + 1) or None (positions = none).
    """
    X_p = patch_extraction(I, patch_size)  # Alg 76 L1
    d_e = W_pe.shape[0]
    check_array("W_pe", W_pe, (d_e, X_p.shape[0]))
    check_array("b_pe", b_pe, (d_e,))
    check_array("e_cls", e_cls, (d_e,))
    N = X_p.shape[1]
    columns = [e_cls]  # Alg 76 L3
    for n in range(N):  # Alg 76 L2
        columns.append(W_pe @ X_p[:, n] + b_pe)
    X = np.stack(columns, axis=1)  # Alg 76 L4
    if W_p is not None:  # Alg 76 L5
        check_array("W_p", W_p, (d_e, N + 1))
        X = X + W_p
    if cache is not None:
        cache.update(X_p=X_p, shape=I.shape, P=patch_size)
    return X  # Alg 76 L6


def _check_image(I: object, config: ViTConfig) -> np.ndarray:
    check_array("I", I, (config.C, config.height, config.width))
    return np.asarray(I, dtype=np.float64)


def vit_classifier(I: np.ndarray, params, config: ViTConfig, cache: dict | None = None
                   ) -> np.ndarray:
    """ViT classifier (spec: Algorithm 77, spec/algorithms/77-vit-classifier.md).

    I: (C, height, width). Returns p: (n_classes,). With ``cache={}`` the activations the
    backward (Algorithm 78) needs are kept in it.
    """
    params = check_model_parameters(config, params)
    I = _check_image(I, config)
    eps, sigma = config.layer_norm_eps, config.activation
    X = patch_embedding(I, params["W_pe"], params["b_pe"], params["e_cls"],  # Alg 77 L1
                        params.get("W_p"), config.patch_size,
                        cache=_sub_cache(cache, "embedding", {}))
    for l in range(config.L):  # Alg 77 L2
        p = f"layers.{l}"
        X_tilde = layer_norm_columns(X, params, f"{p}.ln1", eps, cache)  # Alg 77 L3
        X = X + attend(X_tilde, X_tilde, params, f"{p}.mha", None, cache)  # Alg 77 L4
        X_tilde = layer_norm_columns(X, params, f"{p}.ln2", eps, cache)  # Alg 77 L5
        X = X + position_wise_mlp(X_tilde, params, f"{p}.mlp", sigma, cache)  # Alg 77 L6
    y = layer_norm_columns(X[:, :1], params, "ln_f", eps, cache)[:, 0]  # Alg 77 L7
    p_out = softmax_columns((params["W_head"] @ y + params["b_head"])[:, None])[:, 0]  # Alg 77 L8
    if cache is not None:
        cache.update(y=y, p=p_out, n_tokens=X.shape[1], W_head=params["W_head"],
                     W_pe=params["W_pe"])
    return p_out


def vit_classifier_backward(dp: np.ndarray, cache: dict, config: ViTConfig
                            ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Gradients of Algorithm 77 (spec: Algorithm 78): dp (K,) -> (dI (C, h, w), grads).

    ``cache`` is the dict a forward ``vit_classifier(..., cache={})`` filled.
    """
    p, y = _entry(cache, "p"), _entry(cache, "y")
    check_array("dp", dp, (config.n_classes,))
    grads = zero_gradients(config)
    d_logits = p * (dp - (p @ dp))  # Alg 78 L1
    grads["W_head"] += np.outer(d_logits, y)  # Alg 78 L2
    grads["b_head"] += d_logits
    dy = _entry(cache, "W_head").T @ d_logits  # Alg 78 L2
    dX = np.zeros((config.d_e, _entry(cache, "n_tokens")))  # Alg 78 L3
    dX[:, :1] = layer_norm_columns_backward(dy[:, None], cache, "ln_f", grads)  # Alg 78 L3
    for l in reversed(range(config.L)):  # Alg 78 L4
        q = f"layers.{l}"
        dX_tilde = mlp_columns_backward(dX, cache, f"{q}.mlp", grads)  # Alg 78 L5
        dX = dX + layer_norm_columns_backward(dX_tilde, cache, f"{q}.ln2", grads)
        dQ, dKV = attend_backward(dX, cache, f"{q}.mha", grads)  # Alg 78 L6
        dX = dX + layer_norm_columns_backward(dQ + dKV, cache, f"{q}.ln1", grads)
    if "W_p" in grads:  # Alg 78 L7
        grads["W_p"] += dX
    grads["e_cls"] += dX[:, 0]  # Alg 78 L7
    emb = _entry(cache, "embedding")
    X_p, W_pe = emb["X_p"], _entry(cache, "W_pe")
    grads["W_pe"] += dX[:, 1:] @ X_p.T  # Alg 78 L8
    grads["b_pe"] += dX[:, 1:].sum(axis=1)  # Alg 78 L8
    dX_p = W_pe.T @ dX[:, 1:]  # Alg 78 L8
    C, h, w = emb["shape"]
    dI = patch_reassembly(dX_p, C, h, w, emb["P"])  # Alg 78 L9
    return dI, grads  # Alg 78 L10

