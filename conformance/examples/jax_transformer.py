"""A small JAX implementation (plain jax.numpy, ours) held to the spec through an adapter.

    formal-transformers verify --impl conformance.examples.jax_transformer:JaxTransformer

Attention (Algorithm 4), multi-head attention (5), layer norm (6) and the D transformer (10)
written directly in jax.numpy in the adapter layout (batch, length, features), with the
canonical parameter names; the backward entries are jax.grad / jax.vjp of those forwards
(no hand-written gradient). JAX computes in float32 unless ``jax_enable_x64`` is set before
import, so the adapter declares float32 only (the suite casts its inputs accordingly).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from conformance.adapter import Adapter


# -- the implementation (Algorithms 4-6, 10) ---------------------------------------------------
def attention(X, Z, p, mask=None):
    """X (B, l_x, d_x), Z (B, l_z, d_z); Mask[t_z, t_x] (l_z, l_x) or None -> (B, l_x, d_out)."""
    Q = X @ p["W_q"].T + p["b_q"]
    K = Z @ p["W_k"].T + p["b_k"]
    V = Z @ p["W_v"].T + p["b_v"]
    S = Q @ jnp.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])  # (B, l_x, l_z)
    if mask is not None:
        S = jnp.where(jnp.asarray(mask).T, S, -jnp.inf)
    return jax.nn.softmax(S, axis=-1) @ V


def mhattention(X, Z, p, mask=None):
    """Heads stacked on axis 0 of W_q, ..., b_v; outputs concatenated, then W_o, b_o."""
    heads = [attention(X, Z, {k: p[k][h] for k in ("W_q", "b_q", "W_k", "b_k", "W_v", "b_v")},
                       mask) for h in range(p["W_q"].shape[0])]
    return jnp.concatenate(heads, axis=-1) @ p["W_o"].T + p["b_o"]


def layer_norm(X, p, eps):
    """Biased variance over the features of each position."""
    m = X.mean(-1, keepdims=True)
    v = ((X - m) ** 2).mean(-1, keepdims=True)
    return (X - m) / jnp.sqrt(v + eps) * p["gamma"] + p["beta"]


def mlp(X, p, activation):
    U = X @ p["W_mlp1"].T + p["b_mlp1"]
    G = {"relu": jax.nn.relu, "gelu": lambda u: jax.nn.gelu(u, approximate=False),
         "gelu_tanh": lambda u: jax.nn.gelu(u, approximate=True)}[activation](U)
    return G @ p["W_mlp2"].T + p["b_mlp2"]


def d_transformer(x, p, config):
    """x (B, l) int -> P (B, l, N_V): pre-LN, causal self-attention, final layer norm."""
    l = x.shape[1]
    X = p["W_e"].T[x] + p["W_p"].T[:l]
    causal = np.tril(np.ones((l, l), dtype=bool)).T  # Mask[t_z, t_x] = [t_z <= t_x]

    def sub(prefix):
        return {k[len(prefix):]: v for k, v in p.items() if k.startswith(prefix)}

    for i in range(config.L):
        ln1, ln2 = sub(f"layers.{i}.ln1."), sub(f"layers.{i}.ln2.")
        Xn = layer_norm(X, ln1, config.layer_norm_eps)
        X = X + mhattention(Xn, Xn, sub(f"layers.{i}.mha."), causal)
        X = X + mlp(layer_norm(X, ln2, config.layer_norm_eps), sub(f"layers.{i}.mlp."),
                    config.activation)
    X = layer_norm(X, sub("ln_f."), config.layer_norm_eps)
    return jax.nn.softmax(X @ p["W_u"].T, axis=-1)


# -- the adapter ------------------------------------------------------------------------------
def _np(value):
    return {k: np.asarray(v) for k, v in value.items()} if isinstance(value, dict) \
        else np.asarray(value)


def _vjp(fn, primals: dict, dY) -> dict:
    """Gradients of sum(fn(primals) * dY) for every entry of ``primals`` (jax.vjp)."""
    _, pullback = jax.vjp(fn, primals)
    return _np(pullback(jnp.asarray(dY))[0])


class JaxTransformer(Adapter):
    """conformance/examples/jax_transformer.py behind the adapter protocol (float32, CPU jaxlib)."""

    name = "jax.numpy example"
    dtypes = ("float32",)
    algorithms = ("attention", "mhattention", "layer_norm", "d_transformer",
                  "attention_backward", "mhattention_backward", "layer_norm_backward",
                  "d_transformer_backward")

    def attention(self, X, Z, params, mask=None):
        return _np(attention(X, Z, params, mask))

    def mhattention(self, X, Z, params, mask=None):
        return _np(mhattention(X, Z, params, mask))

    def layer_norm(self, X, params, eps):
        return _np(layer_norm(X, params, eps))

    def d_transformer(self, x, params, config):
        return _np(d_transformer(x, params, config))

    def attention_backward(self, X, Z, params, dY, mask=None):
        return _vjp(lambda a: attention(a["X"], a["Z"], a, mask), {"X": X, "Z": Z} | params,
                    dY)

    def mhattention_backward(self, X, Z, params, dY, mask=None):
        return _vjp(lambda a: mhattention(a["X"], a["Z"], a, mask),
                    {"X": X, "Z": Z} | params, dY)

    def layer_norm_backward(self, X, params, eps, dY):
        return _vjp(lambda a: layer_norm(a["X"], a, eps), {"X": X} | params, dY)

    def d_transformer_backward(self, x, params, config, dP):
        """jax.grad of <P, dP> with respect to every canonical parameter."""
        def inner(p):
            return jnp.sum(d_transformer(x, p, config) * dP)

        return _np(jax.grad(inner)(dict(params)))
