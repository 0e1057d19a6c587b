"""Named hyperparameter sets (presets) shared by every command: memory, bench, train.

Each preset is a frozen config of formal_transformers.hyperparameters. The published models
are given with the hyperparameters their papers state; where our canonical form differs from
the published model (an untied W_u, a learned W_p, no token-type embedding or pooler), the
difference is stated in spec/memory.md, section "Published models". The ``tiny-*`` and
``small-*`` presets are small enough to train and measure on a laptop CPU in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from formal_transformers.errors import ConfigError
from formal_transformers.hyperparameters import (
    Config,
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
    ModernDTransformerConfig,
    ViTConfig,
)
from formal_transformers.rope import Rope, RopeScaling


def _gpt2(d_e: int, L: int, H: int) -> DTransformerConfig:
    """GPT-2 (Radford et al. 2019): byte-level BPE vocabulary, 1024 positions, tanh GELU."""
    return DTransformerConfig(N_V=50257, l_max=1024, d_e=d_e, d_mlp=4 * d_e, L=L, H=H,
                              activation="gelu_tanh", layer_norm_eps=1e-5)


def _bert(d_e: int, L: int, H: int) -> ETransformerConfig:
    """BERT (Devlin et al. 2019): WordPiece vocabulary, 512 positions, embedding layer norm."""
    return ETransformerConfig(N_V=30522, l_max=512, d_e=d_e, d_mlp=4 * d_e, L=L, H=H,
                              activation="gelu", layer_norm_eps=1e-12,
                              embedding_layer_norm=True)


def _vaswani(d_e: int, d_mlp: int, H: int) -> EDTransformerConfig:
    """Transformer (Vaswani et al. 2017), shared 37000-token BPE vocabulary, 6 + 6 layers."""
    return EDTransformerConfig(N_V=37000, l_max=512, d_e=d_e, d_mlp=d_mlp, L_enc=6, L_dec=6,
                               H=H, activation="relu", layer_norm_eps=1e-6)


def _tiny_modern(**selections) -> ModernDTransformerConfig:
    """A modern decoder of the tiny-* size (d_e = 64, L = 2, H = 4, G = 2 kv heads) with the
    selections of one family: cheap to train and to measure on a CPU."""
    return ModernDTransformerConfig(**{"N_V": 64, "l_max": 128, "d_e": 64, "d_mlp": 172,
                                       "L": 2, "H": 4, "G": 2, **selections})


def _llama_3_2_1b() -> ModernDTransformerConfig:
    """Llama 3.2 1B's shape (Meta 2024; its config.json): 16 layers, 32 query and 8 kv heads
    of 64, SwiGLU of 8192, tied embeddings, RoPE theta 5e5 with Llama 3 scaling (factor 32).
    1,235,814,400 parameters. For prediction only: far too large to measure here."""
    rope = Rope(theta=500000.0, scaling=RopeScaling(kind="llama3", factor=32.0,
                                                    low_freq_factor=1.0, high_freq_factor=4.0,
                                                    original_max_position=8192))
    return ModernDTransformerConfig(N_V=128256, l_max=131072, d_e=2048, d_mlp=8192, L=16, H=32,
                                    G=8, norm_eps=1e-5, rope=rope, tie_embeddings=True)


PRESETS: Mapping[str, Config] = MappingProxyType({
    "gpt2-small": _gpt2(768, 12, 12),
    "gpt2-medium": _gpt2(1024, 24, 16),
    "gpt2-large": _gpt2(1280, 36, 20),
    "gpt2-xl": _gpt2(1600, 48, 25),
    "bert-base": _bert(768, 12, 12),
    "bert-large": _bert(1024, 24, 16),
    "transformer-base": _vaswani(512, 2048, 8),
    "transformer-big": _vaswani(1024, 4096, 16),
    "tiny-decoder": DTransformerConfig(N_V=64, l_max=128, d_e=64, d_mlp=256, L=2, H=4),
    "tiny-encoder": ETransformerConfig(N_V=64, l_max=128, d_e=64, d_mlp=256, L=2, H=4),
    "tiny-encoder-decoder": EDTransformerConfig(N_V=64, l_max=128, d_e=64, d_mlp=256,
                                                L_enc=2, L_dec=2, H=4),
    # One wide layer: large enough arrays that the reference's array data dominates the
    # Python objects of its caches (spec/memory.md section 8), small enough to measure fast.
    "small-decoder": DTransformerConfig(N_V=64, l_max=256, d_e=256, d_mlp=1024, L=1, H=8),
    "small-encoder": ETransformerConfig(N_V=64, l_max=256, d_e=256, d_mlp=1024, L=1, H=8),
    "small-encoder-decoder": EDTransformerConfig(N_V=64, l_max=256, d_e=256, d_mlp=256,
                                                 L_enc=1, L_dec=1, H=8),
    # ViT-Base/16 at 224 x 224 on ImageNet-1k (Dosovitskiy et al. 2021, Table 1), and a small
    # ViT on 32 x 32 images (CIFAR-sized) that is cheap to measure
    "vit-base-16": ViTConfig(C=3, height=224, width=224, patch_size=16, n_classes=1000,
                             d_e=768, d_mlp=3072, L=12, H=12, layer_norm_eps=1e-12),
    "vit-tiny-cifar": ViTConfig(C=3, height=32, width=32, patch_size=4, n_classes=10, d_e=64,
                                d_mlp=256, L=2, H=4),
    # The modern decoder (Algorithm 65) in three families' selections, tiny, and one
    # published shape. Llama: RMSNorm, RoPE, SwiGLU, grouped-query attention, no biases.
    "tiny-llama": _tiny_modern(),
    # Mistral: Llama's selections with a sliding window on every layer
    "tiny-mistral": _tiny_modern(windows=(32, 32)),
    # Gemma 2: RMSNorm with offset gain 1 + gamma, pre- and post-norms, GeGLU (tanh), tied
    # and sqrt(d_e)-scaled embeddings, head size set freely, soft-capped attention scores and
    # logits, local (windowed) and global layers alternating
    "tiny-gemma2": _tiny_modern(d_head=32, norm_offset=True, post_norms=True,
                                activation="gelu_tanh", tie_embeddings=True,
                                embedding_scale=True, attn_softcap=50.0, final_softcap=30.0,
                                windows=(32, None)),
    "llama-3.2-1b": _llama_3_2_1b(),
    # GPT-2's selections (tanh GELU, eps 1e-5) at the tiny-* size: the D transformer the
    # three-estimate comparison of spec/memory.md section 12 measures beside the modern ones
    "tiny-gpt2": DTransformerConfig(N_V=64, l_max=128, d_e=64, d_mlp=256, L=2, H=4,
                                    activation="gelu_tanh", layer_norm_eps=1e-5),
})


def preset_names(arch: str | None = None) -> list[str]:
    """Names of the presets, optionally only those of one architecture (``config.arch``)."""
    return [name for name, c in PRESETS.items() if arch is None or c.arch == arch]


def get_preset(name: str) -> Config:
    """The config of a preset; ConfigError naming the known presets if ``name`` is unknown."""
    if name not in PRESETS:
        raise ConfigError(f"preset must be one of {list(PRESETS)}, got {name!r}")
    return PRESETS[name]
