"""Frozen hyperparameter dataclasses, one per architecture (spec: Algorithms 8-10).

Symbols follow spec/notation.md: ``N_V`` vocabulary size, ``l_max`` context size, ``d_e``
embedding size, ``d_mlp`` MLP width, ``L`` layers, ``H`` heads. Every head has
``d_attn = d_mid = d_e / H`` and every multi-head attention maps back to ``d_out = d_e``.

Where a widely used model differs from Phuong & Hutter, the difference is a named
hyperparameter here and is stated in the spec (``activation``, ``layer_norm_eps``,
``embedding_layer_norm``) -- never a silent mismatch. The *declared variants* of
``VARIANTS`` are fields of every config too (spec/algorithms/01, 07-13, "Hyperparameter
variants"); their defaults are the paper's algorithms:

- ``tied_unembedding`` (False): W_u = W_e^T, one parameter (no canonical entry ``W_u``);
- ``bias`` (True): False removes every bias b_* and every layer-norm offset beta (they are 0);
- ``loss_reduction`` ("sum"): "mean" divides a sequence's training loss by its number of
  predicted tokens (Algorithms 11-13);
- ``padding_idx`` (None): token id whose embedding column W_e[:, padding_idx] is initialised
  to 0 and receives no gradient from the token embedding (Algorithm 17).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from formal_transformers.errors import ConfigError

ACTIVATIONS = ("relu", "gelu", "gelu_tanh")
LOSS_REDUCTIONS = ("sum", "mean")
VARIANTS: dict[str, Any] = {"tied_unembedding": False, "bias": True, "loss_reduction": "sum",
                            "padding_idx": None}  # name -> the spec's default


def variant_problem(name: str, value: object) -> str | None:
    """Why ``value`` is not a valid value of variant ``name`` (None when it is)."""
    if name not in VARIANTS:
        return f"unknown variant {name!r}; known variants: {', '.join(VARIANTS)}"
    if name in ("tied_unembedding", "bias") and not isinstance(value, bool):
        return f"variant {name!r} must be True or False, got {value!r}"
    if name == "loss_reduction" and value not in LOSS_REDUCTIONS:
        return f"variant 'loss_reduction' must be one of {LOSS_REDUCTIONS}, got {value!r}"
    if name == "padding_idx" and value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0):
        return f"variant 'padding_idx' must be None or a token id >= 0, got {value!r}"
    return None


def _validate_variants(config: Any) -> None:
    for name in VARIANTS:
        problem = variant_problem(name, getattr(config, name))
        if problem:
            raise ConfigError(f"{type(config).__name__}: {problem}")
    if config.padding_idx is not None and config.padding_idx >= config.N_V:
        raise ConfigError(f"{type(config).__name__}.padding_idx must be a token id in "
                          f"[0, N_V) = [0, {config.N_V}), got {config.padding_idx}")


def _require_positive(config: Any, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(
                f"{type(config).__name__}.{name} must be a positive integer, got {value!r}"
            )


def _validate_common(config: Any) -> None:
    if config.d_e % config.H != 0:
        raise ConfigError(
            f"{type(config).__name__}.d_e must be divisible by H (d_attn = d_e / H), "
            f"got d_e={config.d_e}, H={config.H}"
        )
    if config.activation not in ACTIVATIONS:
        raise ConfigError(
            f"{type(config).__name__}.activation must be one of {ACTIVATIONS}, "
            f"got {config.activation!r}"
        )
    eps = config.layer_norm_eps
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 <= eps < 1:
        raise ConfigError(
            f"{type(config).__name__}.layer_norm_eps must be a float in [0, 1), got {eps!r}"
        )


class _ConfigMixin:
    arch: ClassVar[str]

    @property
    def d_attn(self) -> int:
        """Query/key size of one head, d_attn = d_e / H."""
        return self.d_e // self.H  # type: ignore[attr-defined]

    @property
    def d_mid(self) -> int:
        """Value size of one head, d_mid = d_e / H."""
        return self.d_e // self.H  # type: ignore[attr-defined]

    def variants(self) -> dict[str, Any]:
        """The declared-variant fields (``VARIANTS``) and their values."""
        return {name: getattr(self, name) for name in VARIANTS}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the architecture name under ``arch``."""
        return {"arch": self.arch, **dataclasses.asdict(self)}  # type: ignore[call-overload]


@dataclass(frozen=True)
class DTransformerConfig(_ConfigMixin):
    """Decoder-only transformer, GPT style (spec: Algorithm 10): pre-LN, causal mask."""

    arch: ClassVar[str] = "decoder"
    N_V: int
    l_max: int
    d_e: int
    d_mlp: int
    L: int
    H: int
    activation: str = "gelu"
    layer_norm_eps: float = 1e-5
    tied_unembedding: bool = False
    bias: bool = True
    loss_reduction: str = "sum"
    padding_idx: int | None = None

    def __post_init__(self) -> None:
        _require_positive(self, "N_V", "l_max", "d_e", "d_mlp", "L", "H")
        _validate_common(self)
        _validate_variants(self)


@dataclass(frozen=True)
class ETransformerConfig(_ConfigMixin):
    """Encoder-only transformer, BERT style (spec: Algorithm 9): post-LN, no mask.

    ``embedding_layer_norm`` adds BERT's layer norm after the embedding (a stated variant).
    """

    arch: ClassVar[str] = "encoder"
    N_V: int
    l_max: int
    d_e: int
    d_mlp: int
    L: int
    H: int
    activation: str = "gelu"
    layer_norm_eps: float = 1e-5
    embedding_layer_norm: bool = False
    tied_unembedding: bool = False
    bias: bool = True
    loss_reduction: str = "sum"
    padding_idx: int | None = None

    def __post_init__(self) -> None:
        _require_positive(self, "N_V", "l_max", "d_e", "d_mlp", "L", "H")
        _validate_common(self)
        _validate_variants(self)


@dataclass(frozen=True)
class EDTransformerConfig(_ConfigMixin):
    """Encoder-decoder transformer, Vaswani style (spec: Algorithm 8): post-LN, ReLU."""

    arch: ClassVar[str] = "encoder-decoder"
    N_V: int
    l_max: int
    d_e: int
    d_mlp: int
    L_enc: int
    L_dec: int
    H: int
    activation: str = "relu"
    layer_norm_eps: float = 1e-5
    tied_unembedding: bool = False
    bias: bool = True
    loss_reduction: str = "sum"
    padding_idx: int | None = None

    def __post_init__(self) -> None:
        _require_positive(self, "N_V", "l_max", "d_e", "d_mlp", "L_enc", "L_dec", "H")
        _validate_common(self)
        _validate_variants(self)


VIT_POSITIONS = ("learned", "none")


@dataclass(frozen=True)
class ViTConfig(_ConfigMixin):
    """Vision transformer classifier (spec: Algorithms 75-77): images (C, height, width) cut
    into patch_size x patch_size patches, a class token, pre-LN encoder layers, a linear head
    to n_classes. ``positions``: learned positional embeddings or none."""

    arch: ClassVar[str] = "vit"
    C: int
    height: int
    width: int
    patch_size: int
    n_classes: int
    d_e: int
    d_mlp: int
    L: int
    H: int
    positions: str = "learned"
    activation: str = "gelu"
    layer_norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        _require_positive(self, "C", "height", "width", "patch_size", "n_classes", "d_e",
                          "d_mlp", "L", "H")
        _validate_common(self)
        P = self.patch_size
        if self.height % P or self.width % P:
            raise ConfigError(f"ViTConfig.patch_size = {P} must divide the image height "
                              f"{self.height} and width {self.width} (no partial patches)")
        if self.positions not in VIT_POSITIONS:
            raise ConfigError(f"ViTConfig.positions must be one of {VIT_POSITIONS}, "
                              f"got {self.positions!r}")

    @property
    def n_patches(self) -> int:
        """N = (height / P) (width / P), the patch tokens (the class token is one more)."""
        return (self.height // self.patch_size) * (self.width // self.patch_size)

    @property
    def d_patch(self) -> int:
        """C P^2, the values of one patch column."""
        return self.C * self.patch_size ** 2


Config = DTransformerConfig | ETransformerConfig | EDTransformerConfig | ViTConfig
CONFIG_CLASSES: dict[str, type] = {
    cls.arch: cls for cls in (DTransformerConfig, ETransformerConfig, EDTransformerConfig,
                              ViTConfig)
}


def config_from_dict(data: dict[str, Any]) -> Config:
    """Inverse of ``config.to_dict()``; raises ConfigError naming the unknown or missing field."""
    data = dict(data)
    arch = data.pop("arch", None)
    if arch not in CONFIG_CLASSES:
        raise ConfigError(
            f"config field 'arch' must be one of {sorted(CONFIG_CLASSES)}, got {arch!r}")
    cls = CONFIG_CLASSES[arch]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"config for arch {arch!r} has unknown fields {unknown}; known: {sorted(known)}")
    try:
        return cls(**data)
    except TypeError as exc:  # missing required field
        raise ConfigError(f"config for arch {arch!r}: {exc}") from None
