"""A user's own ``nn.Module`` of the modern decoder behind the adapter protocol, from a
declarative mapping file instead of an adapter class
(``formal-transformers verify --map mapping.toml [--impl module:Factory]``; spec: Algorithm 65).

The TOML file names the ``factory`` ("module:Name", unless --impl gives it) and has four
tables (conformance/examples/llama_style_mapping.toml is a complete one):

- ``[variants]``: the selections the module makes, as fields of ModernDTransformerConfig
  (``rope = {layout = "interleaved", theta = 1e4}``). A selection not listed keeps the
  config's default; only the sizes N_V, l_max, d_e, d_mlp, L, H, G, d_head are drawn.
- ``[sizes]``: sizes fixed or computed from the drawn ones (``d_e = "H * d_head"``).
- ``[args]``: the factory's keyword arguments, as expressions of the config's fields.
- ``[params]``: canonical name (``{l}`` for the layer) -> ``{key, transpose, heads, rows}``:
  the module's state-dict key; ``transpose`` if it holds W^T; ``heads`` ("H" or "G") if the
  canonical (n, d_head, d_in) is stacked on the key's rows; ``rows = [start, stop]`` if the
  entry is a slice of a fused matrix. Every canonical entry must be mapped and every
  parameter of the module covered exactly once.

Expressions are integer arithmetic (+, -, *, //, parentheses) over field names. The module is
called as ``module(tokens (B, l)) -> logits (B, l, N_V)``.
"""

from __future__ import annotations

import ast
import dataclasses
import operator
from pathlib import Path
from typing import Any

import numpy as np
import tomllib
import torch

from conformance.adapter import Adapter
from formal_transformers.canonical import parameter_shapes
from formal_transformers.errors import AdapterError
from formal_transformers.hyperparameters import ModernDTransformerConfig

SIZES = ("N_V", "l_max", "d_e", "d_mlp", "L", "H", "G", "d_head")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.FloorDiv: operator.floordiv}
_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def evaluate(expr: str | int | float, fields: dict[str, Any]) -> Any:
    """An expression of [sizes], [args] or ``rows``: a number, a field name, or integer
    arithmetic of them; AdapterError for anything else."""
    if not isinstance(expr, str):
        return expr

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.Name) and node.id in fields:
            return fields[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        raise AdapterError(f"mapping expression {expr!r}: only numbers, config fields "
                           f"({', '.join(sorted(fields))}) and + - * // are allowed")
    try:
        return ev(ast.parse(expr, mode="eval").body)
    except SyntaxError:
        raise AdapterError(f"mapping expression {expr!r} is not valid") from None


def _defaults() -> dict[str, Any]:
    """Every selection field of ModernDTransformerConfig at its default."""
    out = {}
    for f in dataclasses.fields(ModernDTransformerConfig):
        if f.name not in SIZES:
            has_factory = f.default_factory is not dataclasses.MISSING
            out[f.name] = f.default_factory() if has_factory else f.default
    return out


def read_mapping(mapping: str | Path) -> dict[str, Any]:
    """The parsed mapping file (AdapterError if it cannot be read)."""
    try:
        return tomllib.loads(Path(mapping).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AdapterError(f"--map {mapping}: cannot read the mapping ({exc})") from None


def mapping_factory(mapping: str | Path) -> str:
    """The ``factory`` a mapping file names ("module:Name")."""
    factory = read_mapping(mapping).get("factory")
    if not isinstance(factory, str):
        raise AdapterError(f"--map {mapping}: no factory = \"module:Name\" key, and no --impl")
    return factory


class MappedModule(Adapter):
    """``factory(**args)`` (an nn.Module class or function) under a mapping file."""

    dtypes = ("float32", "float64")
    algorithms = ("modern_d_transformer", "count_parameters")

    def __init__(self, factory, mapping: str | Path):
        path = Path(mapping)
        self.mapping = read_mapping(path)
        missing = [t for t in ("variants", "args", "params") if t not in self.mapping]
        if missing:
            raise AdapterError(f"--map {mapping}: missing table [{missing[0]}]")
        known = {f.name for f in dataclasses.fields(ModernDTransformerConfig)}
        bad = sorted(set(self.mapping["variants"]) - known)
        if bad:
            raise AdapterError(f"--map {mapping}: [variants] has unknown field {bad[0]!r}")
        self.factory = factory
        self.name = f"{getattr(factory, '__qualname__', factory)} mapped by {path.name}"

    def constrain(self, algorithm, sizes):
        """The drawn sizes, then [sizes]; every selection from [variants] or the default."""
        if algorithm != "modern_d_transformer":
            return sizes
        fields = {k: sizes[k] for k in SIZES if k in sizes}
        for name, expr in self.mapping.get("sizes", {}).items():
            fields[name] = evaluate(expr, fields)
        return {k: v for k, v in _defaults().items() if k in sizes} | fields \
            | self.mapping["variants"]

    def build(self, config: ModernDTransformerConfig) -> torch.nn.Module:
        fields = dataclasses.asdict(config)
        args = {k: evaluate(v, fields) for k, v in self.mapping["args"].items()}
        try:
            return self.factory(**args)
        except Exception as exc:
            raise AdapterError(f"{self.name}: the factory raised {type(exc).__name__}: {exc} "
                               f"for {args}") from None

    def state_dict(self, module: torch.nn.Module, params, config) -> dict[str, torch.Tensor]:
        """The module's state dict holding the canonical ``params``, by the [params] rules."""
        fields = dataclasses.asdict(config)
        sd = {k: v.detach().clone() for k, v in module.state_dict().items()}
        written: dict[str, int] = {}
        for canon in parameter_shapes(config):
            rule, l = self._rule(canon)
            key = rule["key"].replace("{l}", str(l))
            if key not in sd:
                raise AdapterError(f"{self.name}: [params] maps {canon} to {key!r}, which the "
                                   f"module's state dict does not have")
            value = np.asarray(params[canon])
            if "heads" in rule:
                value = value.reshape(-1, value.shape[-1])  # (n d_head, d_in)
            if rule.get("transpose", False):
                value = value.T
            start, stop = (evaluate(e, fields) for e in rule.get("rows", [0, sd[key].shape[0]]))
            target = sd[key][start:stop]
            if tuple(target.shape) != value.shape:
                raise AdapterError(f"{self.name}: {canon} {value.shape} does not fit {key} "
                                   f"rows {start}:{stop} of shape {tuple(target.shape)}")
            target.copy_(torch.from_numpy(np.ascontiguousarray(value)))
            written[key] = written.get(key, 0) + target.numel()
        for key, tensor in sd.items():
            if written.get(key, 0) != tensor.numel():
                raise AdapterError(f"{self.name}: the mapping writes {written.get(key, 0)} of "
                                   f"the {tensor.numel()} entries of {key!r}")
        return sd

    def _rule(self, canon: str) -> tuple[dict, int | None]:
        rules = self.mapping["params"]
        if canon in rules:
            return rules[canon], None
        if canon.startswith("layers."):
            _, l, rest = canon.split(".", 2)
            template = f"layers.{{l}}.{rest}"
            if template in rules:
                return rules[template], int(l)
        raise AdapterError(f"{self.name}: [params] does not map the canonical entry {canon!r}")

    def modern_d_transformer(self, x, params, config):
        module = self.build(config).to(_DTYPES[np.asarray(params["W_e"]).dtype]).eval()
        module.load_state_dict(self.state_dict(module, params, config))
        with torch.no_grad():
            logits = module(torch.from_numpy(x))
        return torch.softmax(logits, dim=-1).numpy()

    def count_parameters(self, algorithm, sizes):
        return sum(p.numel() for p in self.build(sizes).parameters())
