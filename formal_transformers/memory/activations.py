"""Activations kept for the backward pass: spec/memory.md section 4, formulas (M15)-(M22).

An inventory is a list of ``Term``s, each a named array (or a family of arrays) with its
number of entries and bytes per entry; the activation memory is their sum. Three *paths*:

- ``reference``: what reference_numpy's caches keep, one sequence at a time in float64 --
  the inputs of the spec's backward entries (Algorithms 17-23), with the attention weights
  A^h of every head (M15)-(M18);
- ``naive``: torch_impl with attention on PyTorch's math kernel, which materialises the
  attention weights, H l_x l_z per sequence (M19)-(M22);
- ``sdpa``: torch_impl with a flash kernel (scaled_dot_product_attention), which keeps one
  log-normaliser per query and head instead (M19)-(M22).

Symbols: n tokens of the primary sequence in the batch (B l_x), n_z of the context (B l_z),
b bytes per number. Every torch inventory was read off autograd's saved tensors; the test
tests/memory/test_activations.py compares each with what torch and NumPy actually keep.
"""

from __future__ import annotations

from dataclasses import dataclass

from formal_transformers.hyperparameters import (
    Config,
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
    ModernDTransformerConfig,
    ViTConfig,
)

PATHS = ("reference", "naive", "sdpa")


@dataclass(frozen=True)
class Term:
    """``count`` entries of ``width`` bytes each, e.g. Q, K, V of all layers; in ``group``."""

    name: str
    group: str  # attention scores | attention | mlp | layer norm | residual | head | masks
    count: int
    width: int

    @property
    def bytes(self) -> int:
        return self.count * self.width


def total_bytes(terms: list[Term]) -> int:
    """The activation memory of an inventory: the sum of its terms."""
    return sum(t.bytes for t in terms)


def check_path(path: str) -> str:
    from formal_transformers.errors import ConfigError

    if path not in PATHS:
        raise ConfigError(f"path must be one of {PATHS}, got {path!r}")
    return path


def _scores(path: str, H: int, layers: int, n: int, l_z: int, b: int, what: str) -> Term:
    """Per query token and head of ``layers`` attentions: the attention weights A^h (l_z
    numbers) on the reference and naive paths, one log-normaliser on the sdpa path (float32,
    or float64 for a float64 model)."""
    if path == "sdpa":
        return Term(f"{what}: log-normalisers", "attention scores", layers * n * H, max(b, 4))
    return Term(f"{what}: attention weights A^h", "attention scores", layers * n * H * l_z, b)


def _qkv_width(path: str, b: int) -> int:
    """PyTorch's math kernel on CPU computes reduced precision in float32, so its copies of
    Q, K, V and its weights A are at least 4 bytes wide; everything else keeps b."""
    return max(b, 4) if path == "naive" else b


def _attention(path: str, layers: int, n: int, n_z: int, d: int, b: int, what: str,
               batch: int = 2, cross: bool = False) -> list[Term]:
    """Q (d_e per query token), K and V (2 d_e per context token) and the head outputs
    (d_e per query token) of ``layers`` multi-head attentions: (M15) reference Q^h, K^h,
    V^h, Y; (M19) sdpa the projections and the kernel's output O; naive scaled copies of
    Q, K, a contiguous copy of V and the merged heads Y. On the naive path with B = 1 and
    no upcast, V reshapes without a copy, so the whole projection it is a view of stays
    alive instead: +2 d_e (self-attention's Q, K, V) or +1 d_e (cross-attention's K, V)
    per context token."""
    w = _qkv_width(path, b)
    terms = [Term(f"{what}: queries", "attention", layers * n * d, w),
             Term(f"{what}: keys, values", "attention", layers * n_z * 2 * d, w),
             Term(f"{what}: head outputs", "attention", layers * n * d, b)]
    if path == "naive" and batch == 1 and b >= 4:
        terms.append(Term(f"{what}: projection viewed by V (B = 1)", "attention",
                          layers * n_z * (1 if cross else 2) * d, b))
    return terms


def _mlp(path: str, c: Config, layers: int, n: int, b: int, what: str) -> Term:
    """U and G = phi(U), 2 d_mlp per token (M15); torch's ReLU backward reads its output G
    only, so U is freed there (M19)."""
    k = 1 if path != "reference" and c.activation == "relu" else 2
    return Term(f"{what}: MLP {'G' if k == 1 else 'U, G'}", "mlp", layers * n * k * c.d_mlp, b)


def _ln_stats(path: str, norms: int, n: int, b: int) -> list[Term]:
    """Mean and 1/sigma per token of ``norms`` torch layer norms (2 numbers each); the
    reference keeps m and v as NumPy scalars, Python objects outside the array data."""
    if path == "reference":
        return []
    return [Term("layer norms: mean, 1/sigma", "layer norm", norms * n * 2, b)]


def _next_token_head(path: str, c: Config, B: int, l: int, b: int) -> list[Term]:
    """The loss head of the D and ED transformers: the reference keeps p for every column
    (M16); torch keeps the log-probabilities of positions 0..l-2 and the targets (M20)."""
    if path == "reference":
        return [Term("distributions p (unembedding)", "head", l * c.N_V, b)]
    return [Term("log-probabilities (at least float32)", "head", B * (l - 1) * c.N_V,
                 max(b, 4)),
            # x[:, 1:] is contiguous only for B = 1; otherwise the loss copies the targets
            Term("targets (int64) and the loss's total weight", "head",
                 (B * (l - 1) * 8 if B > 1 else 0) + max(b, 4), 1)]


def _decoder_only(c: DTransformerConfig, B: int, l: int, b: int, path: str) -> list[Term]:
    """(M16) reference, (M20) torch: the D transformer (Algorithm 10), pre-LN."""
    n, d, L = B * l, c.d_e, c.L
    terms = [_scores(path, c.H, L, n, l, _qkv_width(path, b), "self-attention"),
             *_attention(path, L, n, n, d, b, "self-attention", B),
             _mlp(path, c, L, n, b, "layers"),
             Term("residual stream and layer-norm outputs", "residual", (4 * L + 2) * n * d, b)]
    terms += _ln_stats(path, 2 * L + 1, n, b)
    if path == "reference":
        terms.append(Term("causal masks (bool)", "masks", L * l * l, 1))
    return terms + _next_token_head(path, c, B, l, b)


def _encoder_layers(c: Config, L: int, B: int, l: int, b: int, path: str, what: str
                    ) -> list[Term]:
    """(M15)/(M19): L post-LN encoder layers (Algorithm 9 L5-9, Algorithm 8 L4-8)."""
    n, d = B * l, c.d_e
    terms = [_scores(path, c.H, L, n, l, _qkv_width(path, b), what),
             *_attention(path, L, n, n, d, b, what, B),
             _mlp(path, c, L, n, b, what),
             Term(f"{what}: residual stream and layer-norm outputs", "residual",
                  L * n * 4 * d, b)]
    terms += _ln_stats(path, 2 * L, n, b)
    if path == "reference":  # one all-ones mask per head (Mask omitted)
        terms.append(Term(f"{what}: all-ones masks (bool)", "masks", L * c.H * l * l, 1))
    return terms


def _encoder_only(c: ETransformerConfig, B: int, l: int, b: int, path: str) -> list[Term]:
    """(M17) reference, (M21) torch: the E transformer (Algorithm 9), post-LN, with head
    W_f, phi, ln_f and the optional embedding layer norm."""
    n, d, emb = B * l, c.d_e, int(c.embedding_layer_norm)
    terms = _encoder_layers(c, c.L, B, l, b, path, "self-attention")
    terms += [Term("head: X_L, W_f X_L, phi(.), ln_f output", "head", n * 4 * d, b)]
    terms += _ln_stats(path, 1 + emb, n, b)
    if emb:
        terms.append(Term("embedding before its layer norm", "residual", n * d, b))
    if path == "reference":
        return terms + [Term("distributions p (unembedding)", "head", l * c.N_V, b)]
    return terms + [Term("log-probabilities (at least float32)", "head", n * c.N_V, max(b, 4)),
                    Term("masked input ids (int64)", "head", n, 8),
                    Term("loss weights and total weight (at least float32)", "head",
                         (n + 1) * max(b, 4), 1)]


def _encoder_decoder(c: EDTransformerConfig, B: int, l_z: int, l_x: int, b: int, path: str
                     ) -> list[Term]:
    """(M18) reference, (M22) torch: the ED transformer (Algorithm 8), post-LN."""
    n, n_z, d, L = B * l_x, B * l_z, c.d_e, c.L_dec
    w = _qkv_width(path, b)
    terms = _encoder_layers(c, c.L_enc, B, l_z, b, path, "encoder")
    terms += [Term("encoder output Z", "residual", n_z * d, b),
              _scores(path, c.H, L, n, l_x, w, "decoder self-attention"),
              _scores(path, c.H, L, n, l_z, w, "cross-attention"),
              *_attention(path, L, n, n, d, b, "decoder self-attention", B),
              *_attention(path, L, n, n_z, d, b, "cross-attention", B, cross=True),
              _mlp(path, c, L, n, b, "decoder"),
              Term("decoder: residual stream and layer-norm outputs", "residual",
                   (6 * L + 1) * n * d, b)]
    terms += _ln_stats(path, 3 * L, n, b)
    if path == "reference":
        terms.append(Term("decoder: causal and all-ones masks (bool)", "masks",
                          L * (l_x * l_x + c.H * l_z * l_x), 1))
    return terms + _next_token_head(path, c, B, l_x, b)


def _vit(c: ViTConfig, B: int, b: int, path: str) -> list[Term]:
    """(M51) torch: the ViT classifier (Algorithm 77) on B images of N patches: the layers of
    the D transformer on l = N + 1 tokens without a mask, the patch rows the projection keeps,
    the final layer norm of the class token only, and the head's log-probabilities."""
    if path == "reference":
        from formal_transformers.errors import ConfigError

        raise ConfigError("the memory formulas cover the ViT classifier on torch_impl's paths "
                          "('naive', 'sdpa'), not the reference's")
    l, d, L = c.n_patches + 1, c.d_e, c.L
    n = B * l
    return [_scores(path, c.H, L, n, l, _qkv_width(path, b), "self-attention"),
            *_attention(path, L, n, n, d, b, "self-attention", B),
            _mlp(path, c, L, n, b, "layers"),
            Term("residual stream and layer-norm outputs", "residual", (4 * L + 1) * n * d, b),
            Term("final layer norm of the class token", "residual", B * d, b),
            Term("layer norms: mean, 1/sigma", "layer norm", (2 * L * n + B) * 2, b),
            Term("patch rows (input of the patch projection)", "embedding",
                 B * c.n_patches * c.d_patch, b),
            Term("log-probabilities of the classes", "head", B * c.n_classes, b)]


def activation_terms(config: Config, batch: int, seq: int, bytes_per: int, path: str,
                     src_seq: int | None = None) -> list[Term]:
    """The inventory of what a training step keeps for its backward pass.

    seq is l (l_x for the ED transformer, whose context has ``src_seq`` = l_z tokens,
    default l_x). The reference runs one sequence at a time in float64: with
    ``path='reference'`` pass batch=1 and bytes_per=8.
    """
    check_path(path)
    if isinstance(config, DTransformerConfig):
        return _decoder_only(config, batch, seq, bytes_per, path)
    if isinstance(config, ETransformerConfig):
        return _encoder_only(config, batch, seq, bytes_per, path)
    if isinstance(config, EDTransformerConfig):
        return _encoder_decoder(config, batch, src_seq or seq, seq, bytes_per, path)
    if isinstance(config, ViTConfig):  # seq is unused: N + 1 tokens per image
        return _vit(config, batch, bytes_per, path)
    if isinstance(config, ModernDTransformerConfig):  # (M68)
        from formal_transformers.memory.modern import modern_activation_terms

        return modern_activation_terms(config, batch, seq, bytes_per, path)
    raise TypeError(f"config must be an architecture config, got {type(config).__name__}")


def self_attention_terms(H: int, d_e: int, batch: int, l: int, b: int, path: str
                         ) -> list[Term]:
    """What one multi-head self-attention layer keeps (its share of (M15)/(M19)): scores
    (A or log-normalisers), queries, keys, values and head outputs. Its input X is the
    residual stream, counted by the layer that made it."""
    check_path(path)
    n = batch * l
    return [_scores(path, H, 1, n, l, _qkv_width(path, b), "self-attention"),
            *_attention(path, 1, n, n, d_e, b, "self-attention", batch)]
