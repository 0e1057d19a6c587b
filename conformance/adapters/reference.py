"""reference_numpy behind the adapter protocol (``formal-transformers verify --impl reference``).

The reference works on one sequence at a time in the spec's column layout; this adapter loops
over the batch and transposes: the adapter's ``X[b]`` (l, d) is the reference's ``X`` (d, l).
It is also the oracle of every ``reference.*`` property, so this file is the one place where
the protocol's batched layout meets the spec's columns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

import reference_numpy as ref
from conformance.adapter import ATTENTION_VARIANTS, Adapter
from conformance.adapters.vision import VISION, ReferenceVision
from formal_transformers.canonical import fold_gradients, full_parameters, parameter_count
from reference_numpy import (
    architectures,
    architectures_backward,
    inference,
    sampling,
    speculative,
    training,
)

Array = np.ndarray
ARCH_FORWARD = {"d_transformer": architectures.d_transformer,
                "e_transformer": architectures.e_transformer,
                "ed_transformer": architectures.ed_transformer}
ARCH_BACKWARD = {"d_transformer": architectures_backward.d_transformer_backward,
                 "e_transformer": architectures_backward.e_transformer_backward,
                 "ed_transformer": architectures_backward.ed_transformer_backward}


def _rows(fn: Callable[[int], Array], B: int) -> Array:
    return np.stack([fn(b) for b in range(B)])


def _sum_grads(per_row: list[dict[str, Array]], stacked: tuple[str, ...],
               rename: Mapping[str, str] | None = None) -> dict[str, Array]:
    """Stack the per-sequence gradients of inputs (transposed back to (l, d)); sum the rest."""
    rename = rename or {}
    out = {}
    for key in per_row[0]:
        name = rename.get(key, key)
        if key in stacked:
            out[name] = np.stack([g[key].T for g in per_row])
        else:
            out[name] = np.sum([g[key] for g in per_row], axis=0)
    return out


def _softmax(logits: Array) -> Array:
    """p = softmax(logits) of one row, float64 (the protocol passes Algorithm 60 logits)."""
    e = np.exp(logits.astype(np.float64) - np.max(logits))
    return e / np.sum(e)


class ReferenceAdapter(ReferenceVision, Adapter):
    """reference_numpy, float64, one sequence at a time."""

    name = "reference_numpy"
    dtypes = ("float64",)
    algorithms = ("token_embedding", "positional_embedding", "basic_attention", "attention",
                  "mhattention", "layer_norm", "unembedding", "mlp", "ed_transformer",
                  "e_transformer", "d_transformer", "ed_training", "e_training", "d_training",
                  "d_inference", "ed_inference", "sampling", "sampling_distribution",
                  "speculative_decoding", "token_embedding_backward",
                  "positional_embedding_backward",
                  "attention_backward", "mhattention_backward", "layer_norm_backward",
                  "mlp_backward", "unembedding_backward", "count_parameters",
                  "d_transformer_backward", "e_transformer_backward", "ed_transformer_backward",
                  "d_transformer_padded", "e_transformer_padded", "ed_transformer_padded",
                  "d_decode", "ed_decode", "d_training_padded",
                  "rope", "rmsnorm", "gated_mlp", "rope_backward", "rmsnorm_backward",
                  "gated_mlp_backward", "sinusoidal_embedding", "alibi", *ATTENTION_VARIANTS,
                  *VISION, "modern_d_transformer", "modern_d_transformer_cached",
                  "modern_d_transformer_backward")

    # -- forward ------------------------------------------------------------------------------
    def token_embedding(self, x, params):
        return _rows(lambda b: np.stack([ref.token_embedding(int(v), params["W_e"])
                                         for v in x[b]]), x.shape[0])

    def positional_embedding(self, l, params):
        return np.stack([ref.positional_embedding(t, params["W_p"]) for t in range(l)])

    def basic_attention(self, e, E_ctx, params):
        return _rows(lambda b: ref.basic_attention(e[b], E_ctx[b].T, **params), e.shape[0])

    def attention(self, X, Z, params, mask=None):
        return _rows(lambda b: ref.attention(X[b].T, Z[b].T, **params, Mask=mask).T, X.shape[0])

    def mhattention(self, X, Z, params, mask=None):
        return _rows(lambda b: ref.mh_attention(X[b].T, Z[b].T, **params, Mask=mask).T,
                     X.shape[0])

    def layer_norm(self, X, params, eps):
        B, l, _ = X.shape
        return _rows(lambda b: np.stack([ref.layer_norm(X[b, t], params["gamma"],
                                                        params["beta"], eps)
                                         for t in range(l)]), B)

    def unembedding(self, X, params):
        B, l, _ = X.shape
        return _rows(lambda b: np.stack([ref.unembedding(X[b, t], params["W_u"])
                                         for t in range(l)]), B)

    def mlp(self, X, params, activation):
        return _rows(lambda b: ref.mlp(X[b].T, **params, activation=activation).T, X.shape[0])

    def sinusoidal_embedding(self, positions, d_e, base, index_offset, dtype):
        return ref.sinusoidal_embedding(positions, d_e, base, index_offset).T.astype(dtype)

    def alibi(self, positions_x, positions_z, H, form, dtype):
        return ref.alibi(positions_x, positions_z, H, form).astype(dtype)

    def rope(self, X, positions, config):
        B, H = X.shape[:2]
        return _rows(lambda b: np.stack([ref.rope(X[b, h].T, positions, config).T
                                         for h in range(H)]), B)

    def rmsnorm(self, X, params, eps, offset):
        B, l, _ = X.shape
        return _rows(lambda b: np.stack([ref.rmsnorm(X[b, t], params["gamma"], eps, offset)
                                         for t in range(l)]), B)

    def gated_mlp(self, X, params, activation):
        return _rows(lambda b: ref.gated_mlp(X[b].T, **params, activation=activation).T,
                     X.shape[0])

    # -- modern attention primitives (Algorithms 40-49) --------------------------------------
    def gq_attention(self, X, Z, params, mask=None):
        return _rows(lambda b: ref.gq_attention(X[b].T, Z[b].T, **params, Mask=mask).T,
                     X.shape[0])

    def sliding_window_mask(self, l, w):
        return ref.sliding_window_mask(l, w)

    def block_sparse_mask(self, l, b, c):
        return ref.block_sparse_mask(l, b, c)

    def qk_norm(self, X, params, H, axis, eps):
        return _rows(lambda b: ref.qk_norm(X[b].T, params["gamma"], H, axis, eps).T,
                     X.shape[0])

    def softcap(self, X, Z, params, c, mask=None):
        return _rows(lambda b: ref.softcap_attention(X[b].T, Z[b].T, **params, c=c,
                                                     Mask=mask).T, X.shape[0])

    def online_softmax_attention(self, X, Z, params, block, mask=None):
        return _rows(lambda b: ref.online_softmax_attention(X[b].T, Z[b].T, **params, Mask=mask,
                                                            block=block).T, X.shape[0])

    def online_softmax_attention_backward(self, X, Z, params, block, dY, mask=None):
        return self._columns_backward(ref.online_softmax_attention,
                                      ref.online_softmax_attention_backward, X, (X, Z), dY,
                                      ("X", "Z"), **params, Mask=mask, block=block)

    def gq_attention_backward(self, X, Z, params, dY, mask=None):
        return self._columns_backward(ref.gq_attention, ref.gq_attention_backward, X, (X, Z),
                                      dY, ("X", "Z"), **params, Mask=mask)

    def softcap_backward(self, X, Z, params, c, dY, mask=None):
        return self._columns_backward(ref.softcap_attention, ref.softcap_backward, X, (X, Z),
                                      dY, ("X", "Z"), **params, c=c, Mask=mask)

    def qk_norm_backward(self, X, params, H, axis, eps, dY):
        grads = []
        for b in range(X.shape[0]):
            cache: dict = {}
            ref.qk_norm(X[b].T, params["gamma"], H, axis, eps, cache=cache)
            grads.append(ref.qk_norm_backward(dY[b].T, cache))
        return _sum_grads(grads, ("Q",), rename={"Q": "X"})

    def ed_transformer(self, z, x, params, config):
        return _rows(lambda b: architectures.ed_transformer(z[b], x[b], params, config).T,
                     x.shape[0])

    def e_transformer(self, x, params, config):
        return _rows(lambda b: architectures.e_transformer(x[b], params, config).T, x.shape[0])

    def d_transformer(self, x, params, config):
        return _rows(lambda b: architectures.d_transformer(x[b], params, config).T, x.shape[0])

    def _padded(self, arch, x, real, params, config):
        """The spec's definition of a padded batch: each row's real block computed alone
        (positions from 0), at its place; padded columns get the uniform distribution."""
        P = np.full(x.shape + (config.N_V,), 1.0 / config.N_V)
        for b in range(x.shape[0]):
            idx = np.flatnonzero(real[b])
            P[b, idx] = ARCH_FORWARD[arch](x[b, idx], params, config).T
        return P

    def d_transformer_padded(self, x, real, params, config):
        return self._padded("d_transformer", x, real, params, config)

    def e_transformer_padded(self, x, real, params, config):
        return self._padded("e_transformer", x, real, params, config)

    def ed_transformer_padded(self, z, x, z_real, x_real, params, config):
        P = np.full(x.shape + (config.N_V,), 1.0 / config.N_V)
        for b in range(x.shape[0]):
            idx = np.flatnonzero(x_real[b])
            P[b, idx] = architectures.ed_transformer(z[b][z_real[b]], x[b, idx], params,
                                                     config).T
        return P

    # -- training: one epoch over the batch, one gradient step per sequence ------------------
    def _epoch(self, step, rows, params, eta):
        total, theta = 0.0, dict(params)
        for row in rows:
            loss, theta = step(*row, theta, eta)
            total += loss
        return total, theta

    def ed_training(self, z, x, params, config, eta):
        return self._epoch(lambda z_n, x_n, th, e: training.ed_training_step(z_n, x_n, th,
                                                                             config, e),
                           zip(z, x, strict=True), params, eta)

    def e_training(self, x, masked, params, config, eta, mask_token):
        return self._epoch(lambda x_n, m_n, th, e: training.e_training_step(
            x_n, m_n, th, config, e, mask_token), zip(x, masked, strict=True), params, eta)

    def d_training(self, x, params, config, eta):
        return self._epoch(lambda x_n, th, e: training.d_training_step(x_n, th, config, e),
                           ((x_n,) for x_n in x), params, eta)

    def d_training_padded(self, x, real, params, config, eta):
        """The spec's definition: each row's step on its real tokens alone."""
        return self._epoch(lambda x_n, th, e: training.d_training_step(x_n, th, config, e),
                           ((x_n[r_n],) for x_n, r_n in zip(x, real, strict=True)), params, eta)

    # -- inference: one generator for the whole batch, rows in order ------------------------
    def d_inference(self, prompt, params, config, l_gen, tau, seed):
        rng = np.random.default_rng(seed)
        return _rows(lambda b: np.concatenate([prompt[b], inference.d_inference(
            prompt[b], params, config, l_gen, tau, rng)]), prompt.shape[0])

    def d_decode(self, prompt, params, config, l_gen, real=None, chunk=None, state=None):
        """Greedy Algorithm 14 by full recomputation (there is no cache: ``chunk`` changes
        nothing); a padded row is its real tokens alone; the state is the sequences so far."""
        if state is None:
            keep = np.ones(prompt.shape, bool) if real is None else real
            state = [row[k] for row, k in zip(prompt, keep, strict=True)]
        seqs, tokens, log_p = [np.array(s) for s in state], [], []
        for _ in range(l_gen):
            P = np.stack([architectures.d_transformer(s, params, config)[:, -1] for s in seqs])
            with np.errstate(divide="ignore"):
                log_p.append(np.log(P))
            tokens.append(P.argmax(axis=1))
            seqs = [np.append(s, y) for s, y in zip(seqs, tokens[-1], strict=True)]
        return np.stack(tokens, axis=1), np.stack(log_p, axis=1), seqs

    def ed_decode(self, z, params, config, l_gen, bos_token):
        """Greedy Algorithm 15 by full recomputation, l_gen tokens after bos_token."""
        tokens, log_p = [], []
        for z_b in z:
            x_hat, rows = [int(bos_token)], []
            for _ in range(l_gen):
                p = architectures.ed_transformer(z_b, x_hat, params, config)[:, -1]
                with np.errstate(divide="ignore"):
                    rows.append(np.log(p))
                x_hat.append(int(p.argmax()))
            tokens.append(x_hat[1:])
            log_p.append(np.stack(rows))
        return np.array(tokens, dtype=np.int64), np.stack(log_p)

    def ed_inference(self, z, params, config, tau, seed, bos_token, eos_token, l_max_gen):
        rng = np.random.default_rng(seed)
        return [inference.ed_inference(z_b, params, config, tau, rng, bos_token, eos_token,
                                       l_max_gen) for z_b in z]

    # -- backward: forward with a cache, then the hand-written backward -----------------------
    # -- Algorithm 60: q once per row, then n draws of its line 8 from one generator --------
    def sampling_distribution(self, logits, config):
        return _rows(lambda b: sampling.truncated_distribution(_softmax(logits[b]), config),
                     logits.shape[0])

    def sampling(self, logits, config, n, seed):
        rng = np.random.default_rng(seed)
        Q = self.sampling_distribution(logits, config)
        return np.stack([rng.choice(len(q), size=n, p=q) for q in Q])

    # -- Algorithm 61: one generator for the whole batch, rows in order ---------------------
    def speculative_decoding(self, prompt, target_params, target_config, draft_params,
                             draft_config, l_gen, k, sampling, seed):
        rng = np.random.default_rng(seed)
        target = speculative.memoised(speculative.d_transformer_model(target_params, target_config))
        draft = speculative.memoised(speculative.d_transformer_model(draft_params, draft_config))
        l_max = min(target_config.l_max, draft_config.l_max)
        rows, accepted = [], []
        for x in prompt:
            y, A = speculative.speculative_decoding(x, target, draft, l_gen, k, sampling, rng,
                                                    l_max)
            rows.append(np.concatenate([x, y]))
            accepted.append(A)
        return np.stack(rows), accepted

    def token_embedding_backward(self, x, params, dY):
        grads = []
        for b, t in np.ndindex(*x.shape):
            cache: dict = {}
            ref.token_embedding(int(x[b, t]), params["W_e"], cache=cache)
            grads.append(ref.token_embedding_backward(dY[b, t], cache))
        return _sum_grads(grads, ())

    def positional_embedding_backward(self, l, params, dY):
        grads = []
        for t in range(l):
            cache: dict = {}
            ref.positional_embedding(t, params["W_p"], cache=cache)
            grads.append(ref.positional_embedding_backward(dY[t], cache))
        return _sum_grads(grads, ())

    def _columns_backward(self, forward, backward, X, args, dY, stacked, **kwargs):
        grads = []
        for b in range(X.shape[0]):
            cache: dict = {}
            forward(*(a[b].T for a in args), **kwargs, cache=cache)
            grads.append(backward(dY[b].T, cache))
        return _sum_grads(grads, stacked)

    def attention_backward(self, X, Z, params, dY, mask=None):
        return self._columns_backward(ref.attention, ref.attention_backward, X, (X, Z), dY,
                                      ("X", "Z"), **params, Mask=mask)

    def mhattention_backward(self, X, Z, params, dY, mask=None):
        return self._columns_backward(ref.mh_attention, ref.mh_attention_backward, X, (X, Z),
                                      dY, ("X", "Z"), **params, Mask=mask)

    def mlp_backward(self, X, params, activation, dY):
        return self._columns_backward(ref.mlp, ref.mlp_backward, X, (X,), dY, ("X",),
                                      **params, activation=activation)

    def layer_norm_backward(self, X, params, eps, dY):
        B, l, _ = X.shape
        per_column, dX = [], np.zeros_like(X)
        for b, t in np.ndindex(B, l):
            cache: dict = {}
            ref.layer_norm(X[b, t], params["gamma"], params["beta"], eps, cache=cache)
            g = ref.layer_norm_backward(dY[b, t], cache)
            dX[b, t] = g.pop("e")
            per_column.append(g)
        return {"X": dX} | _sum_grads(per_column, ())

    def unembedding_backward(self, X, params, y):
        from reference_numpy.unembedding import unembedding_loss

        B, l, _ = X.shape
        per_column, dX = [], np.zeros_like(X)
        for b, t in np.ndindex(B, l):
            cache: dict = {}
            unembedding_loss(X[b, t], params["W_u"], int(y[b, t]), cache=cache)
            g = ref.unembedding_backward(1.0, cache)
            dX[b, t] = g.pop("e")
            per_column.append(g)
        return {"X": dX} | _sum_grads(per_column, ())

    def rope_backward(self, X, positions, config, dY):
        dX = np.zeros_like(X)
        for b, h in np.ndindex(*X.shape[:2]):
            cache: dict = {}
            ref.rope(X[b, h].T, positions, config, cache=cache)
            dX[b, h] = ref.rope_backward(dY[b, h].T, cache)["X"].T
        return {"X": dX}

    def rmsnorm_backward(self, X, params, eps, offset, dY):
        per_column, dX = [], np.zeros_like(X)
        for b, t in np.ndindex(*X.shape[:2]):
            cache: dict = {}
            ref.rmsnorm(X[b, t], params["gamma"], eps, offset, cache=cache)
            g = ref.rmsnorm_backward(dY[b, t], cache)
            dX[b, t] = g.pop("e")
            per_column.append(g)
        return {"X": dX} | _sum_grads(per_column, ())

    def gated_mlp_backward(self, X, params, activation, dY):
        return self._columns_backward(ref.gated_mlp, ref.gated_mlp_backward, X, (X,), dY,
                                      ("X",), **params, activation=activation)

    # -- extras -------------------------------------------------------------------------------
    def modern_d_transformer(self, x, params, config):
        return _rows(lambda b: ref.modern_d_transformer(x[b], params, config).T, len(x))

    def modern_d_transformer_cached(self, x, params, config, prefill):
        """Without a cache: Algorithm 65 recomputed on every prefix, as Algorithm 14 decodes
        (the prefill's rows from one pass over the first ``prefill`` tokens)."""
        def row(b):
            P = [ref.modern_d_transformer(x[b, :prefill], params, config).T]
            P += [ref.modern_d_transformer(x[b, :t + 1], params, config).T[-1:]
                  for t in range(prefill, x.shape[1])]
            return np.concatenate(P)
        return _rows(row, len(x))

    def modern_d_transformer_backward(self, x, params, config, dP):
        """Algorithm 66 row by row on the forward's cache, summed over the batch."""
        grads: dict[str, Array] = {}
        for b in range(len(x)):
            cache: dict = {}
            ref.modern_d_transformer(x[b], params, config, cache)
            for k, v in ref.modern_d_transformer_backward(dP[b].T, cache, config).items():
                grads[k] = grads.get(k, 0) + v
        return grads

    def count_parameters(self, algorithm, sizes):
        """The reference takes exactly the canonical parameters (or the primitive's own)."""
        if algorithm in ARCH_FORWARD or algorithm in ("vit_classifier", "modern_d_transformer"):
            return parameter_count(sizes)
        from conformance.strategies import attention_shapes, mlp_shapes
        from conformance.strategies_modern import gated_mlp_shapes

        shapes = {"mhattention": lambda s: attention_shapes(s, multi_head=True),
                  "layer_norm": lambda s: {"gamma": (s["d_e"],), "beta": (s["d_e"],)},
                  "mlp": mlp_shapes, "rmsnorm": lambda s: {"gamma": (s["d_e"],)},
                  "gated_mlp": gated_mlp_shapes}[algorithm](sizes)
        return sum(int(np.prod(s)) for s in shapes.values())

    def _vjp(self, arch: str, tokens: tuple[Array, ...], params, config, dP):
        """Gradients of sum(P * dP): through the softmax to the final representation X_out,
        then the reference's chained backward (architectures_backward), folded onto the
        declared variant's own parameters (canonical.fold_gradients)."""
        per_row = []
        W_u = full_parameters(config, params)["W_u"]
        for b in range(dP.shape[0]):
            cache: dict = {}
            P = ARCH_FORWARD[arch](*(t[b] for t in tokens), params, config, cache).T  # (l, N_V)
            d_logits = P * (dP[b] - np.sum(P * dP[b], axis=1, keepdims=True))  # (l, N_V)
            X_out = cache["X_out"]  # (d_e, l)
            grads = ARCH_BACKWARD[arch](W_u.T @ d_logits.T, cache, config)
            grads["W_u"] = d_logits.T @ X_out.T
            per_row.append(fold_gradients(config, grads))
        return {k: np.sum([g[k] for g in per_row], axis=0) for k in params}

    def d_transformer_backward(self, x, params, config, dP):
        return self._vjp("d_transformer", (x,), params, config, dP)

    def e_transformer_backward(self, x, params, config, dP):
        return self._vjp("e_transformer", (x,), params, config, dP)

    def ed_transformer_backward(self, z, x, params, config, dP):
        return self._vjp("ed_transformer", (z, x), params, config, dP)

