"""The modern decoder-only transformer, forward (spec: Algorithm 65,
spec/algorithms/65-modern-d-transformer.md).

Literal float64 mirror: one sequence, column layout X in R^{d_e x l}, loops over layers, heads
and positions where the pseudocode loops. Parameters are the canonical mapping of
``formal_transformers.canonical.modern_shapes``; the config is a ``ModernDTransformerConfig``.
With ``cache={}`` the forward keeps what its hand-written backward (Algorithm 66,
reference_numpy/modern_decoder_backward.py) reads, under the canonical prefixes as in
reference_numpy/architectures.py: ``"embedding"`` (per position the token and positional
caches), ``"layers.{l}.ln1"`` (one norm cache per column), ``"layers.{l}.mha"`` (the attention
activations), ``"layers.{l}.mlp"``, the post-norms, ``"ln_f"``, and ``X_out`` (the final
normalised columns), ``W_u``, ``T_f`` (the final cap's tanh) and ``P``.
"""

from __future__ import annotations

import numpy as np

from formal_transformers.hyperparameters import ModernDTransformerConfig
from reference_numpy.alibi import alibi
from reference_numpy.architectures import (
    Params,
    _sub_cache,
    causal_mask,
    check_model_parameters,
    check_token_sequence,
    group,
)
from reference_numpy.attention import softmax_columns
from reference_numpy.embeddings import positional_embedding, token_embedding
from reference_numpy.gated_mlp import gated_mlp
from reference_numpy.gq_attention import kv_head
from reference_numpy.layer_norm import layer_norm
from reference_numpy.masks import sliding_window_mask
from reference_numpy.mlp import mlp
from reference_numpy.qk_norm import qk_norm
from reference_numpy.rmsnorm import rmsnorm
from reference_numpy.rope import rope
from reference_numpy.softcap import soft_cap


def norm_columns(X: np.ndarray, p: dict[str, np.ndarray], c: ModernDTransformerConfig,
                 caches: list | None = None) -> np.ndarray:
    """Norm(X[:, t] | p) for every column: layer norm (gamma, beta) or RMSNorm (gamma).
    With a list ``caches``, each column's norm cache is appended to it."""
    columns = []
    for t in range(X.shape[1]):
        c_t = {} if caches is not None else None
        if c.norm == "layer_norm":
            columns.append(layer_norm(X[:, t], gamma=p["gamma"], beta=p["beta"], eps=c.norm_eps,
                                      cache=c_t))
        else:
            columns.append(rmsnorm(X[:, t], p["gamma"], c.norm_eps, c.norm_offset, cache=c_t))
        if caches is not None:
            caches.append(c_t)
    return np.stack(columns, axis=1)


def gq_self_attention(X_tilde: np.ndarray, a: dict[str, np.ndarray],
                      c: ModernDTransformerConfig, w: int | None, cache: dict | None = None
                      ) -> np.ndarray:
    """Lines 6-14 of Algorithm 65: grouped-query causal self-attention, (d_e, l) -> (d_e, l).

    The G kv heads' keys and values are computed once each; query head h reads kv head
    floor(h G / H) (Algorithm 40's ``kv_head``). With a dict ``cache``: X_tilde, the final
    Q (H of (d_h, l)), K and V (G each), the weights Pi (H of (l, l)), the capped scores' tanh
    T (H, with attn_softcap), the stacked outputs Y, the parameters and the QK-norm and RoPE
    caches."""
    l, d = X_tilde.shape[1], c.d_head
    ones, positions = np.ones((1, l)), np.arange(l)
    q_c, k_c, rope_c = ({}, {}, {}) if cache is not None else (None, None, None)
    b_q, b_k, b_v = (a.get(f"b_{s}", np.zeros((n, d))) for s, n in (("q", c.H), ("k", c.G),
                                                                      ("v", c.G)))
    Q = [a["W_q"][h] @ X_tilde + b_q[h][:, None] @ ones for h in range(c.H)]  # Alg 65 L6
    K = [a["W_k"][g] @ X_tilde + b_k[g][:, None] @ ones for g in range(c.G)]  # Alg 65 L6
    V = [a["W_v"][g] @ X_tilde + b_v[g][:, None] @ ones for g in range(c.G)]  # Alg 65 L6
    if c.qk_norm != "none":  # Alg 65 L7: Algorithm 44 on the stacked heads
        Q = np.split(qk_norm(np.concatenate(Q), a["q_norm.gamma"], c.H, c.qk_norm, c.norm_eps,
                             cache=q_c), c.H)
        K = np.split(qk_norm(np.concatenate(K), a["k_norm.gamma"], c.G, c.qk_norm, c.norm_eps,
                             cache=k_c), c.G)
    if c.positions == "rope":  # Alg 65 L8: column t rotated by position t (Algorithm 25)
        Q = [rope(Q_h, positions, c.rope, cache=rope_c) for Q_h in Q]
        K = [rope(K_g, positions, c.rope, cache=rope_c) for K_g in K]
    Bias = alibi(positions, positions, c.H) if c.positions == "alibi" else None  # (H, l, l)
    Mask = causal_mask(l) if w is None else sliding_window_mask(l, w)  # Alg 65 L12
    Ys, Pi, T = [], [], []
    for h in range(c.H):  # Alg 65 L6
        g = kv_head(h, c.H, c.G)
        S = c.scale * (K[g].T @ Q[h])  # Alg 65 L9
        if c.attn_softcap is not None:
            S = soft_cap(S, c.attn_softcap)  # Alg 65 L10
            T.append(S / c.attn_softcap)
        if Bias is not None:
            S = S + Bias[h]  # Alg 65 L11: -m_h (t_x - t_z), Algorithm 26 (signed)
        S = np.where(Mask, S, -np.inf)  # Alg 65 L12
        Pi.append(softmax_columns(S))
        Ys.append(V[g] @ Pi[h])  # Alg 65 L13
    b_o = a.get("b_o", np.zeros(c.d_e))
    Y = np.concatenate(Ys, axis=0)  # (H d_h, l)
    if cache is not None:
        cache.update(X_tilde=X_tilde, Q=Q, K=K, V=V, Pi=Pi, T=T, Y=Y, q_norm=q_c, k_norm=k_c,
                     rope=rope_c, **{name: a[name] for name in ("W_q", "W_k", "W_v", "W_o")})
    return a["W_o"] @ Y + b_o[:, None] @ ones  # Alg 65 L14


def mlp_block(X_tilde: np.ndarray, m: dict[str, np.ndarray], c: ModernDTransformerConfig,
              cache: dict | None = None) -> np.ndarray:
    """Line 17 of Algorithm 65: gated (Algorithm 28) or plain (Algorithm 16) MLP, (d_e, l).
    With a dict ``cache``, the MLP's own cache (Algorithm 31's or 22's needs)."""
    if c.mlp == "plain":
        zeros = {"b_mlp1": np.zeros(c.d_mlp), "b_mlp2": np.zeros(c.d_e)}
        return mlp(X_tilde, **(zeros | m), activation=c.activation, cache=cache)  # Alg 65 L17
    return gated_mlp(X_tilde, activation=c.activation, cache=cache, **m)  # Alg 65 L17


def embed(x: np.ndarray, params: Params, c: ModernDTransformerConfig, cache: dict | None
          ) -> np.ndarray:
    """Lines 2-3 of Algorithm 65: e_t = kappa W_e[:, x[t]] (+ W_p[:, t]), stacked (d_e, l).
    With a dict ``cache``, ``cache["embedding"]`` lists (token cache, positional cache or None)
    per position."""
    caches = _sub_cache(cache, "embedding", [])
    kappa = np.sqrt(c.d_e) if c.embedding_scale else 1.0
    _sub_cache(cache, "kappa", kappa)
    columns = []
    for t in range(len(x)):  # Alg 65 L2
        c_tok, c_pos = ({}, {}) if caches is not None else (None, None)
        e_t = kappa * token_embedding(x[t], params["W_e"], cache=c_tok)
        if c.positions == "learned":
            e_t = e_t + positional_embedding(t, params["W_p"], cache=c_pos)
        else:
            c_pos = None
        columns.append(e_t)
        if caches is not None:
            caches.append((c_tok, c_pos))
    return np.stack(columns, axis=1)  # Alg 65 L3


def _post_norm(A: np.ndarray, params: Params, prefix: str, c: ModernDTransformerConfig,
               cache: dict | None) -> np.ndarray:
    """Norm(A[:, t] | prefix) with post_norms (Gemma 2), else A itself."""
    if not c.post_norms:
        return A
    return norm_columns(A, group(params, prefix), c, _sub_cache(cache, prefix, []))


def modern_d_transformer(x, params: Params, config: ModernDTransformerConfig,
                         cache: dict | None = None) -> np.ndarray:
    """Modern decoder-only transformer (spec: Algorithm 65).

    x: (l,) token ids. Returns P: (N_V, l); column t is the distribution of x[t+1]. With
    ``cache={}`` the activations of the backward (Algorithm 66) are kept in it.
    """
    c = config
    params = check_model_parameters(c, params)
    x = check_token_sequence("x", x, c)  # Alg 65 L1
    X = embed(x, params, c, cache)  # Alg 65 L2-3
    for l in range(c.L):  # Alg 65 L4
        p = f"layers.{l}"
        X_tilde = norm_columns(X, group(params, f"{p}.ln1"), c,
                               _sub_cache(cache, f"{p}.ln1", []))  # Alg 65 L5
        A = gq_self_attention(X_tilde, group(params, f"{p}.mha"), c, c.window(l),
                              _sub_cache(cache, f"{p}.mha", {}))
        X = X + _post_norm(A, params, f"{p}.ln1_post", c, cache)  # Alg 65 L15
        X_tilde = norm_columns(X, group(params, f"{p}.ln2"), c,
                               _sub_cache(cache, f"{p}.ln2", []))  # Alg 65 L16
        M = mlp_block(X_tilde, group(params, f"{p}.mlp"), c, _sub_cache(cache, f"{p}.mlp", {}))
        X = X + _post_norm(M, params, f"{p}.ln2_post", c, cache)  # Alg 65 L18
    X = norm_columns(X, group(params, "ln_f"), c, _sub_cache(cache, "ln_f", []))  # Alg 65 L19
    W_u = params["W_e"].T if c.tie_embeddings else params["W_u"]
    Z = W_u @ X  # Alg 65 L20
    if c.final_softcap is not None:
        Z = soft_cap(Z, c.final_softcap)  # Alg 65 L21
    P = softmax_columns(Z)  # Alg 65 L22
    if cache is not None:
        cache.update(X_out=X, W_u=W_u, P=P,
                     T_f=Z / c.final_softcap if c.final_softcap is not None else None)
    return P
