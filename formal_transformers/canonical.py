"""Canonical parameters: one flat mapping from spec names to arrays (ARCHITECTURE.md).

Names and shapes follow the spec's column convention, so ``W_q`` of one head is
``R^{d_attn x d_x}`` -- the same orientation as ``torch.nn.Linear.weight``. Heads are stacked
on a leading axis: ``layers.0.mha.W_q[h]`` is W_q^h of Algorithm 5.

    D transformer (Alg 10)   W_e, W_p, layers.{l}.{ln1,mha,ln2,mlp}.*, ln_f.*, W_u
    E transformer (Alg 9)    W_e, W_p, [emb_ln.*], layers.{l}.{mha,ln1,mlp,ln2}.*, W_f, b_f,
                             ln_f.*, W_u
    ED transformer (Alg 8)   W_e, W_p, enc.layers.{l}.{mha,ln1,mlp,ln2}.*,
                             dec.layers.{l}.{self_mha,ln3,cross_mha,ln4,mlp,ln5}.*, W_u
    modern D transformer     W_e, [W_p], layers.{l}.{ln1,mha,[ln1_post],ln2,mlp,[ln2_post]}.*,
      (Alg 65)               ln_f.*, [W_u]: Algorithm 10's names where the meaning is the same;
                             modern_shapes says which entries the selections add or drop

Declared variants (``formal_transformers.hyperparameters.VARIANTS``) change the set:
``tied_unembedding`` has no ``W_u`` entry (W_u = W_e^T), ``bias=False`` has no ``b_*`` and
no ``beta`` entries (they are 0). ``full_parameters`` restores the paper's full set from a
variant's parameters and ``fold_gradients`` maps gradients of the full set back (the gradient
of a tied W_e is the sum of both uses).

This module is the one place that knows these names: initialisers, converters and loaders of
every package go through it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from formal_transformers.atomic import atomic_write
from formal_transformers.errors import ConfigError, ParameterFileError
from formal_transformers.hyperparameters import (
    Config,
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
    ModernDTransformerConfig,
    ViTConfig,
    config_from_dict,
)

Shape = tuple[int, ...]
PARAMS_FILE = "params.safetensors"
CONFIG_FILE = "config.json"


def is_bias(name: str) -> bool:
    """A bias b_* or a layer-norm offset beta: the entries ``bias=False`` removes."""
    leaf = name.rsplit(".", 1)[-1]
    return leaf == "beta" or leaf.startswith("b_")


def _biased(shapes: dict[str, Shape], bias: bool) -> dict[str, Shape]:
    return shapes if bias else {k: v for k, v in shapes.items() if not is_bias(k)}


def mha_shapes(prefix: str, H: int, d_attn: int, d_mid: int, d_x: int, d_z: int, d_out: int,
               bias: bool = True) -> dict[str, Shape]:
    """Shapes of one multi-head attention's parameters (spec: Algorithm 5); ``bias=False``
    leaves out b_q, b_k, b_v, b_o."""
    return _biased({
        f"{prefix}.W_q": (H, d_attn, d_x), f"{prefix}.b_q": (H, d_attn),
        f"{prefix}.W_k": (H, d_attn, d_z), f"{prefix}.b_k": (H, d_attn),
        f"{prefix}.W_v": (H, d_mid, d_z), f"{prefix}.b_v": (H, d_mid),
        f"{prefix}.W_o": (d_out, H * d_mid), f"{prefix}.b_o": (d_out,),
    }, bias)


def layer_norm_shapes(prefix: str, d_e: int, bias: bool = True) -> dict[str, Shape]:
    """Shapes of one layer norm's scale and offset (spec: Algorithm 6); ``bias=False``: gamma
    only."""
    return _biased({f"{prefix}.gamma": (d_e,), f"{prefix}.beta": (d_e,)}, bias)


def mlp_shapes(prefix: str, d_e: int, d_mlp: int, bias: bool = True) -> dict[str, Shape]:
    """Shapes of one position-wise MLP (spec: Algorithm 16); ``bias=False``: no b_mlp1/2."""
    return _biased({
        f"{prefix}.W_mlp1": (d_mlp, d_e), f"{prefix}.b_mlp1": (d_mlp,),
        f"{prefix}.W_mlp2": (d_e, d_mlp), f"{prefix}.b_mlp2": (d_e,),
    }, bias)


def _self_mha(prefix: str, c: Config) -> dict[str, Shape]:
    return mha_shapes(prefix, c.H, c.d_attn, c.d_mid, c.d_e, c.d_e, c.d_e)


def norm_shapes(prefix: str, d: int, norm: str) -> dict[str, Shape]:
    """Layer norm (gamma, beta; Algorithm 6) or RMSNorm (gamma only) over d features."""
    return layer_norm_shapes(prefix, d) if norm == "layer_norm" else {f"{prefix}.gamma": (d,)}


def gq_attention_shapes(prefix: str, c: ModernDTransformerConfig) -> dict[str, Shape]:
    """Grouped-query self-attention of the modern decoder: H query heads, G key/value heads,
    each of size d_head; biases as ``attention_bias`` selects; QK-norm gains (Algorithm 44)."""
    H, G, d, d_e = c.H, c.G, c.d_head, c.d_e
    shapes: dict[str, Shape] = {f"{prefix}.W_q": (H, d, d_e), f"{prefix}.W_k": (G, d, d_e),
                                f"{prefix}.W_v": (G, d, d_e)}
    if c.attention_bias in ("qkv", "all"):
        shapes |= {f"{prefix}.b_q": (H, d), f"{prefix}.b_k": (G, d), f"{prefix}.b_v": (G, d)}
    if c.qk_norm == "per_head":
        shapes |= {f"{prefix}.q_norm.gamma": (d,), f"{prefix}.k_norm.gamma": (d,)}
    elif c.qk_norm == "projection":
        shapes |= {f"{prefix}.q_norm.gamma": (H * d,), f"{prefix}.k_norm.gamma": (G * d,)}
    shapes[f"{prefix}.W_o"] = (d_e, H * d)
    if c.attention_bias == "all":
        shapes[f"{prefix}.b_o"] = (d_e,)
    return shapes


def modern_mlp_shapes(prefix: str, c: ModernDTransformerConfig) -> dict[str, Shape]:
    """Plain (Algorithm 16: W_mlp1, W_mlp2) or gated (W_gate, W_up, W_down) MLP."""
    d_e, d_mlp = c.d_e, c.d_mlp
    if c.mlp == "plain":
        shapes = mlp_shapes(prefix, d_e, d_mlp)
    else:
        shapes = {f"{prefix}.W_gate": (d_mlp, d_e), f"{prefix}.b_gate": (d_mlp,),
                  f"{prefix}.W_up": (d_mlp, d_e), f"{prefix}.b_up": (d_mlp,),
                  f"{prefix}.W_down": (d_e, d_mlp), f"{prefix}.b_down": (d_e,)}
    if not c.mlp_bias:
        shapes = {k: v for k, v in shapes.items() if not k.rsplit(".", 1)[1].startswith("b_")}
    return shapes


def modern_shapes(c: ModernDTransformerConfig) -> dict[str, Shape]:
    """Canonical entries of the modern D transformer (spec: Algorithm 65), in a fixed order."""
    shapes: dict[str, Shape] = {"W_e": (c.d_e, c.N_V)}
    if c.positions == "learned":
        shapes["W_p"] = (c.d_e, c.l_max)
    for l in range(c.L):
        p = f"layers.{l}"
        shapes |= norm_shapes(f"{p}.ln1", c.d_e, c.norm) | gq_attention_shapes(f"{p}.mha", c)
        if c.post_norms:
            shapes |= norm_shapes(f"{p}.ln1_post", c.d_e, c.norm)
        shapes |= norm_shapes(f"{p}.ln2", c.d_e, c.norm) | modern_mlp_shapes(f"{p}.mlp", c)
        if c.post_norms:
            shapes |= norm_shapes(f"{p}.ln2_post", c.d_e, c.norm)
    shapes |= norm_shapes("ln_f", c.d_e, c.norm)
    if not c.tie_embeddings:
        shapes["W_u"] = (c.N_V, c.d_e)
    return shapes


def vit_parameter_shapes(c: ViTConfig) -> dict[str, Shape]:
    """The ViT classifier's canonical parameters (spec: Algorithms 76-77), in order."""
    shapes: dict[str, Shape] = {"W_pe": (c.d_e, c.d_patch), "b_pe": (c.d_e,), "e_cls": (c.d_e,)}
    if c.positions == "learned":
        shapes["W_p"] = (c.d_e, c.n_patches + 1)
    for l in range(c.L):
        p = f"layers.{l}"
        shapes |= layer_norm_shapes(f"{p}.ln1", c.d_e) | _self_mha(f"{p}.mha", c)
        shapes |= layer_norm_shapes(f"{p}.ln2", c.d_e) | mlp_shapes(f"{p}.mlp", c.d_e, c.d_mlp)
    return shapes | layer_norm_shapes("ln_f", c.d_e) | {"W_head": (c.n_classes, c.d_e),
                                                          "b_head": (c.n_classes,)}


def full_parameter_shapes(config: Config) -> dict[str, Shape]:
    """The paper's full parameter set of an architecture (every bias, beta and W_u), whatever
    the config's variants, in canonical order."""
    c = config
    if isinstance(c, ModernDTransformerConfig):
        return modern_shapes(c)
    if isinstance(c, ViTConfig):
        return vit_parameter_shapes(c)
    shapes: dict[str, Shape] = {"W_e": (c.d_e, c.N_V), "W_p": (c.d_e, c.l_max)}
    if isinstance(c, DTransformerConfig):
        for l in range(c.L):
            p = f"layers.{l}"
            shapes |= layer_norm_shapes(f"{p}.ln1", c.d_e) | _self_mha(f"{p}.mha", c)
            shapes |= layer_norm_shapes(f"{p}.ln2", c.d_e) | mlp_shapes(f"{p}.mlp", c.d_e, c.d_mlp)
        shapes |= layer_norm_shapes("ln_f", c.d_e)
    elif isinstance(c, ETransformerConfig):
        if c.embedding_layer_norm:
            shapes |= layer_norm_shapes("emb_ln", c.d_e)
        for l in range(c.L):
            p = f"layers.{l}"
            shapes |= _self_mha(f"{p}.mha", c) | layer_norm_shapes(f"{p}.ln1", c.d_e)
            shapes |= mlp_shapes(f"{p}.mlp", c.d_e, c.d_mlp) | layer_norm_shapes(f"{p}.ln2", c.d_e)
        shapes |= {"W_f": (c.d_e, c.d_e), "b_f": (c.d_e,)} | layer_norm_shapes("ln_f", c.d_e)
    elif isinstance(c, EDTransformerConfig):
        for l in range(c.L_enc):
            p = f"enc.layers.{l}"
            shapes |= _self_mha(f"{p}.mha", c) | layer_norm_shapes(f"{p}.ln1", c.d_e)
            shapes |= mlp_shapes(f"{p}.mlp", c.d_e, c.d_mlp) | layer_norm_shapes(f"{p}.ln2", c.d_e)
        for l in range(c.L_dec):
            p = f"dec.layers.{l}"
            shapes |= _self_mha(f"{p}.self_mha", c) | layer_norm_shapes(f"{p}.ln3", c.d_e)
            shapes |= _self_mha(f"{p}.cross_mha", c) | layer_norm_shapes(f"{p}.ln4", c.d_e)
            shapes |= mlp_shapes(f"{p}.mlp", c.d_e, c.d_mlp) | layer_norm_shapes(f"{p}.ln5", c.d_e)
    else:
        raise TypeError("config must be one of the architecture configs, "
                        f"got {type(config).__name__}")
    shapes["W_u"] = (c.N_V, c.d_e)
    return shapes


def parameter_shapes(config: Config) -> dict[str, Shape]:
    """Every canonical parameter name of an architecture and its shape, in a fixed order:
    the full set less ``W_u`` when ``tied_unembedding`` and less every bias and beta when
    ``bias`` is False (spec: "Hyperparameter variants" of Algorithms 7-10). The ViT has no
    declared variants, and the modern decoder's tying and biases are selections of its own
    config (Algorithm 65), already in its shapes."""
    if isinstance(config, (ViTConfig, ModernDTransformerConfig)):
        return full_parameter_shapes(config)
    shapes = _biased(full_parameter_shapes(config), config.bias)
    if config.tied_unembedding:
        del shapes["W_u"]
    return shapes


def full_parameters(config: Config, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The paper's full parameter set from a variant's parameters: W_u = W_e^T when tied,
    every absent bias and beta 0 (same dtype as W_e). Entries are not copied."""
    W_e = params["W_e"]
    full = {}
    for name, shape in full_parameter_shapes(config).items():
        if name in params:
            full[name] = params[name]
        elif name == "W_u" and getattr(config, "tied_unembedding", False):
            full[name] = W_e.T  # W_u = W_e^T: one parameter (spec: Algorithm 7, variants)
        else:
            full[name] = np.zeros(shape, dtype=W_e.dtype)  # bias = False: b = 0, beta = 0
    return full


def fold_gradients(config: Config, full_grads: Mapping[str, np.ndarray]
                   ) -> dict[str, np.ndarray]:
    """Gradients of a variant's own parameters from those of the full set: a tied W_e gets
    the sum of both uses, dW_e + dW_u^T; absent biases and betas are dropped."""
    grads = {name: full_grads[name] for name in parameter_shapes(config)}
    if getattr(config, "tied_unembedding", False):
        grads["W_e"] = full_grads["W_e"] + full_grads["W_u"].T
    return grads


# A primitive's biases and the weight each belongs to (spec: Algorithms 3-6 and 16): b_<s> has
# the shape of W_<s> less its input axis; beta has gamma's shape.
PRIMITIVE_BIASES = {"b_q": "W_q", "b_k": "W_k", "b_v": "W_v", "b_o": "W_o",
                    "b_mlp1": "W_mlp1", "b_mlp2": "W_mlp2", "beta": "gamma"}


def zero_biases(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A primitive's parameters under the variant ``bias=False`` as the paper's full set:
    every bias (and beta) whose weight is present but which is absent itself is 0 (spec:
    "Declared variant: bias" of Algorithms 4-6 and 16). Present entries are not copied."""
    full = dict(params)
    for bias, weight in PRIMITIVE_BIASES.items():
        if bias not in full and weight in full:
            W = full[weight]
            full[bias] = np.zeros(W.shape if bias == "beta" else W.shape[:-1], dtype=W.dtype)
    return full


def without_variants(config: Config) -> Config:
    """The same hyperparameters with every declared variant at the spec's default."""
    from formal_transformers.hyperparameters import VARIANTS

    return dataclasses.replace(config, **VARIANTS)


def parameter_count(config: Config) -> int:
    """Number of scalar parameters, the sum of the products of the canonical shapes."""
    return sum(int(np.prod(s)) for s in parameter_shapes(config).values())


def init_parameters(config: Config, rng: np.random.Generator, std: float = 0.02,
                    dtype: np.dtype | type = np.float64) -> dict[str, np.ndarray]:
    """Seeded initialisation: weights N(0, std^2), biases and beta 0, gamma 1 (and the
    padding column W_e[:, padding_idx] 0)."""
    params: dict[str, np.ndarray] = {}
    for name, shape in parameter_shapes(config).items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "gamma":
            value = np.ones(shape)
        elif is_bias(name):
            value = np.zeros(shape)
        else:
            value = rng.normal(0.0, std, size=shape)
        params[name] = value.astype(dtype)
    return zero_padding_column(config, params)


def zero_padding_column(config: Config, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Set W_e[:, padding_idx] = 0 in place when the config declares a padding_idx."""
    if getattr(config, "padding_idx", None) is not None:
        params["W_e"][:, config.padding_idx] = 0
    return params


def no_padding_gradient(grads: dict[str, np.ndarray], padding_idx: int | None
                        ) -> dict[str, np.ndarray]:
    """The token embedding's gradients under the variant ``padding_idx`` p: the lookup sends
    none to W_e[:, p] (spec: Algorithm 17 with Algorithm 1's "Declared variant"); in place."""
    if padding_idx is not None:
        grads["W_e"][:, padding_idx] = 0
    return grads


def random_parameters(config: Config, rng: np.random.Generator, scale: float = 0.7
                      ) -> dict[str, np.ndarray]:
    """Every canonical entry drawn N(0, scale^2), layer-norm gammas around 1: parameters with
    nothing trivial (non-zero biases and offsets), for tests and agreement checks."""
    params = {}
    for name, shape in parameter_shapes(config).items():
        value = rng.normal(0.0, scale, size=shape)
        params[name] = 1.0 + 0.3 * value if name.endswith(".gamma") else value
    return zero_padding_column(config, params)


def check_parameters(config: Config, params: Mapping[str, object], source: str = "parameters"
                     ) -> None:
    """Raise ParameterFileError naming the first missing, extra or mis-shaped entry."""
    expected = parameter_shapes(config)
    missing = [k for k in expected if k not in params]
    if missing:
        raise ParameterFileError(
            f"{source}: missing entry '{missing[0]}' (expected shape {expected[missing[0]]})"
            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
        )
    extra = sorted(k for k in params if k not in expected)
    if extra:
        raise ParameterFileError(f"{source}: unexpected entry '{extra[0]}' for arch "
                                 f"{config.arch!r} ({len(extra)} unexpected in all)")
    for name, shape in expected.items():
        got = tuple(params[name].shape)  # type: ignore[attr-defined]
        if got != shape:
            raise ParameterFileError(f"{source}: entry '{name}' has shape {got}, expected {shape}")


def save_parameters(directory: str | os.PathLike, config: Config,
                    params: Mapping[str, np.ndarray]) -> Path:
    """Write ``params.safetensors`` and ``config.json`` into ``directory``, each atomically."""
    from safetensors.numpy import save_file

    check_parameters(config, params)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.ascontiguousarray(v) for k, v in params.items()}
    atomic_write(out / PARAMS_FILE, lambda tmp: save_file(arrays, tmp))
    text = json.dumps(config.to_dict(), indent=2, sort_keys=True)
    atomic_write(out / CONFIG_FILE, lambda tmp: Path(tmp).write_text(text + "\n"))
    return out


def load_parameters(directory: str | os.PathLike) -> tuple[Config, dict[str, np.ndarray]]:
    """Read a directory written by ``save_parameters``; every defect is a ParameterFileError."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    d = Path(directory)
    for name in (CONFIG_FILE, PARAMS_FILE):
        if not (d / name).is_file():
            raise ParameterFileError(f"{d}: missing file '{name}'")
    try:
        config = config_from_dict(json.loads((d / CONFIG_FILE).read_text()))
    except json.JSONDecodeError as exc:
        raise ParameterFileError(f"{d / CONFIG_FILE}: not valid JSON ({exc})") from None
    except ConfigError as exc:
        raise ParameterFileError(f"{d / CONFIG_FILE}: {exc}") from None
    try:
        params = load_file(str(d / PARAMS_FILE))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ParameterFileError(
            f"{d / PARAMS_FILE}: unreadable safetensors file ({exc})") from None
    check_parameters(config, params, source=str(d / PARAMS_FILE))
    return config, params
