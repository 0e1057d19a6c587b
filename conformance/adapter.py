"""The adapter protocol: how any implementation is put in front of the conformance suite.

An adapter is a small class. It declares

- ``name``: a string shown in reports;
- ``dtypes``: the NumPy float dtypes it runs in, e.g. ``("float32", "float64")``;
- ``algorithms``: the spec ids it implements (``formal-transformers spec`` lists them) and the
  optional extras of ``EXTRAS`` (parameter counts, gradients of the architectures);
- ``variants`` (optional): a dict of the declared variants it implements, from
  ``formal_transformers.hyperparameters.VARIANTS`` -- ``tied_unembedding`` (bool: W_u = W_e^T,
  one parameter), ``bias`` (bool: False means no bias and no layer-norm beta anywhere),
  ``loss_reduction`` ("sum" or "mean": the training algorithms' objective), ``padding_idx``
  (None or a token id whose embedding column is 0 and gets no gradient from the lookup).
  Undeclared names take the spec's default. The suite then builds every architecture config
  with these values and draws parameters that respect them (canonical.parameter_shapes of
  that config: no ``W_u`` when tied, no ``b_*``/``beta`` when bias-free); the spec states each
  variant's formula (spec/algorithms/01, 07-13, "Hyperparameter variants"). Variants apply
  to the architectures (Algorithms 8-10) and the training and inference built on them; the
  primitives' checks (attention, layer norm, MLP, ...) draw the paper's parameters;

and implements one method per declared name, with the signatures documented on ``Adapter``.
Everything undeclared is reported as *not covered* -- never as passed.

Layout. Arrays are NumPy, in ``(batch, length, features)`` layout; the spec's column matrix
``X in R^{d_x x l_x}`` of sequence ``b`` is the adapter's ``X[b].T``. Parameters come as a dict
keyed by the spec's names (``W_q``, ``b_q``, ...; the canonical flat names of
``formal_transformers.canonical`` for whole architectures), in the spec's orientation, which is
``torch.nn.Linear.weight``'s: ``W_q`` is ``(d_attn, d_x)`` and ``W_q X`` is ``X @ W_q.T``.
Multi-head parameters stack the heads on axis 0 (``W_q`` is ``(H, d_attn, d_x)``). A mask is
``None`` (all ones) or a bool array ``Mask[t_z, t_x]`` of shape ``(l_z, l_x)``: True lets query
token ``t_x`` attend to context token ``t_z``. Token sequences are int64 arrays ``(B, l)``.
Floating outputs must have the dtype of the floating inputs.

Subclassing ``Adapter`` is optional (any object with these attributes and methods works), but
it documents every signature and lets ``constrain`` default to "every size is supported".
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from formal_transformers.errors import AdapterError
from formal_transformers.hyperparameters import VARIANTS, variant_problem

Array = np.ndarray
Params = Mapping[str, np.ndarray]

FORWARD = ("token_embedding", "positional_embedding", "basic_attention", "attention",
           "mhattention", "layer_norm", "unembedding", "mlp", "ed_transformer",
           "e_transformer", "d_transformer", "modern_d_transformer")
# The modern attention primitives (spec: Algorithms 40-49).
ATTENTION_VARIANTS = ("gq_attention", "sliding_window_mask", "block_sparse_mask", "qk_norm",
                      "softcap", "gq_attention_backward", "qk_norm_backward", "softcap_backward",
                      "online_softmax_attention", "online_softmax_attention_backward")
TRAINING = ("ed_training", "e_training", "d_training")
INFERENCE = ("d_inference", "ed_inference")
DECODING = ("sampling", "speculative_decoding")  # Algorithms 60-61
BACKWARD = ("token_embedding_backward", "positional_embedding_backward", "attention_backward",
            "mhattention_backward", "layer_norm_backward", "mlp_backward",
            "unembedding_backward")
# Modern primitives (spec: Algorithms 24-31, issue 13): each convention is a hyperparameter the
# method receives; an implementation of one convention only fixes it in ``constrain``.
MODERN = ("sinusoidal_embedding", "rope", "alibi", "rmsnorm", "gated_mlp", "rope_backward",
          "rmsnorm_backward", "gated_mlp_backward")
# Vision (spec: Algorithms 75-78, issue 17): images (B, C, h, w), channel axis first.
VISION = ("patch_extraction", "patch_embedding", "vit_classifier", "vit_classifier_backward")
# The modern decoder's hand-written backward (spec: Algorithm 66).
MODERN_DECODER_BACKWARD = ("modern_d_transformer_backward",)
ALGORITHMS = (FORWARD + TRAINING + INFERENCE + BACKWARD + DECODING + MODERN
              + ATTENTION_VARIANTS + VISION + MODERN_DECODER_BACKWARD)
EXTRAS = ("count_parameters", "d_transformer_backward", "e_transformer_backward",
          "ed_transformer_backward", "sampling_distribution", "d_transformer_padded",
          "e_transformer_padded", "ed_transformer_padded", "d_decode", "ed_decode",
          "d_training_padded", "modern_d_transformer_cached")
SUPPORTED_DTYPES = ("float16", "bfloat16", "float32", "float64")  # bfloat16: ml_dtypes' type


class Adapter:
    """Base class documenting the protocol; override what you declare in ``algorithms``.

    Shapes: B batch, l / l_x / l_z lengths, d_* feature sizes as in spec/notation.md.
    """

    name: str = "unnamed adapter"
    dtypes: tuple[str, ...] = ("float64",)
    algorithms: tuple[str, ...] = ()
    variants: dict[str, Any] = {}  # noqa: RUF012 -- read only; see declared_variants

    def constrain(self, algorithm: str, sizes: dict[str, Any]) -> dict[str, Any]:
        """Map drawn sizes onto ones this implementation supports (default: all supported).

        ``sizes`` holds the hyperparameters a test drew for ``algorithm`` (e.g. ``d_x``,
        ``d_attn``, ``H`` for mhattention; for architectures the config fields). Return a dict
        with the same keys. Example: torch.nn.MultiheadAttention needs d_x = d_out = H * d_attn.
        """
        return sizes

    # -- forward algorithms (spec: Algorithms 1-10, 16) --------------------------------------
    def token_embedding(self, x: Array, params: Params) -> Array:
        """Alg 1. x (B, l) int; params W_e (d_e, N_V). Returns (B, l, d_e)."""
        raise NotImplementedError

    def positional_embedding(self, l: int, params: Params) -> Array:
        """Alg 2. Positions 0..l-1; params W_p (d_e, l_max). Returns (l, d_e)."""
        raise NotImplementedError

    def basic_attention(self, e: Array, E_ctx: Array, params: Params) -> Array:
        """Alg 3. e (B, d_x), E_ctx (B, l_z, d_z); W_q, b_q, W_k, b_k, W_v, b_v.

        Returns (B, d_out).
        """
        raise NotImplementedError

    def attention(self, X: Array, Z: Array, params: Params, mask: Array | None = None) -> Array:
        """Alg 4. X (B, l_x, d_x), Z (B, l_z, d_z), mask (l_z, l_x) or None.

        Returns (B, l_x, d_out).
        """
        raise NotImplementedError

    def mhattention(self, X: Array, Z: Array, params: Params, mask: Array | None = None) -> Array:
        """Alg 5. Like attention; W_q (H, d_attn, d_x), ..., W_o (d_out, H*d_mid), b_o (d_out,)."""
        raise NotImplementedError

    def layer_norm(self, X: Array, params: Params, eps: float) -> Array:
        """Alg 6 at every position. X (B, l, d_e); gamma, beta (d_e,). Returns (B, l, d_e)."""
        raise NotImplementedError

    def unembedding(self, X: Array, params: Params) -> Array:
        """Alg 7 at every position. X (B, l, d_e); W_u (N_V, d_e). Returns P (B, l, N_V)."""
        raise NotImplementedError

    def mlp(self, X: Array, params: Params, activation: str) -> Array:
        """Alg 16. X (B, l, d_e); W_mlp1 (d_mlp, d_e), b_mlp1, W_mlp2 (d_e, d_mlp), b_mlp2.

        activation: "relu", "gelu" or "gelu_tanh". Returns (B, l, d_e).
        """
        raise NotImplementedError

    def ed_transformer(self, z: Array, x: Array, params: Params, config: Any) -> Array:
        """Alg 8. z (B, l_z), x (B, l_x) int; canonical params. Returns P (B, l_x, N_V)."""
        raise NotImplementedError

    def e_transformer(self, x: Array, params: Params, config: Any) -> Array:
        """Alg 9. x (B, l) int; canonical params. Returns P (B, l, N_V)."""
        raise NotImplementedError

    def d_transformer(self, x: Array, params: Params, config: Any) -> Array:
        """Alg 10. x (B, l) int; canonical params. Returns P (B, l, N_V)."""
        raise NotImplementedError

    # -- modern attention primitives (spec: Algorithms 40-49) --------------------------------
    def gq_attention(self, X: Array, Z: Array, params: Params, mask: Array | None = None
                     ) -> Array:
        """Alg 40. Like mhattention, but W_k (G, d_attn, d_z), b_k (G, d_attn), W_v (G, d_mid,
        d_z), b_v (G, d_mid) with G | H; query head h reads kv head floor(h G / H)."""
        raise NotImplementedError

    def sliding_window_mask(self, l: int, w: int) -> Array:
        """Alg 42. Returns the bool Mask (l, l), Mask[t_z, t_x] = [t_x - w < t_z <= t_x]."""
        raise NotImplementedError

    def block_sparse_mask(self, l: int, b: int, c: int) -> Array:
        """Alg 43. Returns the bool Mask (l, l) of the fixed pattern (block b, c summaries)."""
        raise NotImplementedError

    def qk_norm(self, X: Array, params: Params, H: int, axis: str, eps: float) -> Array:
        """Alg 44 at every position. X (B, l, H*d_attn), heads stacked on the features;
        gamma (d_attn,) for axis "per_head", (H*d_attn,) for "projection". Returns X's shape."""
        raise NotImplementedError

    def softcap(self, X: Array, Z: Array, params: Params, c: float, mask: Array | None = None
                ) -> Array:
        """Alg 46. Like attention, with the scaled scores capped to c tanh(S / c) before the
        mask. Returns (B, l_x, d_out)."""
        raise NotImplementedError

    def online_softmax_attention(self, X: Array, Z: Array, params: Params, block: int,
                                 mask: Array | None = None) -> Array:
        """Alg 48. Like attention, computed over key blocks of ``block`` keys (B_c)."""
        raise NotImplementedError

    def online_softmax_attention_backward(self, X: Array, Z: Array, params: Params,
                                          block: int, dY: Array, mask: Array | None = None
                                          ) -> dict[str, Array]:
        """Alg 49. Returns {"X", "Z", "W_q", "b_q", "W_k", "b_k", "W_v", "b_v"}."""
        raise NotImplementedError

    def gq_attention_backward(self, X: Array, Z: Array, params: Params, dY: Array,
                              mask: Array | None = None) -> dict[str, Array]:
        """Alg 41. Returns {"X", "Z", "W_q", ..., "W_o", "b_o"}; kv gradients (G, ...)."""
        raise NotImplementedError

    def qk_norm_backward(self, X: Array, params: Params, H: int, axis: str, eps: float,
                         dY: Array) -> dict[str, Array]:
        """Alg 45. dY (B, l, H*d_attn). Returns {"X", "gamma"}."""
        raise NotImplementedError

    def softcap_backward(self, X: Array, Z: Array, params: Params, c: float, dY: Array,
                         mask: Array | None = None) -> dict[str, Array]:
        """Alg 47. Returns {"X", "Z", "W_q", "b_q", "W_k", "b_k", "W_v", "b_v"}."""
        raise NotImplementedError

    def modern_d_transformer(self, x: Array, params: Params, config: Any) -> Array:
        """Alg 65. x (B, l) int; canonical params of a ModernDTransformerConfig (its selections
        are the declared variants). Returns P (B, l, N_V)."""
        raise NotImplementedError

    def modern_d_transformer_backward(self, x: Array, params: Params, config: Any, dP: Array
                                      ) -> dict[str, Array]:
        """Alg 66. Gradients of sum(P * dP), dP (B, l, N_V), P = modern_d_transformer(x): one
        entry per canonical parameter of the config, summed over the batch."""
        raise NotImplementedError

    # -- training (Algorithms 11-13): one epoch over the batch -------------------------------
    # One gradient-descent step per sequence, rows in order (B steps; B = 1 is one step of the
    # spec). Returns (sum of the per-sequence losses, each before its step; updated params).
    def ed_training(self, z: Array, x: Array, params: Params, config: Any, eta: float
                    ) -> tuple[float, dict[str, Array]]:
        """Alg 11 with N_epochs = 1 on the pairs (z[b], x[b])."""
        raise NotImplementedError

    def e_training(self, x: Array, masked: Array, params: Params, config: Any, eta: float,
                   mask_token: int) -> tuple[float, dict[str, Array]]:
        """Alg 12 with N_epochs = 1 and given masking decisions: masked (B, l) bool (True:
        replaced by mask_token and predicted)."""
        raise NotImplementedError

    def d_training(self, x: Array, params: Params, config: Any, eta: float
                   ) -> tuple[float, dict[str, Array]]:
        """Alg 13 with N_epochs = 1 on the sequences x[b]."""
        raise NotImplementedError

    def d_training_padded(self, x: Array, real: Array, params: Params, config: Any, eta: float
                          ) -> tuple[float, dict[str, Array]]:
        """Alg 13 with N_epochs = 1 on a padded batch (spec: 13-d-training.md, "Padded
        batches"): real (B, l) bool as in d_transformer_padded; row b's step is the step on
        its real tokens alone. Returns what d_training returns."""
        raise NotImplementedError

    # -- inference (Algorithms 14-15) ---------------------------------------------------------
    def d_inference(self, prompt: Array, params: Params, config: Any, l_gen: int, tau: float,
                    seed: int) -> Array:
        """Alg 14. prompt (B, l) int; sample l_gen tokens at temperature tau, seeded by seed.

        Returns (B, l + l_gen) int: the prompt followed by the new tokens.
        """
        raise NotImplementedError

    def d_decode(self, prompt: Array | None, params: Params, config: Any, l_gen: int,
                 real: Array | None = None, chunk: int | None = None, state: Any = None
                 ) -> tuple[Array, Array, Any]:
        """The decode path of Alg 14 at tau -> 0 (greedy), with every step's distribution.

        prompt (B, l) int; real (B, l) bool marks the real tokens of a LEFT-padded prompt
        (spec: 10-d-transformer.md, "Padded batches") or None; chunk: feed the prompt to the
        cache ``chunk`` tokens at a time (None: all at once); state: what an earlier call
        returned, to continue generating after its last token (then prompt is None).
        Returns (new tokens (B, l_gen) int, log_probs (B, l_gen, N_V) in the params' dtype:
        log p of the next-token distribution each token was taken from (its argmax), state).
        """
        raise NotImplementedError

    def ed_decode(self, z: Array, params: Params, config: Any, l_gen: int, bos_token: int
                  ) -> tuple[Array, Array]:
        """The decode path of Alg 15 at tau -> 0 for exactly l_gen tokens (no stop at eos):
        z (B, l_z) int. Returns (new tokens after bos_token (B, l_gen) int, log_probs
        (B, l_gen, N_V): log p of the distribution each token was the argmax of)."""
        raise NotImplementedError

    def ed_inference(self, z: Array, params: Params, config: Any, tau: float, seed: int,
                     bos_token: int, eos_token: int, l_max_gen: int) -> list[Array]:
        """Alg 15. z (B, l_z) int. Returns B int arrays, each starting with bos_token and
        ending at eos_token or after l_max_gen generated tokens."""
        raise NotImplementedError

    # -- decoding conventions (Algorithms 60-61) ----------------------------------------------
    def sampling(self, logits: Array, config: Any, n: int, seed: int) -> Array:
        """Alg 60. logits (B, N_V), each row's p = softmax(logits); config a
        formal_transformers.sampling_config.SamplingConfig (tau, top_k, top_p, min_p, order).

        Returns (B, n) int: n independent draws from each row's truncated distribution,
        seeded by seed.
        """
        raise NotImplementedError

    def sampling_distribution(self, logits: Array, config: Any) -> Array:
        """Optional extra of Alg 60: the distribution q it samples from, (B, N_V), zero
        outside the kept set. Declared, it lets ``sampling.kept_set`` compare the set exactly."""
        raise NotImplementedError

    def speculative_decoding(self, prompt: Array, target_params: Params, target_config: Any,
                             draft_params: Params, draft_config: Any, l_gen: int, k: int,
                             sampling: Any, seed: int) -> tuple[Array, list[Array]]:
        """Alg 61 with two D transformers (Alg 10): draft proposes k tokens, target verifies.

        prompt (B, l) int; sampling a SamplingConfig applied to both models' distributions, or
        None for greedy decoding. Returns (tokens (B, l + l_gen) int: the prompt followed by
        the new tokens; accepted: B int arrays, the number of draft tokens the target accepted
        at each of that row's verification steps, in order).
        """
        raise NotImplementedError

    # -- backward (Algorithms 17-23): gradients summed over the batch for parameters --------
    def token_embedding_backward(self, x: Array, params: Params, dY: Array) -> dict[str, Array]:
        """Alg 17. dY (B, l, d_e) = dloss/d(output). Returns {"W_e": (d_e, N_V)}."""
        raise NotImplementedError

    def positional_embedding_backward(self, l: int, params: Params, dY: Array
                                      ) -> dict[str, Array]:
        """Alg 18. dY (l, d_e). Returns {"W_p": (d_e, l_max)}."""
        raise NotImplementedError

    def attention_backward(self, X: Array, Z: Array, params: Params, dY: Array,
                           mask: Array | None = None) -> dict[str, Array]:
        """Alg 19. dY (B, l_x, d_out). Returns {"X", "Z", "W_q", "b_q", ..., "b_v"}."""
        raise NotImplementedError

    def mhattention_backward(self, X: Array, Z: Array, params: Params, dY: Array,
                             mask: Array | None = None) -> dict[str, Array]:
        """Alg 20. Returns {"X", "Z", "W_q", ..., "W_o", "b_o"}."""
        raise NotImplementedError

    def layer_norm_backward(self, X: Array, params: Params, eps: float, dY: Array
                            ) -> dict[str, Array]:
        """Alg 21. Returns {"X", "gamma", "beta"}."""
        raise NotImplementedError

    def mlp_backward(self, X: Array, params: Params, activation: str, dY: Array
                     ) -> dict[str, Array]:
        """Alg 22. Returns {"X", "W_mlp1", "b_mlp1", "W_mlp2", "b_mlp2"}."""
        raise NotImplementedError

    def unembedding_backward(self, X: Array, params: Params, y: Array) -> dict[str, Array]:
        """Alg 23: gradient of sum_{b,t} -log P[b, t, y[b, t]]. Returns {"X", "W_u"}."""
        raise NotImplementedError

    # -- modern primitives (spec: Algorithms 24-31) -------------------------------------------
    # constrain(alg, sizes) sees the conventions among the sizes (rope: "layout", "scaling",
    # "rest"; rmsnorm: "offset"; gated_mlp: "activation", "bias"; alibi: "form";
    # sinusoidal_embedding: "index_offset") and may fix them to the ones it declares.
    def sinusoidal_embedding(self, positions: Array, d_e: int, base: float, index_offset: int,
                             dtype: str) -> Array:
        """Alg 24. positions (l,) int64 >= 0. Returns (l, d_e) in ``dtype``."""
        raise NotImplementedError

    def alibi(self, positions_x: Array, positions_z: Array, H: int, form: str, dtype: str
              ) -> Array:
        """Alg 26. Query positions (l_x,), key positions (l_z,) int64; form "signed",
        "symmetric" or "key_position". Returns the bias (H, l_z, l_x) in ``dtype``, oriented
        like Mask[t_z, t_x]."""
        raise NotImplementedError

    def rope(self, X: Array, positions: Array, config: Any) -> Array:
        """Alg 25. X (B, H, l, d) queries or keys, positions (l,) int64 >= 0, config a
        formal_transformers.rope.Rope (layout, theta, fraction, scaling). Returns (B, H, l, d).
        """
        raise NotImplementedError

    def rmsnorm(self, X: Array, params: Params, eps: float, offset: bool) -> Array:
        """Alg 27 at every position. X (B, l, d_e); gamma (d_e,); gain gamma + offset.

        Returns (B, l, d_e).
        """
        raise NotImplementedError

    def gated_mlp(self, X: Array, params: Params, activation: str) -> Array:
        """Alg 28. X (B, l, d_e); W_gate, W_up (d_mlp, d_e), W_down (d_e, d_mlp), optional
        b_gate, b_up (d_mlp,), b_down (d_e,); activation "silu", "gelu" or "gelu_tanh".

        Returns (B, l, d_e).
        """
        raise NotImplementedError

    def rope_backward(self, X: Array, positions: Array, config: Any, dY: Array
                      ) -> dict[str, Array]:
        """Alg 29. dY (B, H, l, d). Returns {"X"}."""
        raise NotImplementedError

    def rmsnorm_backward(self, X: Array, params: Params, eps: float, offset: bool, dY: Array
                         ) -> dict[str, Array]:
        """Alg 30. Returns {"X", "gamma"} (gamma summed over the batch and positions)."""
        raise NotImplementedError

    def gated_mlp_backward(self, X: Array, params: Params, activation: str, dY: Array
                           ) -> dict[str, Array]:
        """Alg 31. Returns {"X"} and one gradient per parameter given (biases optional)."""
        raise NotImplementedError

    # -- extras --------------------------------------------------------------------------------
    # -- vision (spec: Algorithms 75-78) ------------------------------------------------------
    def patch_extraction(self, I: Array, patch_size: int) -> Array:
        """Alg 75. I (B, C, h, w) -> (B, N, C P^2): row n of image b is the spec's column n of
        X_p (patches row-major over the grid; channel, row, column inside a patch)."""
        raise NotImplementedError

    def patch_embedding(self, I: Array, params: Params, patch_size: int) -> Array:
        """Alg 76. I (B, C, h, w); params W_pe (d_e, C P^2), b_pe, e_cls (d_e,), and W_p
        (d_e, N + 1) unless positions are none. Returns X (B, N + 1, d_e), class token first."""
        raise NotImplementedError

    def vit_classifier(self, I: Array, params: Params, config: Any) -> Array:
        """Alg 77. I (B, C, h, w); canonical ViT parameters; config a ViTConfig. Returns
        p (B, n_classes), one distribution over the classes per image."""
        raise NotImplementedError

    def vit_classifier_backward(self, I: Array, params: Params, config: Any, dp: Array
                                ) -> dict[str, Array]:
        """Alg 78. Gradients of sum(p * dp), dp (B, n_classes): one entry per canonical
        parameter (summed over the batch) and "I" (B, C, h, w)."""
        raise NotImplementedError

    def count_parameters(self, algorithm: str, sizes: Any) -> int:
        """Number of scalar parameters of the implementation's ``algorithm`` module.

        ``sizes`` is the architecture config for ed/e/d_transformer, else a dict of sizes
        (mhattention: H, d_attn, d_mid, d_x, d_z, d_out; layer_norm: d_e; mlp: d_e, d_mlp;
        rmsnorm: d_e; gated_mlp: d_e, d_mlp, bias).
        """
        raise NotImplementedError

    def d_transformer_backward(self, x: Array, params: Params, config: Any, dP: Array
                               ) -> dict[str, Array]:
        """Vector-Jacobian product of Alg 10: gradients of sum(P * dP) for every canonical name."""
        raise NotImplementedError

    def d_transformer_padded(self, x: Array, real: Array, params: Params, config: Any
                             ) -> Array:
        """Alg 10 on a padded batch (spec: 10-d-transformer.md, "Padded batches").

        x (B, l) int, real (B, l) bool: True at a sequence's tokens, one block per row at its
        start (right padding) or end (left padding); a real token's position is the number of
        real tokens before it. Returns P (B, l, N_V); columns at padded positions are ignored.
        """
        raise NotImplementedError

    def e_transformer_padded(self, x: Array, real: Array, params: Params, config: Any
                             ) -> Array:
        """Alg 9 on a padded batch, like d_transformer_padded (9-e-transformer.md)."""
        raise NotImplementedError

    def ed_transformer_padded(self, z: Array, x: Array, z_real: Array, x_real: Array,
                              params: Params, config: Any) -> Array:
        """Alg 8 on a padded batch: the context z (B, l_z) and the primary x (B, l_x) each
        with its real-token mask, as in d_transformer_padded (8-ed-transformer.md)."""
        raise NotImplementedError

    def modern_d_transformer_cached(self, x: Array, params: Params, config: Any, prefill: int
                                    ) -> Array:
        """Alg 65 through the implementation's KV cache: the first ``prefill`` tokens of x
        (B, l) in one pass, then one token per step. Returns P (B, l, N_V), row t from the
        step that consumed token t."""
        raise NotImplementedError

    def e_transformer_backward(self, x: Array, params: Params, config: Any, dP: Array
                               ) -> dict[str, Array]:
        """Vector-Jacobian product of Alg 9, like d_transformer_backward."""
        raise NotImplementedError

    def ed_transformer_backward(self, z: Array, x: Array, params: Params, config: Any,
                                dP: Array) -> dict[str, Array]:
        """Vector-Jacobian product of Alg 8, like d_transformer_backward."""
        raise NotImplementedError


def validate_adapter(adapter: object) -> None:
    """Raise AdapterError naming the first attribute or method that breaks the protocol."""
    where = f"adapter {type(adapter).__module__}.{type(adapter).__qualname__}"
    name = getattr(adapter, "name", None)
    if not isinstance(name, str) or not name:
        raise AdapterError(f"{where}: attribute 'name' must be a non-empty string, got {name!r}")
    dtypes = getattr(adapter, "dtypes", None)
    if (not isinstance(dtypes, (tuple, list)) or not dtypes
            or any(d not in SUPPORTED_DTYPES for d in dtypes)):
        raise AdapterError(f"{where}: attribute 'dtypes' must be a non-empty tuple drawn from "
                           f"{SUPPORTED_DTYPES}, got {dtypes!r}")
    if "bfloat16" in dtypes:
        try:
            import ml_dtypes  # noqa: F401  (bfloat16 arrays are ml_dtypes' NumPy type)
        except ImportError:
            raise AdapterError(f"{where}: declares 'bfloat16', which needs the package "
                               "ml_dtypes (pip install ml_dtypes)") from None
    algorithms = getattr(adapter, "algorithms", None)
    if not isinstance(algorithms, (tuple, list)):
        raise AdapterError(f"{where}: attribute 'algorithms' must be a tuple of algorithm ids, "
                           f"got {algorithms!r}")
    for alg in algorithms:
        if alg not in ALGORITHMS + EXTRAS:
            raise AdapterError(f"{where}: declares unknown algorithm {alg!r}; known ids: "
                               f"{', '.join(ALGORITHMS + EXTRAS)}")
        method = getattr(adapter, alg, None)
        base = getattr(Adapter, alg)
        if not callable(method) or getattr(method, "__func__", None) is base:
            sig = base.__doc__.split(".")[0] if base.__doc__ else ""
            raise AdapterError(f"{where}: declares {alg!r} but has no method {alg}() "
                               f"(expected: {alg}{_signature(base)} -- {sig})")
    constrain = getattr(adapter, "constrain", None)
    if constrain is not None and not callable(constrain):
        raise AdapterError(f"{where}: attribute 'constrain' must be a method")
    _check_variants(where, getattr(adapter, "variants", None))


def _check_variants(where: str, variants: object) -> None:
    if variants is None:
        return
    if not isinstance(variants, Mapping):
        raise AdapterError(f"{where}: attribute 'variants' must be a dict of declared variants "
                           f"(known: {', '.join(VARIANTS)}), got {type(variants).__name__}")
    for name, value in variants.items():
        problem = variant_problem(name, value)
        if problem:
            raise AdapterError(f"{where}: {problem}")
    idx = variants.get("padding_idx")
    if idx is not None and idx >= MAX_PADDING_IDX:
        raise AdapterError(f"{where}: variant 'padding_idx' = {idx}: the suite draws "
                           f"vocabularies of up to {MAX_PADDING_IDX} tokens, so it must be < "
                           f"{MAX_PADDING_IDX} (map your padding id onto a small one)")


MAX_PADDING_IDX = 64


def declared_variants(adapter: object) -> dict[str, Any]:
    """Every variant with its value for ``adapter``: the declared ones, else the default."""
    return VARIANTS | dict(getattr(adapter, "variants", None) or {})


def _signature(fn: Any) -> str:
    params = list(inspect.signature(fn).parameters)[1:]
    return "(" + ", ".join(params) + ")"


def load_adapter(spec: str | None, mapping: str | None = None) -> object:
    """The adapter named on the command line: None or "torch" for the bundled torch
    implementation, "reference" for reference_numpy, "hf:DIR" for a transformers model saved
    with save_pretrained, or "module:Object" (a class, called with no arguments, or an
    instance). With ``mapping`` (``--map FILE.toml``), "module:Object" (or the file's
    ``factory``) is instead a factory of the user's nn.Module of the modern decoder, put behind
    the protocol by the mapping file (conformance/adapters/mapped.py). The current directory
    is importable, like ``python -m``.
    """
    if mapping is not None:
        from conformance.adapters.mapped import MappedModule, mapping_factory

        factory = spec if spec is not None else mapping_factory(mapping)
        if ":" not in factory:
            raise AdapterError(f"--map needs the nn.Module to build as module:Factory (--impl or "
                               f"the mapping's factory key), got {factory!r}")
        return _checked(MappedModule(_import_object(factory), mapping))
    if spec in (None, "torch"):
        from conformance.adapters.torch_adapter import TorchAdapter

        return _checked(TorchAdapter())
    if spec == "reference":
        from conformance.adapters.reference import ReferenceAdapter

        return _checked(ReferenceAdapter())
    if spec.startswith("hf:"):
        from conformance.adapters.hf_dir import HFDirAdapter

        return _checked(HFDirAdapter(spec[3:]))
    obj = _import_object(spec)
    if isinstance(obj, type):
        attr = spec.partition(":")[2]
        try:
            obj = obj()
        except Exception as exc:
            raise AdapterError(f"--impl {spec}: {attr}() raised {type(exc).__name__}: "
                               f"{' '.join(str(exc).split())} "
                               "(an adapter class must be constructible with no arguments)"
                               ) from None
    return _checked(obj)


def _import_object(spec: str) -> Any:
    """The object ``module:attr.path`` names (the current directory importable)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AdapterError(f"--impl must be 'torch', 'reference', 'hf:DIR' or 'module:Object', "
                           f"got {spec!r}")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a syntax error or a failing import inside the module, too
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise AdapterError(f"--impl {spec}: cannot import module {module_name!r} ({detail})"
                           ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise AdapterError(f"--impl {spec}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _checked(adapter: object) -> object:
    validate_adapter(adapter)
    return adapter
