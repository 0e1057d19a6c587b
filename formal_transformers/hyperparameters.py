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
from formal_transformers.rope import Rope, RopeScaling

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


NORMS = ("layer_norm", "rmsnorm")
POSITIONS = ("learned", "rope", "alibi", "none")
MLPS = ("plain", "gated")
GATED_ACTIVATIONS = ("silu", "gelu", "gelu_tanh")  # Algorithm 28's phi
ATTENTION_BIASES = ("none", "qkv", "all")
QK_NORMS = ("none", "per_head", "projection")  # Algorithm 44's axis, or no QK-norm


def _require_choice(config: Any, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ConfigError(f"{type(config).__name__}.{name} must be one of {choices}, "
                          f"got {value!r}")


def _require_optional_positive_float(config: Any, name: str) -> None:
    value = getattr(config, name)
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ConfigError(f"{type(config).__name__}.{name} must be None or a positive number, "
                          f"got {value!r}")


@dataclass(frozen=True)
class ModernDTransformerConfig(_ConfigMixin):
    """Modern decoder-only transformer, Llama/Mistral/Qwen2/Gemma 2 family (spec: Algorithm 65,
    spec/algorithms/65-modern-d-transformer.md). Every convention is a named field; the
    selections of GPT-2 (``gpt2_selections``) make it Algorithm 10.

    Sizes: ``G`` key/value heads (H query heads share them, G divides H; default H),
    ``d_head`` per-head size (default d_e / H; Gemma 2 sets it freely).
    ``windows``: one entry per layer, a window size w (query t sees keys t - w + 1 .. t) or
    None (full causal attention); ``None`` for the whole field means every layer is full.
    """

    arch: ClassVar[str] = "modern-decoder"
    N_V: int
    l_max: int
    d_e: int
    d_mlp: int
    L: int
    H: int
    G: int | None = None
    d_head: int | None = None
    norm: str = "rmsnorm"
    norm_offset: bool = False
    norm_eps: float = 1e-6
    post_norms: bool = False
    positions: str = "rope"
    rope: Rope = dataclasses.field(default_factory=Rope)
    mlp: str = "gated"
    activation: str = "silu"
    windows: tuple[int | None, ...] | None = None
    qk_norm: str = "none"
    attn_softcap: float | None = None
    final_softcap: float | None = None
    attn_scale: float | None = None
    attention_bias: str = "none"
    mlp_bias: bool = False
    tie_embeddings: bool = False
    embedding_scale: bool = False

    def __post_init__(self) -> None:
        _require_positive(self, "N_V", "l_max", "d_e", "d_mlp", "L", "H")
        if self.G is None:
            object.__setattr__(self, "G", self.H)
        if self.d_head is None:
            if self.d_e % self.H != 0:
                raise ConfigError(f"ModernDTransformerConfig.d_e must be divisible by H when "
                                  f"d_head is not given, got d_e={self.d_e}, H={self.H}")
            object.__setattr__(self, "d_head", self.d_e // self.H)
        _require_positive(self, "G", "d_head")
        if self.H % self.G != 0:
            raise ConfigError(f"ModernDTransformerConfig.G must divide H (each kv head serves "
                              f"H / G query heads), got H={self.H}, G={self.G}")
        for name, choices in (("norm", NORMS), ("positions", POSITIONS), ("mlp", MLPS),
                              ("qk_norm", QK_NORMS),
                              ("attention_bias", ATTENTION_BIASES)):
            _require_choice(self, name, choices)
        _require_choice(self, "activation",
                        GATED_ACTIVATIONS if self.mlp == "gated" else ACTIVATIONS)
        eps = self.norm_eps
        if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 <= eps < 1:
            raise ConfigError(f"ModernDTransformerConfig.norm_eps must be a float in [0, 1), "
                              f"got {eps!r}")
        for name in ("attn_softcap", "final_softcap", "attn_scale"):
            _require_optional_positive_float(self, name)
        if isinstance(self.rope, dict):  # from to_dict()
            rope = dict(self.rope)
            object.__setattr__(self, "rope", Rope(**rope | {
                "scaling": RopeScaling(**rope.get("scaling", {}))}))
        if not isinstance(self.rope, Rope):
            raise ConfigError(f"ModernDTransformerConfig.rope must be a "
                              f"formal_transformers.rope.Rope, got {self.rope!r}")
        if self.positions == "rope":
            self.rope.rotated_features(self.d_head)  # even and >= 2, else ConfigError
        if self.positions == "alibi" and self.attn_softcap is not None:
            raise ConfigError("ModernDTransformerConfig: positions='alibi' with attn_softcap is "
                              "not supported (no model combines the two)")
        if self.norm_offset and self.norm != "rmsnorm":
            raise ConfigError("ModernDTransformerConfig.norm_offset (scale 1 + w) applies to "
                              f"norm='rmsnorm' only, got norm={self.norm!r}")
        self._check_windows()

    def _check_windows(self) -> None:
        if self.windows is None:
            return
        windows = tuple(self.windows)
        object.__setattr__(self, "windows", windows)
        if len(windows) != self.L or any(
                w is not None and (not isinstance(w, int) or isinstance(w, bool) or w <= 0)
                for w in windows):
            raise ConfigError(f"ModernDTransformerConfig.windows must hold L={self.L} entries, "
                              f"each a positive integer or None, got {self.windows!r}")

    def window(self, l: int) -> int | None:
        """The window w of layer l (None: full causal attention)."""
        return None if self.windows is None else self.windows[l]

    @property
    def d_attn(self) -> int:
        """Query/key size of one head (d_head)."""
        return self.d_head  # type: ignore[return-value]

    @property
    def d_mid(self) -> int:
        """Value size of one head (d_head)."""
        return self.d_head  # type: ignore[return-value]

    @property
    def scale(self) -> float:
        """The factor of the attention scores: attn_scale, or 1 / sqrt(d_head) by default."""
        return self.attn_scale if self.attn_scale is not None else self.d_head ** -0.5

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if data["windows"] is not None:
            data["windows"] = list(data["windows"])
        return data


def gpt2_selections(config: DTransformerConfig) -> ModernDTransformerConfig:
    """The modern config whose selections are Algorithm 10's (GPT-2): layer norm with offset
    beta, learned positions, plain MLP, every bias, G = H, no window, no caps, untied W_u."""
    c = config
    return ModernDTransformerConfig(
        N_V=c.N_V, l_max=c.l_max, d_e=c.d_e, d_mlp=c.d_mlp, L=c.L, H=c.H, G=c.H,
        norm="layer_norm", norm_eps=c.layer_norm_eps, positions="learned", mlp="plain",
        activation=c.activation, attention_bias="all", mlp_bias=True)



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


Config = (DTransformerConfig | ETransformerConfig | EDTransformerConfig | ViTConfig
          | ModernDTransformerConfig)
CONFIG_CLASSES: dict[str, type] = {
    cls.arch: cls for cls in (DTransformerConfig, ETransformerConfig, EDTransformerConfig,
                              ViTConfig, ModernDTransformerConfig)
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
