"""Frozen hyperparameter dataclasses, one per architecture (spec: Algorithms 8-10).

Symbols follow spec/notation.md: ``N_V`` vocabulary size, ``l_max`` context size, ``d_e``
embedding size, ``d_mlp`` MLP width, ``L`` layers, ``H`` heads. Every head has
``d_attn = d_mid = d_e / H`` and every multi-head attention maps back to ``d_out = d_e``.

Where a widely used model differs from Phuong & Hutter, the difference is a named
hyperparameter here and is stated in the spec (``activation``, ``layer_norm_eps``,
``embedding_layer_norm``) -- never a silent mismatch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from formal_transformers.errors import ConfigError

ACTIVATIONS = ("relu", "gelu", "gelu_tanh")


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

    def __post_init__(self) -> None:
        _require_positive(self, "N_V", "l_max", "d_e", "d_mlp", "L", "H")
        _validate_common(self)


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

    def __post_init__(self) -> None:
        _require_positive(self, "N_V", "l_max", "d_e", "d_mlp", "L", "H")
        _validate_common(self)


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

    def __post_init__(self) -> None:
        _require_positive(self, "N_V", "l_max", "d_e", "d_mlp", "L_enc", "L_dec", "H")
        _validate_common(self)


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
