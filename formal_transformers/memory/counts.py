"""Parameter counts, a literal transcription of spec/memory.md section 2, formulas (M1)-(M11).

Each function takes the spec's symbols and returns a number of scalars; ``parameter_counts``
breaks a whole architecture down by component. The totals must equal
``formal_transformers.canonical.parameter_count`` exactly (property memory.parameter_count):
the canonical shapes and these formulas are written independently of each other.
"""

from __future__ import annotations

from formal_transformers.hyperparameters import (
    Config,
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
    ModernDTransformerConfig,
    ViTConfig,
)


def token_embedding_parameters(d_e: int, N_V: int) -> int:
    """(M1) W_e in R^{d_e x N_V} (Algorithm 1)."""
    return d_e * N_V


def positional_embedding_parameters(d_e: int, l_max: int) -> int:
    """(M2) W_p in R^{d_e x l_max} (Algorithm 2)."""
    return d_e * l_max


def attention_parameters(d_x: int, d_z: int, d_attn: int, d_out: int) -> int:
    """(M3) W_q, b_q, W_k, b_k, W_v, b_v of one head (Algorithms 3 and 4)."""
    return d_attn * (d_x + 1) + d_attn * (d_z + 1) + d_out * (d_z + 1)


def mh_attention_parameters(d_x: int, d_z: int, d_attn: int, d_mid: int, d_out: int, H: int
                            ) -> int:
    """(M4) H heads of (M3) with d_out = d_mid, plus W_o, b_o (Algorithm 5)."""
    return H * attention_parameters(d_x, d_z, d_attn, d_mid) + d_out * (H * d_mid + 1)


def layer_norm_parameters(d_e: int) -> int:
    """(M5) gamma, beta in R^{d_e} (Algorithm 6)."""
    return 2 * d_e


def unembedding_parameters(d_e: int, N_V: int) -> int:
    """(M6) W_u in R^{N_V x d_e} (Algorithm 7)."""
    return N_V * d_e


def mlp_parameters(d_e: int, d_mlp: int) -> int:
    """(M7) W_mlp1, b_mlp1, W_mlp2, b_mlp2 (Algorithm 16)."""
    return d_mlp * (d_e + 1) + d_e * (d_mlp + 1)


def _self_mha(c: Config) -> int:
    return mh_attention_parameters(c.d_e, c.d_e, c.d_attn, c.d_mid, c.d_e, c.H)


def parameter_counts(config: Config) -> dict[str, int]:
    """Scalars per component of an architecture, (M8)-(M10); ``total`` is their sum.

    Components: ``embeddings`` (W_e, W_p), ``layers`` (all L layers; for the ED transformer
    ``encoder_layers`` and ``decoder_layers``), ``final`` (final layer norm, the E
    transformer's W_f, b_f and optional embedding layer norm) and ``unembedding`` (W_u).
    """
    c = config
    if isinstance(c, ViTConfig):  # (M50)
        return vit_parameter_counts(c)
    if isinstance(c, ModernDTransformerConfig):  # (M65)-(M66)
        return modern_parameter_counts(c)
    if not isinstance(c, (DTransformerConfig, ETransformerConfig, EDTransformerConfig)):
        raise TypeError(f"config must be an architecture config, got {type(config).__name__}")
    emb = token_embedding_parameters(c.d_e, c.N_V) + positional_embedding_parameters(
        c.d_e, c.l_max)
    ln, mlp = layer_norm_parameters(c.d_e), mlp_parameters(c.d_e, c.d_mlp)
    counts: dict[str, int] = {"embeddings": emb}
    if isinstance(c, DTransformerConfig):  # (M8)
        counts["layers"] = c.L * (_self_mha(c) + mlp + 2 * ln)
        counts["final"] = ln
    elif isinstance(c, ETransformerConfig):  # (M9)
        counts["layers"] = c.L * (_self_mha(c) + mlp + 2 * ln)
        counts["final"] = (ln if c.embedding_layer_norm else 0) + c.d_e * (c.d_e + 1) + ln
    elif isinstance(c, EDTransformerConfig):  # (M10)
        counts["encoder_layers"] = c.L_enc * (_self_mha(c) + mlp + 2 * ln)
        counts["decoder_layers"] = c.L_dec * (2 * _self_mha(c) + mlp + 3 * ln)
    counts["unembedding"] = unembedding_parameters(c.d_e, c.N_V)
    counts["total"] = sum(counts.values())
    return counts


def vit_parameter_counts(c: ViTConfig) -> dict[str, int]:
    """(M50) The ViT classifier (Algorithm 77): patch embedding (W_pe, b_pe, e_cls, W_p),
    layers, final layer norm, head."""
    ln, mlp = layer_norm_parameters(c.d_e), mlp_parameters(c.d_e, c.d_mlp)
    positions = c.d_e * (c.n_patches + 1) if c.positions == "learned" else 0
    counts = {"embeddings": c.d_e * c.d_patch + 2 * c.d_e + positions,
              "layers": c.L * (_self_mha(c) + mlp + 2 * ln), "final": ln,
              "head": c.n_classes * (c.d_e + 1)}
    counts["total"] = sum(counts.values())
    return counts


def modern_attention_parameters(c: ModernDTransformerConfig) -> int:
    """(M65) W_q (H heads), W_k, W_v (G heads), W_o, the biases attention_bias selects and
    the QK-norm gains of one layer of the modern decoder (Algorithm 65)."""
    qkv = (c.H + 2 * c.G) * c.d_head
    biases = {"none": 0, "qkv": qkv, "all": qkv + c.d_e}[c.attention_bias]
    gains = {"none": 0, "per_head": 2 * c.d_head, "projection": (c.H + c.G) * c.d_head}
    return qkv * c.d_e + c.d_e * c.H * c.d_head + biases + gains[c.qk_norm]


def modern_parameter_counts(c: ModernDTransformerConfig) -> dict[str, int]:
    """(M66) The modern decoder by component: embeddings (W_e, W_p when learned), layers
    (attention (M65), the gated (k = 3) or plain (k = 2) MLP, 2 or 4 norms), final norm,
    unembedding (0 when tied)."""
    d, n_norm, k = c.d_e, 2 if c.norm == "layer_norm" else 1, 3 if c.mlp == "gated" else 2
    mlp = k * d * c.d_mlp + ((k - 1) * c.d_mlp + d if c.mlp_bias else 0)
    norms = (4 if c.post_norms else 2) * n_norm * d
    counts = {"embeddings": c.N_V * d + (c.l_max * d if c.positions == "learned" else 0),
              "layers": c.L * (modern_attention_parameters(c) + mlp + norms),
              "final": n_norm * d,
              "unembedding": 0 if c.tie_embeddings else unembedding_parameters(d, c.N_V)}
    counts["total"] = sum(counts.values())
    return counts


def tied_parameter_count(config: Config) -> int:
    """(M11) The count when W_u = W_e^T is one shared matrix (GPT-2, BERT): total - N_V d_e.
    The modern decoder holds its unembedding as the config says (tie_embeddings)."""
    if isinstance(config, ViTConfig):  # nothing to tie
        return parameter_counts(config)["total"]
    if isinstance(config, ModernDTransformerConfig):
        return parameter_counts(config)["total"] - parameter_counts(config)["unembedding"]
    return parameter_counts(config)["total"] - unembedding_parameters(config.d_e, config.N_V)
