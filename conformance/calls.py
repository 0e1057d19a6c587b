"""Call an algorithm of an adapter on a drawn case, by algorithm id.

Laws that hold for many algorithms (agreement with the reference, batch independence, finite
differences) are written once against these dispatchers instead of once per algorithm.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from conformance.bound import Bound

# Named axes of each forward output, for messages ("b=0, t=2, i=1").
AXES = {"token_embedding": ("b", "t", "i"), "positional_embedding": ("t", "i"),
        "basic_attention": ("b", "i"), "attention": ("b", "t_x", "i"),
        "mhattention": ("b", "t_x", "i"), "layer_norm": ("b", "t", "i"),
        "unembedding": ("b", "t", "v"), "mlp": ("b", "t", "i"),
        "d_transformer": ("b", "t", "v"), "e_transformer": ("b", "t", "v"),
        "ed_transformer": ("b", "t", "v"), "rope": ("b", "h", "t", "i"),
        "sinusoidal_embedding": ("t", "i"), "alibi": ("h", "t_z", "t_x"),
        "rmsnorm": ("b", "t", "i"), "gated_mlp": ("b", "t", "i"),
        "gq_attention": ("b", "t_x", "i"),
        "sliding_window_mask": ("t_z", "t_x"), "block_sparse_mask": ("t_z", "t_x"),
        "qk_norm": ("b", "t", "i"), "softcap": ("b", "t_x", "i"),
        "online_softmax_attention": ("b", "t_x", "i"),
        "patch_extraction": ("b", "n", "i"), "patch_embedding": ("b", "t", "i"),
        "vit_classifier": ("b", "k"),
        "modern_d_transformer": ("b", "t", "v")}
# Inputs with a batch axis 0, per forward algorithm.
BATCHED = {"token_embedding": ("x",), "basic_attention": ("e", "E_ctx"),
           "attention": ("X", "Z"), "mhattention": ("X", "Z"), "layer_norm": ("X",),
           "unembedding": ("X",), "mlp": ("X",), "d_transformer": ("x",),
           "e_transformer": ("x",), "ed_transformer": ("z", "x"), "rope": ("X",),
           "rmsnorm": ("X",), "gated_mlp": ("X",), "gq_attention": ("X", "Z"),
           "qk_norm": ("X",), "softcap": ("X", "Z"), "patch_extraction": ("I",),
           "patch_embedding": ("I",), "vit_classifier": ("I",),
           "online_softmax_attention": ("X", "Z"),
           "modern_d_transformer": ("x",)}
ARCHITECTURES = ("d_transformer", "e_transformer", "ed_transformer")


def forward(bound: Bound, alg: str, data: Mapping[str, Any]) -> np.ndarray:
    """The output of forward algorithm ``alg`` on the inputs in ``data``."""
    d = data
    if alg == "token_embedding":
        return bound.token_embedding(d["x"], d["params"])
    if alg == "positional_embedding":
        return bound.positional_embedding(d["l"], d["params"])
    if alg == "basic_attention":
        return bound.basic_attention(d["e"], d["E_ctx"], d["params"])
    if alg in ("attention", "mhattention"):
        return getattr(bound, alg)(d["X"], d["Z"], d["params"], d.get("mask"))
    if alg == "layer_norm":
        return bound.layer_norm(d["X"], d["params"], d["eps"])
    if alg == "unembedding":
        return bound.unembedding(d["X"], d["params"])
    if alg == "mlp":
        return bound.mlp(d["X"], d["params"], d["activation"])
    if alg == "ed_transformer":
        return bound.ed_transformer(d["z"], d["x"], d["params"], d["config"])
    if alg in ("d_transformer", "e_transformer", "modern_d_transformer"):
        return getattr(bound, alg)(d["x"], d["params"], d["config"])
    if alg == "sinusoidal_embedding":
        return bound.sinusoidal_embedding(d["positions"], d["d_e"], d["base"],
                                          d["index_offset"], d["dtype"])
    if alg == "alibi":
        return bound.alibi(d["positions_x"], d["positions_z"], d["H"], d["form"], d["dtype"])
    if alg == "rope":
        return bound.rope(d["X"], d["positions"], d["rope"])
    if alg == "rmsnorm":
        return bound.rmsnorm(d["X"], d["params"], d["eps"], d["offset"])
    if alg == "gated_mlp":
        return bound.gated_mlp(d["X"], d["params"], d["activation"])
    if alg == "gq_attention":
        return bound.gq_attention(d["X"], d["Z"], d["params"], d.get("mask"))
    if alg == "sliding_window_mask":
        return bound.sliding_window_mask(d["l"], d["w"])
    if alg == "block_sparse_mask":
        return bound.block_sparse_mask(d["l"], d["b"], d["c"])
    if alg == "qk_norm":
        return bound.qk_norm(d["X"], d["params"], d["H"], d["axis"], d["eps"])
    if alg == "softcap":
        return bound.softcap(d["X"], d["Z"], d["params"], d["c"], d.get("mask"))
    if alg == "online_softmax_attention":
        return bound.online_softmax_attention(d["X"], d["Z"], d["params"], d["block"],
                                              d.get("mask"))
    if alg == "patch_extraction":
        return bound.patch_extraction(d["I"], d["patch_size"])
    if alg == "patch_embedding":
        return bound.patch_embedding(d["I"], d["params"], d["patch_size"])
    if alg == "vit_classifier":
        return bound.vit_classifier(d["I"], d["params"], d["config"])
    raise KeyError(f"no forward dispatch for {alg!r}")


def backward_inputs(alg: str, data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The differentiable inputs of backward algorithm ``alg`` (named as in its gradient dict)."""
    params = dict(data.get("params", {}))
    if alg in ("attention_backward", "mhattention_backward", "gq_attention_backward",
               "softcap_backward", "online_softmax_attention_backward"):
        return {"X": data["X"], "Z": data["Z"]} | params
    if alg == "qk_norm_backward":
        return {"X": data["X"]} | params
    if alg == "vit_classifier_backward":
        return {"I": data["I"]} | params
    if alg in ("layer_norm_backward", "mlp_backward", "unembedding_backward", "rope_backward",
               "rmsnorm_backward", "gated_mlp_backward"):
        return {"X": data["X"]} | params
    return params  # embeddings and architectures: the parameters only


def backward(bound: Bound, alg: str, data: Mapping[str, Any], upstream: np.ndarray
             ) -> dict[str, np.ndarray]:
    """The gradients of ``alg`` (a backward id or ``<arch>_backward``) for ``upstream``.

    ``upstream`` is dY for the primitives, targets y for unembedding_backward, dP for the
    architectures.
    """
    d = data
    expected = {k: v.shape for k, v in backward_inputs(alg, d).items()}
    dtype = next(iter(d["params"].values())).dtype if d.get("params") else d["X"].dtype
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = {}
    if alg == "token_embedding_backward":
        args = (d["x"], d["params"], upstream)
    elif alg == "positional_embedding_backward":
        args = (d["l"], d["params"], upstream)
    elif alg in ("attention_backward", "mhattention_backward", "gq_attention_backward"):
        args, kwargs = (d["X"], d["Z"], d["params"], upstream), {"mask": d.get("mask")}
    elif alg == "softcap_backward":
        args, kwargs = (d["X"], d["Z"], d["params"], d["c"], upstream), {"mask": d.get("mask")}
    elif alg == "online_softmax_attention_backward":
        args = (d["X"], d["Z"], d["params"], d["block"], upstream)
        kwargs = {"mask": d.get("mask")}
    elif alg == "qk_norm_backward":
        args = (d["X"], d["params"], d["H"], d["axis"], d["eps"], upstream)
    elif alg == "layer_norm_backward":
        args = (d["X"], d["params"], d["eps"], upstream)
    elif alg == "mlp_backward":
        args = (d["X"], d["params"], d["activation"], upstream)
    elif alg == "unembedding_backward":
        args = (d["X"], d["params"], upstream)
    elif alg == "rope_backward":
        args = (d["X"], d["positions"], d["rope"], upstream)
    elif alg == "rmsnorm_backward":
        args = (d["X"], d["params"], d["eps"], d["offset"], upstream)
    elif alg == "gated_mlp_backward":
        args = (d["X"], d["params"], d["activation"], upstream)
    elif alg == "ed_transformer_backward":
        args = (d["z"], d["x"], d["params"], d["config"], upstream)
    elif alg == "vit_classifier_backward":
        args = (d["I"], d["params"], d["config"], upstream)
    elif alg in ("d_transformer_backward", "e_transformer_backward",
                 "modern_d_transformer_backward"):
        args = (d["x"], d["params"], d["config"], upstream)
    else:
        raise KeyError(f"no backward dispatch for {alg!r}")
    return bound.backward(alg, args, expected, dtype, **kwargs)


def loss_of(bound: Bound, alg: str, data: Mapping[str, Any], upstream: np.ndarray) -> float:
    """The scalar whose gradient ``backward`` returns: <upstream, forward> for the primitives
    and architectures, sum of -log P[y] for unembedding_backward."""
    fwd = alg.removesuffix("_backward")
    out = forward(bound, fwd, data)
    if alg == "unembedding_backward":
        picked = np.take_along_axis(out.astype(np.float64), upstream[..., None], axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):  # a broken P gives nan, not noise
            return float(-np.log(picked).sum())
    return float(np.sum(out.astype(np.float64) * upstream))


def output_shape(alg: str, data: Mapping[str, Any]) -> tuple[int, ...]:
    """Shape of forward ``alg``'s output, from the shapes of its inputs."""
    d, p = data, data["params"]
    shapes = {
        "token_embedding": lambda: d["x"].shape + p["W_e"].shape[:1],
        "positional_embedding": lambda: (d["l"], p["W_p"].shape[0]),
        "basic_attention": lambda: (d["e"].shape[0], p["W_v"].shape[0]),
        "attention": lambda: d["X"].shape[:2] + p["W_v"].shape[:1],
        "mhattention": lambda: d["X"].shape[:2] + p["W_o"].shape[:1],
        "layer_norm": lambda: d["X"].shape, "mlp": lambda: d["X"].shape,
        "rope": lambda: d["X"].shape, "rmsnorm": lambda: d["X"].shape,
        "gated_mlp": lambda: d["X"].shape,
        "unembedding": lambda: d["X"].shape[:2] + p["W_u"].shape[:1],
        "gq_attention": lambda: d["X"].shape[:2] + p["W_o"].shape[:1],
        "qk_norm": lambda: d["X"].shape,
        "softcap": lambda: d["X"].shape[:2] + p["W_v"].shape[:1],
        "online_softmax_attention": lambda: d["X"].shape[:2] + p["W_v"].shape[:1],
        "vit_classifier": lambda: (d["I"].shape[0], d["config"].n_classes),
    }
    if alg in ARCHITECTURES or alg == "modern_d_transformer":
        return d["x"].shape + (d["config"].N_V,)
    return tuple(shapes[alg]())


def upstream_for(alg: str, data: Mapping[str, Any], rng: np.random.Generator, dtype: Any
                 ) -> np.ndarray:
    """A random upstream gradient for backward ``alg`` (targets y for unembedding_backward)."""
    if alg == "unembedding_backward":
        return data["y"]
    shape = output_shape(alg.removesuffix("_backward"), data)
    return rng.standard_normal(shape).astype(dtype)


def fresh_like(value: np.ndarray, rng: np.random.Generator, high: int | None = None
               ) -> np.ndarray:
    """New random content of the same shape and dtype: token ids below ``high``, or normals."""
    if np.issubdtype(value.dtype, np.integer):
        return rng.integers(0, high, value.shape).astype(value.dtype)
    return rng.standard_normal(value.shape).astype(value.dtype)


def vocabulary(data: Mapping[str, Any]) -> int | None:
    """N_V of a case with token inputs (from its config or W_e), else None."""
    if "config" in data:
        return getattr(data["config"], "N_V", None)
    if "W_e" in data.get("params", {}):
        return data["params"]["W_e"].shape[1]
    return None
