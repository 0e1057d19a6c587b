"""Canonical parameters: one flat mapping from spec names to arrays (ARCHITECTURE.md).

Names and shapes follow the spec's column convention, so ``W_q`` of one head is
``R^{d_attn x d_x}`` -- the same orientation as ``torch.nn.Linear.weight``. Heads are stacked
on a leading axis: ``layers.0.mha.W_q[h]`` is W_q^h of Algorithm 5.

    D transformer (Alg 10)   W_e, W_p, layers.{l}.{ln1,mha,ln2,mlp}.*, ln_f.*, W_u
    E transformer (Alg 9)    W_e, W_p, [emb_ln.*], layers.{l}.{mha,ln1,mlp,ln2}.*, W_f, b_f,
                             ln_f.*, W_u
    ED transformer (Alg 8)   W_e, W_p, enc.layers.{l}.{mha,ln1,mlp,ln2}.*,
                             dec.layers.{l}.{self_mha,ln3,cross_mha,ln4,mlp,ln5}.*, W_u

This module is the one place that knows these names: initialisers, converters and loaders of
every package go through it.
"""

from __future__ import annotations

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
    ViTConfig,
    config_from_dict,
)

Shape = tuple[int, ...]
PARAMS_FILE = "params.safetensors"
CONFIG_FILE = "config.json"


def mha_shapes(prefix: str, H: int, d_attn: int, d_mid: int, d_x: int, d_z: int, d_out: int
               ) -> dict[str, Shape]:
    """Shapes of one multi-head attention's parameters (spec: Algorithm 5)."""
    return {
        f"{prefix}.W_q": (H, d_attn, d_x), f"{prefix}.b_q": (H, d_attn),
        f"{prefix}.W_k": (H, d_attn, d_z), f"{prefix}.b_k": (H, d_attn),
        f"{prefix}.W_v": (H, d_mid, d_z), f"{prefix}.b_v": (H, d_mid),
        f"{prefix}.W_o": (d_out, H * d_mid), f"{prefix}.b_o": (d_out,),
    }


def layer_norm_shapes(prefix: str, d_e: int) -> dict[str, Shape]:
    """Shapes of one layer norm's scale and offset (spec: Algorithm 6)."""
    return {f"{prefix}.gamma": (d_e,), f"{prefix}.beta": (d_e,)}


def mlp_shapes(prefix: str, d_e: int, d_mlp: int) -> dict[str, Shape]:
    """Shapes of one position-wise MLP (spec: Algorithm 16)."""
    return {
        f"{prefix}.W_mlp1": (d_mlp, d_e), f"{prefix}.b_mlp1": (d_mlp,),
        f"{prefix}.W_mlp2": (d_e, d_mlp), f"{prefix}.b_mlp2": (d_e,),
    }


def _self_mha(prefix: str, c: Config) -> dict[str, Shape]:
    return mha_shapes(prefix, c.H, c.d_attn, c.d_mid, c.d_e, c.d_e, c.d_e)


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


def parameter_shapes(config: Config) -> dict[str, Shape]:
    """Every canonical parameter name of an architecture and its shape, in a fixed order."""
    c = config
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


def parameter_count(config: Config) -> int:
    """Number of scalar parameters, the sum of the products of the canonical shapes."""
    return sum(int(np.prod(s)) for s in parameter_shapes(config).values())


def init_parameters(config: Config, rng: np.random.Generator, std: float = 0.02,
                    dtype: np.dtype | type = np.float64) -> dict[str, np.ndarray]:
    """Seeded initialisation: weights N(0, std^2), biases and beta 0, gamma 1."""
    params: dict[str, np.ndarray] = {}
    for name, shape in parameter_shapes(config).items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "gamma":
            value = np.ones(shape)
        elif leaf == "beta" or leaf.startswith("b_"):
            value = np.zeros(shape)
        else:
            value = rng.normal(0.0, std, size=shape)
        params[name] = value.astype(dtype)
    return params


def random_parameters(config: Config, rng: np.random.Generator, scale: float = 0.7
                      ) -> dict[str, np.ndarray]:
    """Every canonical entry drawn N(0, scale^2), layer-norm gammas around 1: parameters with
    nothing trivial (non-zero biases and offsets), for tests and agreement checks."""
    params = {}
    for name, shape in parameter_shapes(config).items():
        value = rng.normal(0.0, scale, size=shape)
        params[name] = 1.0 + 0.3 * value if name.endswith(".gamma") else value
    return params


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
