"""The modern decoder-only transformer, backward (spec: Algorithm 66,
spec/algorithms/66-modern-d-transformer-backward.md).

Literal float64 mirror: one sequence, column layout, walking the cache that
``reference_numpy.modern_decoder.modern_d_transformer(x, params, config, cache={})`` filled,
layer by layer from the last, calling the primitives' own backward passes (Algorithms 17-23,
29-31, 41's group sum, 45, 47)::

    modern_d_transformer_backward(dP (N_V, l), cache, config) -> grads

``grads`` holds one array per canonical parameter of the config
(``formal_transformers.canonical.parameter_shapes``): a tied W_e gets both of its uses, a
parameter the selections do not have gets no entry.
"""

from __future__ import annotations

import numpy as np

from formal_transformers.hyperparameters import ModernDTransformerConfig
from formal_transformers.validation import check_array
from reference_numpy.architectures_backward import (
    Grads,
    _accumulate,
    _entry,
    embed_backward,
    layer_norm_columns_backward,
    zero_gradients,
)
from reference_numpy.backward import (
    layer_norm_backward,
    mlp_backward,
    softmax_columns_backward,
)
from reference_numpy.gated_mlp import gated_mlp_backward
from reference_numpy.gq_attention import kv_head
from reference_numpy.qk_norm import qk_norm_backward
from reference_numpy.rmsnorm import rmsnorm_backward
from reference_numpy.rope import rope_backward
from reference_numpy.softcap import soft_cap_backward


def norm_columns_backward(dY: np.ndarray, cache: dict, prefix: str,
                          c: ModernDTransformerConfig, grads: Grads) -> np.ndarray:
    """NormBackward of every column (Algorithm 21 or 30): dX (d_e, l); dgamma (dbeta) added."""
    backward = layer_norm_backward if c.norm == "layer_norm" else rmsnorm_backward
    return layer_norm_columns_backward(dY, cache, prefix, grads, backward=backward)


def post_norm_backward(dX: np.ndarray, cache: dict, prefix: str, c: ModernDTransformerConfig,
                       grads: Grads) -> np.ndarray:
    """Lines 6 and 9: through the post-norm (Gemma 2) when there is one, else dX itself."""
    return norm_columns_backward(dX, cache, prefix, c, grads) if c.post_norms else dX


def mlp_block_backward(dM: np.ndarray, cache: dict, prefix: str, c: ModernDTransformerConfig,
                       grads: Grads) -> np.ndarray:
    """Line 7: the gated (Algorithm 31) or plain (Algorithm 22) MLP's backward: dX_tilde."""
    if c.mlp == "gated":
        g = gated_mlp_backward(dM, _entry(cache, prefix))  # only the biases it was given
    else:
        g = mlp_backward(dM, _entry(cache, prefix))
        if not c.mlp_bias:  # the forward added constant zeros: no parameter to differentiate
            g = {k: v for k, v in g.items() if k not in ("b_mlp1", "b_mlp2")}
    _accumulate(grads, prefix, g, inputs=("X",))
    return g["X"]


def scores_backward(dY: np.ndarray, a: dict, c: ModernDTransformerConfig
                    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Lines 11-15: from the heads' output gradients dY (H d_h, l) to (dQ (H of (d_h, l)),
    dK, dV (G each)); a kv head sums over the query heads that read it."""
    Q, K, V, Pi, T = a["Q"], a["K"], a["V"], a["Pi"], a["T"]
    d = c.d_head
    dK = [np.zeros_like(K_g) for K_g in K]  # Alg 66 L11
    dV = [np.zeros_like(V_g) for V_g in V]
    dQ = []
    for h in range(c.H):  # Alg 66 L12
        g = kv_head(h, c.H, c.G)
        dY_h = dY[h * d:(h + 1) * d, :]
        dV[g] = dV[g] + dY_h @ Pi[h].T
        dPi = V[g].T @ dY_h  # (l, l)
        dS = softmax_columns_backward(dPi, Pi[h])  # Alg 66 L13
        if c.attn_softcap is not None:
            dS = soft_cap_backward(dS, T[h])  # Alg 66 L14
        dQ.append(c.scale * K[g] @ dS)  # Alg 66 L15
        dK[g] = dK[g] + c.scale * Q[h] @ dS.T
    return dQ, dK, dV


def qk_backward(dQ: list[np.ndarray], dK: list[np.ndarray], a: dict, prefix: str,
                c: ModernDTransformerConfig, grads: Grads
                ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Lines 16-17: back through RoPE (Algorithm 29) and QK-norm (Algorithm 45)."""
    if c.positions == "rope":  # Alg 66 L16
        dQ = [rope_backward(dQ_h, a["rope"])["X"] for dQ_h in dQ]
        dK = [rope_backward(dK_g, a["rope"])["X"] for dK_g in dK]
    if c.qk_norm != "none":  # Alg 66 L17
        g_q = qk_norm_backward(np.concatenate(dQ), a["q_norm"])
        g_k = qk_norm_backward(np.concatenate(dK), a["k_norm"])
        grads[f"{prefix}.q_norm.gamma"] += g_q["gamma"]
        grads[f"{prefix}.k_norm.gamma"] += g_k["gamma"]
        dQ, dK = np.split(g_q["Q"], c.H), np.split(g_k["Q"], c.G)
    return dQ, dK


def projections_backward(dQ: list[np.ndarray], dK: list[np.ndarray], dV: list[np.ndarray],
                         a: dict, prefix: str, c: ModernDTransformerConfig, grads: Grads
                         ) -> np.ndarray:
    """Lines 18-19: the projections' weight (and bias) gradients, and dX_tilde (d_e, l)."""
    X_tilde = a["X_tilde"]
    biased = c.attention_bias in ("qkv", "all")
    dX_tilde = np.zeros_like(X_tilde)
    for s, dW, n in (("q", dQ, c.H), ("k", dK, c.G), ("v", dV, c.G)):
        for i in range(n):
            grads[f"{prefix}.W_{s}"][i] += dW[i] @ X_tilde.T  # Alg 66 L18
            if biased:
                grads[f"{prefix}.b_{s}"][i] += dW[i].sum(axis=1)
            dX_tilde = dX_tilde + a[f"W_{s}"][i].T @ dW[i]  # Alg 66 L19
    return dX_tilde


def gq_self_attention_backward(dA: np.ndarray, cache: dict, prefix: str,
                               c: ModernDTransformerConfig, grads: Grads) -> np.ndarray:
    """Lines 10-19 of Algorithm 66: dA (d_e, l) -> dX_tilde (d_e, l), the parameters'
    gradients added to ``grads``."""
    a = _entry(cache, prefix)
    check_array("dA", dA, a["X_tilde"].shape)
    grads[f"{prefix}.W_o"] += dA @ a["Y"].T  # Alg 66 L10
    if c.attention_bias == "all":
        grads[f"{prefix}.b_o"] += dA.sum(axis=1)
    dY = a["W_o"].T @ dA  # (H d_h, l)
    dQ, dK, dV = scores_backward(dY, a, c)
    dQ, dK = qk_backward(dQ, dK, a, prefix, c, grads)
    return projections_backward(dQ, dK, dV, a, prefix, c, grads)


def layer_backward(dX: np.ndarray, cache: dict, p: str, c: ModernDTransformerConfig,
                   grads: Grads) -> np.ndarray:
    """Lines 6-20: one layer backwards, from the gradient of its output to its input's."""
    dM = post_norm_backward(dX, cache, f"{p}.ln2_post", c, grads)  # Alg 66 L6
    dX_tilde = mlp_block_backward(dM, cache, f"{p}.mlp", c, grads)  # Alg 66 L7
    dX = dX + norm_columns_backward(dX_tilde, cache, f"{p}.ln2", c, grads)  # Alg 66 L8
    dA = post_norm_backward(dX, cache, f"{p}.ln1_post", c, grads)  # Alg 66 L9
    dX_tilde = gq_self_attention_backward(dA, cache, f"{p}.mha", c, grads)
    return dX + norm_columns_backward(dX_tilde, cache, f"{p}.ln1", c, grads)  # Alg 66 L20


def modern_d_transformer_backward(dP: np.ndarray, cache: dict,
                                  config: ModernDTransformerConfig) -> Grads:
    """Gradients of Algorithm 65 (spec: Algorithm 66): dP (N_V, l) -> one gradient per
    canonical parameter of ``config``. ``cache``: the dict a forward with ``cache={}``
    filled."""
    c = config
    P, X, W_u = _entry(cache, "P"), _entry(cache, "X_out"), _entry(cache, "W_u")
    check_array("dP", dP, P.shape)
    grads = zero_gradients(c)
    dZ = softmax_columns_backward(dP, P)  # Alg 66 L1
    if c.final_softcap is not None:
        dZ = soft_cap_backward(dZ, _entry(cache, "T_f"))  # Alg 66 L2
    dW_u = dZ @ X.T  # Alg 66 L3, (N_V, d_e)
    if c.tie_embeddings:
        grads["W_e"] += dW_u.T
    else:
        grads["W_u"] += dW_u
    dX = W_u.T @ dZ
    dX = norm_columns_backward(dX, cache, "ln_f", c, grads)  # Alg 66 L4
    for l in reversed(range(c.L)):  # Alg 66 L5
        dX = layer_backward(dX, cache, f"layers.{l}", c, grads)
    embed_backward(dX, cache, "embedding", grads, kappa=_entry(cache, "kappa"))  # Alg 66 L21
    return grads  # Alg 66 L22
