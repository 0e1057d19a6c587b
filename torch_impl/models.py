"""The three architectures as nn.Modules (spec: Algorithms 8-10, 08/09/10-*-transformer.md).

Each model is built from a config of formal_transformers.hyperparameters, loads and exports the
canonical parameters (``from_canonical`` / ``to_canonical``), and returns LOGITS W_u X in
(B, l, N_V) layout; the spec's P is their softmax over the vocabulary axis (``probabilities``).

Declared variants of the config: ``tied_unembedding`` makes ``lm_head.weight`` the same
Parameter as ``wte.weight`` (autograd sums both uses; no canonical W_u), ``bias=False`` builds
every layer without biases, ``padding_idx`` is nn.Embedding's (no gradient to that row from
the lookup).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn as nn

from formal_transformers.canonical import check_parameters, parameter_shapes
from formal_transformers.errors import SequenceLengthError, SpecShapeError
from formal_transformers.hyperparameters import (
    Config,
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
)
from formal_transformers.validation import check_finite
from torch_impl import padding
from torch_impl._checks import check_token_batch
from torch_impl.blocks import (
    Get,
    LayerNorm,
    PostLNDecoderBlock,
    PostLNEncoderBlock,
    PreLNBlock,
)
from torch_impl.kv_cache import KVCache
from torch_impl.mlp import activation_function

_NUMPY_TO_TORCH = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32,
                   np.dtype(np.float16): torch.float16}


class CanonicalParameters(nn.Module):
    """Canonical import and export of a model's parameters, for every model class of
    torch_impl (the three architectures, the modern decoder, the ViT classifier): a subclass
    sets ``config`` and defines ``canonical_views(get)``, views of its parameters (or of
    ``get(p)``) under every canonical name, in the order of canonical.parameter_shapes."""

    config: Config

    def canonical_views(self, get: Get) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @classmethod
    def from_canonical(cls, config: Config, params: Mapping[str, object],
                       dtype: torch.dtype | None = None,
                       device: torch.device | str | None = None) -> CanonicalParameters:
        """A model holding ``params`` (NumPy arrays or tensors, canonical names and shapes).

        dtype defaults to the parameters' own (float64 arrays give a float64 model).
        Missing, extra or mis-shaped entries raise ParameterFileError; NaN/Inf NonFiniteError.
        """
        check_parameters(config, params)
        for name, value in params.items():
            check_finite(name, value)
        if dtype is None:
            first = next(iter(params.values()))
            dtype = first.dtype if isinstance(first, torch.Tensor) else _NUMPY_TO_TORCH.get(
                np.asarray(first).dtype, torch.float32)
        model = cls(config).to(dtype=dtype, device=device)  # type: ignore[call-arg]
        with torch.no_grad():
            for name, view in model.canonical_views(lambda p: p.data).items():
                value = params[name]
                view.copy_(value if isinstance(value, torch.Tensor) else
                           torch.tensor(np.asarray(value)))  # a copy: arrays may be read-only
        return model

    def to_canonical(self) -> dict[str, np.ndarray]:
        """The parameters as a canonical flat dict of NumPy arrays (bfloat16 -> float32)."""
        return {k: _numpy(v) for k, v in self.canonical_views(lambda p: p.data).items()}

    def canonical_grads(self) -> dict[str, np.ndarray]:
        """The gradients after ``backward()`` by canonical name (zeros where none flowed)."""
        def grad(p: nn.Parameter) -> torch.Tensor:
            return p.grad if p.grad is not None else torch.zeros_like(p)
        return {k: _numpy(v) for k, v in self.canonical_views(grad).items()}


class CanonicalModel(CanonicalParameters):
    """Shared machinery of Algorithms 8-10: embeddings, canonical views, token checks."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.N_V, config.d_e,  # weight = W_e^T (N_V, d_e)
                                padding_idx=config.padding_idx)
        self.wpe = nn.Embedding(config.l_max, config.d_e)  # weight = W_p^T (l_max, d_e)
        self.lm_head = nn.Linear(config.d_e, config.N_V, bias=False)  # weight = W_u
        if config.tied_unembedding:
            self.lm_head.weight = self.wte.weight  # W_u = W_e^T, one Parameter

    # -- canonical parameters ------------------------------------------------------------
    def canonical_views(self, get: Get) -> dict[str, torch.Tensor]:
        """Views of the parameters (or of ``get(p)``) under every canonical name, in the
        order of formal_transformers.canonical.parameter_shapes."""
        views = {"W_e": get(self.wte.weight).T, "W_p": get(self.wpe.weight).T,
                 "W_u": get(self.lm_head.weight)} | self._body_views(get)
        return {name: views[name] for name in parameter_shapes(self.config)}

    def _body_views(self, get: Get) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # -- shared forward pieces -----------------------------------------------------------
    def check_tokens(self, name: str, x: torch.Tensor, offset: int = 0) -> None:
        """x: (B, l) ids in [0, N_V) that fit in the context after ``offset`` cached tokens.

        Skipped while torch.compile traces (the range check reads data: a graph break)."""
        if torch.compiler.is_compiling():
            return
        check_token_batch(name, x, self.config.N_V, self.config.l_max)
        if offset + x.shape[1] > self.config.l_max:
            raise SequenceLengthError(
                f"{name} has {x.shape[1]} tokens after {offset} cached ones, more than the "
                f"context size l_max = {self.config.l_max}")

    def embed(self, x: torch.Tensor, offset: int = 0,
              positions: torch.Tensor | None = None) -> torch.Tensor:
        """e_t = W_e[:, x[t]] + W_p[:, offset + t]: x (B, T) -> (B, T, d_e) (Algs 1-2);
        a padded batch passes its per-token ``positions`` (B, T) instead."""
        if positions is not None:
            return self.wte(x) + self.wpe(positions)
        T = x.shape[1]
        if x.dtype not in (torch.int64, torch.int32):  # any integer dtype, as the reference
            x = x.long()
        return self.wte(x) + self.wpe.weight[offset:offset + T]

    # -- padded batches (spec: Algorithms 9-10, "Padded batches"; torch_impl/padding.py) ----
    def padding(self, x: torch.Tensor, attention_mask: torch.Tensor | None
                ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(positions (B, l), self-attention mask (B, 1, l, l)) of a padded batch, or Nones."""
        if attention_mask is None:
            return None, None
        real = padding.check_real(attention_mask, tuple(x.shape))
        return self.position_ids(real), self.padding_mask(real)

    def position_ids(self, real: torch.Tensor) -> torch.Tensor:
        return padding.position_ids(real)

    def padding_mask(self, real: torch.Tensor) -> torch.Tensor | None:
        return padding.key_padding_mask(real)


def _numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy().copy()


class DTransformer(CanonicalModel):
    """Decoder-only transformer, GPT style: pre-LN, causal (spec: Algorithm 10)."""

    def __init__(self, config: DTransformerConfig):
        super().__init__(config)
        c = config
        self.layers = nn.ModuleList(
            PreLNBlock(c.d_e, c.d_mlp, c.H, c.activation, c.layer_norm_eps, bias=c.bias)
            for _ in range(c.L))
        self.ln_f = LayerNorm(c.d_e, eps=c.layer_norm_eps, bias=c.bias)

    def _body_views(self, get: Get) -> dict[str, torch.Tensor]:
        views: dict[str, torch.Tensor] = {}
        for l, layer in enumerate(self.layers):
            views |= layer.canonical_views(f"layers.{l}", get)
        return views | self.ln_f.canonical_views("ln_f", get)

    def new_cache(self, B: int, capacity: int | None = None) -> KVCache:
        """An empty static KV cache for B sequences of up to ``capacity`` (<= l_max) tokens."""
        c, w = self.config, self.lm_head.weight
        return KVCache(c.L, B, c.H, capacity or c.l_max, c.d_e // c.H, w.dtype, w.device)

    def hidden_states(self, x: torch.Tensor, cache: KVCache | None = None,
                      attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The final-layer-normed X before W_u (GPT-2's last_hidden_state): (B, T, d_e).

        With a cache, x holds the T tokens after the ``cache.length`` cached ones.
        ``attention_mask`` (B, T) bool marks the real tokens of a padded batch (no cache).
        """
        offset = cache.length if cache is not None else 0
        self.check_tokens("x", x, offset)
        return self._hidden(x, cache, attention_mask)

    def _hidden(self, x: torch.Tensor, cache: KVCache | None,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        offset = cache.length if cache is not None else 0
        if cache is not None and (attention_mask is not None or cache.padded):
            positions, mask = self._cached_padding(x, cache, attention_mask)
        else:
            positions, mask = self.padding(x, attention_mask)
        X = self.embed(x, offset, positions)  # (B, T, d_e), Alg 10 L2-3
        for l, layer in enumerate(self.layers):
            X = layer(X, cache, l, mask)  # Alg 10 L4-8
        if cache is not None:
            cache.advance(x.shape[1])
        return self.ln_f(X)  # Alg 10 L9

    def _cached_padding(self, x: torch.Tensor, cache: KVCache,
                        attention_mask: torch.Tensor | None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions and complete masks of T new tokens in a padded KV cache: the cache
        remembers which of its positions are real (new tokens without a mask are real)."""
        offset, T = cache.length, x.shape[1]
        if attention_mask is not None:  # checked whole by the caller (inference.decode_steps)
            cache.real[:, offset:offset + T] = attention_mask
            cache.padded = True
        keys = cache.real[:, :offset + T]
        return padding.cached_positions(keys, T), padding.cached_mask(keys, T, offset)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, l) token ids -> logits W_u X: (B, l, N_V) (spec: Algorithm 10)."""
        return self.lm_head(self.hidden_states(x, cache, attention_mask))

    def last_logits(self, x: torch.Tensor, cache: KVCache | None,
                    attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the last position only, (B, N_V), without input checks: the decode step."""
        return self.lm_head(self._hidden(x, cache, attention_mask)[:, -1])


class ETransformer(CanonicalModel):
    """Encoder-only transformer, BERT style: post-LN, unmasked (spec: Algorithm 9)."""

    def __init__(self, config: ETransformerConfig):
        super().__init__(config)
        c = config
        self.emb_ln = (LayerNorm(c.d_e, eps=c.layer_norm_eps, bias=c.bias)
                       if c.embedding_layer_norm else None)
        self.layers = nn.ModuleList(PostLNEncoderBlock(c.d_e, c.d_mlp, c.H, c.activation,
                                                       c.layer_norm_eps, c.bias)
                                    for _ in range(c.L))
        self.W_f = nn.Linear(c.d_e, c.d_e, bias=c.bias)  # W_f, b_f
        self.phi = activation_function(c.activation)
        self.ln_f = LayerNorm(c.d_e, eps=c.layer_norm_eps, bias=c.bias)

    def _body_views(self, get: Get) -> dict[str, torch.Tensor]:
        views = self.emb_ln.canonical_views("emb_ln", get) if self.emb_ln is not None else {}
        for l, layer in enumerate(self.layers):
            views |= layer.canonical_views(f"layers.{l}", get)
        views |= {"W_f": get(self.W_f.weight)}
        if self.W_f.bias is not None:
            views["b_f"] = get(self.W_f.bias)
        return views | self.ln_f.canonical_views("ln_f", get)

    def hidden_states(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """X after the last encoder layer, before the head W_f/phi/ln_f/W_u: (B, l, d_e).

        This is BERT's last_hidden_state (spec: Algorithm 9, the X after L8).
        ``attention_mask`` (B, l) bool marks the real tokens of a padded batch.
        """
        self.check_tokens("x", x)
        positions, mask = self.padding(x, attention_mask)
        X = self.embed(x, positions=positions)  # (B, l, d_e), Alg 9 L2-3
        if self.emb_ln is not None:
            X = self.emb_ln(X)  # BERT's embedding layer norm (config embedding_layer_norm)
        for layer in self.layers:
            X = layer(X, mask)  # Alg 9 L4-8
        return X

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        """x: (B, l) token ids -> logits (B, l, N_V) (spec: Algorithm 9)."""
        X = self.phi(self.W_f(self.hidden_states(x, attention_mask)))  # Alg 9 L9
        return self.lm_head(self.ln_f(X))  # Alg 9 L10-11


class EDTransformer(CanonicalModel):
    """Encoder-decoder transformer, Vaswani style: post-LN (spec: Algorithm 8)."""

    def __init__(self, config: EDTransformerConfig):
        super().__init__(config)
        c = config
        self.enc_layers = nn.ModuleList(PostLNEncoderBlock(
            c.d_e, c.d_mlp, c.H, c.activation, c.layer_norm_eps, c.bias) for _ in range(c.L_enc))
        self.dec_layers = nn.ModuleList(PostLNDecoderBlock(
            c.d_e, c.d_mlp, c.H, c.activation, c.layer_norm_eps, c.bias) for _ in range(c.L_dec))

    def _body_views(self, get: Get) -> dict[str, torch.Tensor]:
        views: dict[str, torch.Tensor] = {}
        for l, layer in enumerate(self.enc_layers):
            views |= layer.canonical_views(f"enc.layers.{l}", get)
        for l, layer in enumerate(self.dec_layers):
            views |= layer.canonical_views(f"dec.layers.{l}", get)
        return views

    def new_cache(self, B: int, capacity: int | None = None) -> KVCache:
        """An empty static cache for the decoder's self-attention of B sequences."""
        c, w = self.config, self.lm_head.weight
        return KVCache(c.L_dec, B, c.H, capacity or c.l_max, c.d_e // c.H, w.dtype, w.device)

    def encode(self, z: torch.Tensor, context_mask: torch.Tensor | None = None
               ) -> torch.Tensor:
        """The encoder: z (B, l_z) token ids -> Z (B, l_z, d_e) (spec: Algorithm 8, L1-8).

        ``context_mask`` (B, l_z) bool marks the real tokens of a padded context."""
        self.check_tokens("z", z)
        positions, mask = self.padding(z, context_mask)
        Z = self.embed(z, positions=positions)  # Alg 8 L2-3
        for layer in self.enc_layers:
            Z = layer(Z, mask)  # Alg 8 L4-8
        return Z

    def context(self, Z: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each decoder layer's cross-attention keys and values of Z (computed once)."""
        return [layer.cross_mha.context(Z) for layer in self.dec_layers]

    def decode(self, x: torch.Tensor, kv: list[tuple[torch.Tensor, torch.Tensor]],
               cache: KVCache | None = None, attention_mask: torch.Tensor | None = None,
               context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder: x (B, T) -> the final X (B, T, d_e) (spec: Algorithm 8, L9-18).

        A padded batch (no cache) passes the real tokens of x and of the context z."""
        offset = cache.length if cache is not None else 0
        positions, mask = self.padding(x, attention_mask)
        cross = None if context_mask is None else self.cross_padding_mask(context_mask,
                                                                          x.shape[1])
        X = self.embed(x, offset, positions)  # Alg 8 L10-11
        for l, layer in enumerate(self.dec_layers):
            X = layer(X, kv[l], cache, l, mask, cross)  # Alg 8 L12-18
        if cache is not None:
            cache.advance(x.shape[1])
        return X

    def cross_padding_mask(self, context_real: torch.Tensor, T: int) -> torch.Tensor | None:
        return padding.context_mask(context_real, T)

    def forward(self, z: torch.Tensor, x: torch.Tensor,
                attention_mask: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, l_z), x (B, l_x) token ids -> logits (B, l_x, N_V) (spec: Algorithm 8);
        a padded batch passes the real tokens of x (attention_mask) and of z (context_mask)."""
        self.check_tokens("x", x)
        if z.shape[0] != x.shape[0]:
            raise SpecShapeError(f"z and x must hold the same number of sequences, got "
                                 f"z {tuple(z.shape)} and x {tuple(x.shape)}")
        if context_mask is not None:
            padding.check_real(context_mask, tuple(z.shape))
        Z = self.encode(z, context_mask)
        return self.lm_head(self.decode(x, self.context(Z), None, attention_mask,
                                        context_mask))  # Alg 8 L19


MODEL_CLASSES: dict[type, type[CanonicalModel]] = {
    DTransformerConfig: DTransformer, ETransformerConfig: ETransformer,
    EDTransformerConfig: EDTransformer,
}


# Model classes of modules that build on this one, by ``config.arch``, imported when needed.
LATER_MODEL_CLASSES = {"modern-decoder": ("torch_impl.modern_decoder", "ModernDTransformer"),
                       "vit": ("torch_impl.vision", "ViTClassifier")}


def model_class(config: Config) -> type[CanonicalParameters]:
    """The nn.Module class of ``config``'s architecture."""
    if config.arch in LATER_MODEL_CLASSES:
        module, name = LATER_MODEL_CLASSES[config.arch]
        return getattr(importlib.import_module(module), name)
    return MODEL_CLASSES[type(config)]


def model_from_canonical(config: Config, params: Mapping[str, object],
                         dtype: torch.dtype | None = None,
                         device: torch.device | str | None = None) -> CanonicalParameters:
    """The model class of ``config``'s architecture, loaded with ``params``."""
    return model_class(config).from_canonical(config, params, dtype, device)


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """P = softmax of the logits over the vocabulary axis: (..., N_V) (spec: Algorithm 7)."""
    return torch.softmax(logits, dim=-1)


def d_transformer(x: torch.Tensor, params: Mapping[str, object], config: DTransformerConfig
                  ) -> torch.Tensor:
    """P (B, l, N_V) of the D transformer from canonical parameters (spec: Algorithm 10)."""
    model = DTransformer.from_canonical(config, params)
    return probabilities(model(x))


def e_transformer(x: torch.Tensor, params: Mapping[str, object], config: ETransformerConfig
                  ) -> torch.Tensor:
    """P (B, l, N_V) of the E transformer from canonical parameters (spec: Algorithm 9)."""
    model = ETransformer.from_canonical(config, params)
    return probabilities(model(x))


def ed_transformer(z: torch.Tensor, x: torch.Tensor, params: Mapping[str, object],
                   config: EDTransformerConfig) -> torch.Tensor:
    """P (B, l_x, N_V) of the ED transformer from canonical parameters (spec: Algorithm 8)."""
    model = EDTransformer.from_canonical(config, params)
    return probabilities(model(z, x))
