"""Checked calls into an adapter: every result is verified against the protocol's contract.

``Bound`` wraps an adapter and exposes the same methods; each one copies its inputs (so an
adapter that writes into them cannot corrupt a test), calls the adapter and checks the result's
type, shape and dtype. A violation -- or any exception the adapter raises -- becomes an
AdapterError naming the method, the inputs it got and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from conformance.adapter import BIAS_PRIMITIVES, EXTRAS, PADDING_PRIMITIVES, declared_variants
from conformance.assertions import as_dtype
from formal_transformers.errors import AdapterError

Shape = tuple[int, ...]
# configs' fields, and the primitives whose sizes carry ``bias`` or ``padding_idx``
VARIANT_ALGORITHMS = ("d_transformer", "e_transformer", "ed_transformer", *BIAS_PRIMITIVES,
                      *PADDING_PRIMITIVES)


def describe(value: Any) -> str:
    """A short description of an argument: arrays by dtype and shape, dicts by their keys."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{tuple(value.shape)}"
    if isinstance(value, Mapping):
        inner = ", ".join(f"{k}: {describe(v)}" for k, v in value.items())
        return "{" + (inner if len(inner) < 300 else inner[:300] + " ...") + "}"
    if type(value).__name__.endswith("Config"):
        return type(value).__name__
    return repr(value)


def _copy(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _plain(value: Any) -> Any:
    """A NumPy scalar returned by ``constrain`` as the Python number it stands for."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


class Bound:
    """An adapter behind checked calls (see the module docstring)."""

    def __init__(self, adapter: Any):
        self.adapter = adapter
        self.name: str = adapter.name
        self.dtypes: tuple[str, ...] = tuple(adapter.dtypes)
        self.variants: dict[str, Any] = declared_variants(adapter)

    def declares(self, name: str) -> bool:
        return name in tuple(self.adapter.algorithms)

    def constrain(self, algorithm: str, sizes: dict[str, Any]) -> dict[str, Any]:
        """The adapter's ``constrain`` of ``sizes``; an architecture config's fields (and a
        bias primitive's sizes) first get the declared variants, which ``constrain`` must
        leave as they are."""
        declared = ({k: v for k, v in self.variants.items() if k in sizes}
                    if algorithm in VARIANT_ALGORITHMS else {})
        sizes = dict(sizes) | declared
        fn = getattr(self.adapter, "constrain", None)
        if fn is None:
            return sizes
        out = self._call("constrain", algorithm, dict(sizes))
        if not isinstance(out, Mapping) or set(out) != set(sizes):
            raise AdapterError(f"{self.name}.constrain({algorithm!r}, ...) must return a dict "
                               f"with the keys {sorted(sizes)}, got {out!r}")
        changed = sorted(k for k in declared if out[k] != declared[k])
        if changed:
            raise AdapterError(f"{self.name}.constrain({algorithm!r}, ...) changed the declared "
                               f"variant(s) {changed}: declare them in 'variants' instead")
        return {k: _plain(v) for k, v in out.items()}

    # -- the checked call ---------------------------------------------------------------------
    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if method != "constrain" and method not in EXTRAS and not self.declares(method):
            raise AdapterError(f"{self.name}: {method}() called but not declared in 'algorithms'")
        try:
            return getattr(self.adapter, method)(*map(_copy, args),
                                                 **{k: _copy(v) for k, v in kwargs.items()})
        except AdapterError:
            raise
        except Exception as exc:
            shown = ", ".join([describe(a) for a in args]
                              + [f"{k}={describe(v)}" for k, v in kwargs.items()])
            raise AdapterError(f"{self.name}.{method}({shown}) raised {type(exc).__name__}: "
                               f"{exc}") from exc

    def _array(self, method: str, out: Any, shape: Shape, dtype: Any, what: str = "output"
               ) -> np.ndarray:
        try:
            arr = np.asarray(out)
        except Exception as exc:  # e.g. a CUDA tensor
            raise AdapterError(f"{self.name}.{method} returned {type(out).__name__} as its "
                               f"{what}, not convertible to a NumPy array ({exc})") from None
        if arr.shape != tuple(shape):
            raise AdapterError(f"{self.name}.{method} returned {what} of shape {arr.shape}, "
                               f"expected {tuple(shape)}")
        want = as_dtype(dtype)
        if arr.dtype != want:
            raise AdapterError(f"{self.name}.{method} returned {what} of dtype {arr.dtype}, "
                               f"expected {want}")
        return arr

    def _grads(self, method: str, out: Any, expected: Mapping[str, Shape], dtype: Any
               ) -> dict[str, np.ndarray]:
        if not isinstance(out, Mapping):
            raise AdapterError(f"{self.name}.{method} must return a dict of gradients keyed "
                               f"{sorted(expected)}, got {type(out).__name__}")
        if set(out) != set(expected):
            raise AdapterError(f"{self.name}.{method} returned gradients for {sorted(out)}, "
                               f"expected exactly {sorted(expected)}")
        return {k: self._array(method, out[k], shape, dtype, f"gradient '{k}'")
                for k, shape in expected.items()}

    # -- forward ------------------------------------------------------------------------------
    def token_embedding(self, x, params):
        out = self._call("token_embedding", x, params)
        return self._array("token_embedding", out, x.shape + params["W_e"].shape[:1],
                           params["W_e"].dtype)

    def positional_embedding(self, l, params):
        out = self._call("positional_embedding", l, params)
        return self._array("positional_embedding", out, (l, params["W_p"].shape[0]),
                           params["W_p"].dtype)

    def basic_attention(self, e, E_ctx, params):
        out = self._call("basic_attention", e, E_ctx, params)
        return self._array("basic_attention", out, (e.shape[0], params["W_v"].shape[0]), e.dtype)

    def attention(self, X, Z, params, mask=None):
        out = self._call("attention", X, Z, params, mask=mask)
        return self._array("attention", out, X.shape[:2] + params["W_v"].shape[:1], X.dtype)

    def mhattention(self, X, Z, params, mask=None):
        out = self._call("mhattention", X, Z, params, mask=mask)
        return self._array("mhattention", out, X.shape[:2] + params["W_o"].shape[:1], X.dtype)

    def layer_norm(self, X, params, eps):
        return self._array("layer_norm", self._call("layer_norm", X, params, eps), X.shape,
                           X.dtype)

    def unembedding(self, X, params):
        out = self._call("unembedding", X, params)
        return self._array("unembedding", out, X.shape[:2] + params["W_u"].shape[:1], X.dtype)

    def mlp(self, X, params, activation):
        return self._array("mlp", self._call("mlp", X, params, activation), X.shape, X.dtype)

    def sinusoidal_embedding(self, positions, d_e, base, index_offset, dtype):
        out = self._call("sinusoidal_embedding", positions, d_e, base, index_offset, dtype)
        return self._array("sinusoidal_embedding", out, (positions.shape[0], d_e), dtype)

    def alibi(self, positions_x, positions_z, H, form, dtype):
        out = self._call("alibi", positions_x, positions_z, H, form, dtype)
        return self._array("alibi", out, (H, positions_z.shape[0], positions_x.shape[0]), dtype)

    def rope(self, X, positions, config):
        return self._array("rope", self._call("rope", X, positions, config), X.shape, X.dtype)

    def rmsnorm(self, X, params, eps, offset):
        return self._array("rmsnorm", self._call("rmsnorm", X, params, eps, offset), X.shape,
                           X.dtype)

    def gated_mlp(self, X, params, activation):
        return self._array("gated_mlp", self._call("gated_mlp", X, params, activation),
                           X.shape, X.dtype)
    def gq_attention(self, X, Z, params, mask=None):
        out = self._call("gq_attention", X, Z, params, mask=mask)
        return self._array("gq_attention", out, X.shape[:2] + params["W_o"].shape[:1], X.dtype)

    def _mask(self, method, l, *args):
        arr = np.asarray(self._call(method, l, *args))
        if arr.shape != (l, l) or arr.dtype != np.bool_:
            raise AdapterError(f"{self.name}.{method} returned {describe(arr)}, expected a bool "
                               f"array of shape {(l, l)}")
        return arr

    def sliding_window_mask(self, l, w):
        return self._mask("sliding_window_mask", l, w)

    def block_sparse_mask(self, l, b, c):
        return self._mask("block_sparse_mask", l, b, c)

    def qk_norm(self, X, params, H, axis, eps):
        return self._array("qk_norm", self._call("qk_norm", X, params, H, axis, eps), X.shape,
                           X.dtype)

    def softcap(self, X, Z, params, c, mask=None):
        out = self._call("softcap", X, Z, params, c, mask=mask)
        return self._array("softcap", out, X.shape[:2] + params["W_v"].shape[:1], X.dtype)

    def online_softmax_attention(self, X, Z, params, block, mask=None):
        out = self._call("online_softmax_attention", X, Z, params, block, mask=mask)
        return self._array("online_softmax_attention", out,
                           X.shape[:2] + params["W_v"].shape[:1], X.dtype)

    def patch_extraction(self, I, patch_size):
        B, C, h, w = I.shape
        N = (h // patch_size) * (w // patch_size)
        return self._array("patch_extraction", self._call("patch_extraction", I, patch_size),
                           (B, N, C * patch_size ** 2), I.dtype)

    def patch_embedding(self, I, params, patch_size):
        B, _, h, w = I.shape
        N = (h // patch_size) * (w // patch_size)
        out = self._call("patch_embedding", I, params, patch_size)
        return self._array("patch_embedding", out, (B, N + 1, params["W_pe"].shape[0]), I.dtype)

    def vit_classifier(self, I, params, config):
        out = self._call("vit_classifier", I, params, config)
        return self._array("vit_classifier", out, (I.shape[0], config.n_classes), I.dtype)

    def _probs(self, method, x, params, config, *args):
        out = self._call(method, *args, params, config)
        return self._array(method, out, x.shape + (config.N_V,), params["W_e"].dtype)

    def ed_transformer(self, z, x, params, config):
        return self._probs("ed_transformer", x, params, config, z, x)

    def e_transformer(self, x, params, config):
        return self._probs("e_transformer", x, params, config, x)

    def d_transformer(self, x, params, config):
        return self._probs("d_transformer", x, params, config, x)

    def d_transformer_padded(self, x, real, params, config):
        """P (B, l, N_V) of a padded batch (only the real positions are meaningful)."""
        return self._probs("d_transformer_padded", x, params, config, x, real)

    def e_transformer_padded(self, x, real, params, config):
        return self._probs("e_transformer_padded", x, params, config, x, real)

    def ed_transformer_padded(self, z, x, z_real, x_real, params, config):
        return self._probs("ed_transformer_padded", x, params, config, z, x, z_real, x_real)

    def modern_d_transformer(self, x, params, config):
        out = self._call("modern_d_transformer", x, params, config)
        return self._array("modern_d_transformer", out, x.shape + (config.N_V,),
                           params["W_e"].dtype)

    def modern_d_transformer_cached(self, x, params, config, prefill):
        out = self._call("modern_d_transformer_cached", x, params, config, prefill)
        return self._array("modern_d_transformer_cached", out, x.shape + (config.N_V,),
                           params["W_e"].dtype)

    # -- training -----------------------------------------------------------------------------
    def _step(self, method, params, out):
        if not isinstance(out, tuple) or len(out) != 2:
            raise AdapterError(f"{self.name}.{method} must return (loss, updated params), "
                               f"got {type(out).__name__}")
        loss, new = out
        if not np.ndim(loss) == 0:
            raise AdapterError(f"{self.name}.{method} returned a loss of shape "
                               f"{np.shape(loss)}, expected a scalar")
        dtype = next(iter(params.values())).dtype
        shapes = {k: v.shape for k, v in params.items()}
        return float(loss), self._grads(method, new, shapes, dtype)

    def ed_training(self, z, x, params, config, eta):
        return self._step("ed_training", params,
                          self._call("ed_training", z, x, params, config, eta))

    def e_training(self, x, masked, params, config, eta, mask_token):
        return self._step("e_training", params,
                          self._call("e_training", x, masked, params, config, eta, mask_token))

    def d_training_padded(self, x, real, params, config, eta):
        return self._step("d_training_padded", params,
                          self._call("d_training_padded", x, real, params, config, eta))

    def d_training(self, x, params, config, eta):
        return self._step("d_training", params, self._call("d_training", x, params, config, eta))

    def e_training_padded(self, x, masked, real, params, config, eta, mask_token):
        return self._step("e_training_padded", params, self._call(
            "e_training_padded", x, masked, real, params, config, eta, mask_token))

    def ed_training_padded(self, z, x, z_real, x_real, params, config, eta):
        return self._step("ed_training_padded", params, self._call(
            "ed_training_padded", z, x, z_real, x_real, params, config, eta))

    # -- inference ----------------------------------------------------------------------------
    def _tokens(self, method, out, shape, N_V, what="output"):
        arr = np.asarray(out)
        if arr.shape != tuple(shape) or not np.issubdtype(arr.dtype, np.integer):
            raise AdapterError(f"{self.name}.{method} returned {what} {describe(arr)}, "
                               f"expected an integer array of shape {tuple(shape)}")
        if arr.size and (arr.min() < 0 or arr.max() >= N_V):
            raise AdapterError(f"{self.name}.{method} returned token ids outside [0, N_V - 1] = "
                               f"[0, {N_V - 1}] in its {what}")
        return arr.astype(np.int64)

    def d_inference(self, prompt, params, config, l_gen, tau, seed):
        out = self._call("d_inference", prompt, params, config, l_gen, tau, seed)
        B, l = prompt.shape
        return self._tokens("d_inference", out, (B, l + l_gen), config.N_V)

    def d_decode(self, prompt, params, config, l_gen, real=None, chunk=None, state=None):
        """(new tokens (B, l_gen), log-probabilities (B, l_gen, N_V), state), checked."""
        out = self._call("d_decode", prompt, params, config, l_gen, real=real, chunk=chunk,
                         state=state)
        if not isinstance(out, tuple) or len(out) != 3:
            raise AdapterError(f"{self.name}.d_decode must return (tokens, log_probs, state), "
                               f"got {describe(out)}")
        B = prompt.shape[0] if prompt is not None else np.shape(out[0])[0]
        tokens = self._tokens("d_decode", out[0], (B, l_gen), config.N_V)
        log_p = self._array("d_decode", out[1], (B, l_gen, config.N_V), params["W_e"].dtype,
                            "log_probs")
        return tokens, log_p, out[2]

    def ed_decode(self, z, params, config, l_gen, bos_token, z_real=None):
        """(new tokens (B, l_gen), log-probabilities (B, l_gen, N_V)), checked; ``z_real`` is
        passed only when given (padded contexts)."""
        padded = {} if z_real is None else {"z_real": z_real}
        out = self._call("ed_decode", z, params, config, l_gen, bos_token, **padded)
        if not isinstance(out, tuple) or len(out) != 2:
            raise AdapterError(f"{self.name}.ed_decode must return (tokens, log_probs), got "
                               f"{describe(out)}")
        B = z.shape[0]
        return (self._tokens("ed_decode", out[0], (B, l_gen), config.N_V),
                self._array("ed_decode", out[1], (B, l_gen, config.N_V), params["W_e"].dtype,
                            "log_probs"))

    def ed_inference(self, z, params, config, tau, seed, bos_token, eos_token, l_max_gen):
        out = self._call("ed_inference", z, params, config, tau, seed, bos_token, eos_token,
                         l_max_gen)
        if not isinstance(out, (list, tuple)) or len(out) != z.shape[0]:
            raise AdapterError(f"{self.name}.ed_inference must return a list of {z.shape[0]} "
                               f"token arrays (one per row of z), got {describe(out)}")
        rows = []
        for b, row in enumerate(out):
            arr = np.asarray(row)
            if arr.ndim != 1 or not 2 <= arr.size <= l_max_gen + 1:
                raise AdapterError(f"{self.name}.ed_inference row {b} has shape {arr.shape}: "
                                   f"expected 1-D, bos plus 1..l_max_gen={l_max_gen} tokens")
            rows.append(self._tokens("ed_inference", arr, arr.shape, config.N_V, f"row {b}"))
        return rows

    # -- decoding conventions (Algorithms 60-61) ----------------------------------------------
    def sampling(self, logits, config, n, seed):
        out = self._call("sampling", logits, config, n, seed)
        return self._tokens("sampling", out, (logits.shape[0], n), logits.shape[1])

    def sampling_distribution(self, logits, config):
        out = self._call("sampling_distribution", logits, config)
        return self._array("sampling_distribution", out, logits.shape, logits.dtype)

    def speculative_decoding(self, prompt, target_params, target_config, draft_params,
                             draft_config, l_gen, k, sampling, seed):
        method = "speculative_decoding"
        out = self._call(method, prompt, target_params, target_config, draft_params,
                         draft_config, l_gen, k, sampling, seed)
        B, l = prompt.shape
        if not isinstance(out, tuple) or len(out) != 2 or len(out[1]) != B:
            raise AdapterError(f"{self.name}.{method} must return (tokens, accepted) with one "
                               f"array of accepted counts per row, got {describe(out)}")
        tokens = self._tokens(method, out[0], (B, l + l_gen), target_config.N_V)
        accepted = []
        for b, row in enumerate(out[1]):
            arr = np.asarray(row)
            if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or arr.size < 1 \
                    or arr.min() < 0 or arr.max() > k:
                raise AdapterError(f"{self.name}.{method}: accepted counts of row {b} must be a "
                                   f"non-empty 1-D integer array in [0, k={k}], got "
                                   f"{describe(arr)}")
            accepted.append(arr.astype(np.int64))
        return tokens, accepted

    # -- backward and extras ------------------------------------------------------------------
    def backward(self, method, args, expected, dtype, **kwargs):
        """Call a backward method and check its gradient dict against ``expected`` shapes."""
        return self._grads(method, self._call(method, *args, **kwargs), expected, dtype)

    def count_parameters(self, algorithm, sizes):
        out = self._call("count_parameters", algorithm, sizes)
        if isinstance(out, bool) or not isinstance(out, (int, np.integer)):
            raise AdapterError(f"{self.name}.count_parameters({algorithm!r}, ...) must return "
                               f"an int, got {out!r}")
        return int(out)
