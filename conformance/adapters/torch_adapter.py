"""The bundled torch implementation behind the adapter protocol (the default ``verify`` target).

Every method calls torch_impl's public API -- the functions of ``torch_impl.REGISTRY``, the
models, ``train_step`` and the inference functions -- on tensors that share memory with the
NumPy inputs, and hands NumPy arrays back. Layout and parameter names are already the
protocol's: (batch, length, features) and the spec's orientation.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from einops import rearrange

import torch_impl
from conformance.adapter import ATTENTION_VARIANTS, Adapter
from conformance.adapters.vision import VISION, TorchVision
from torch_impl import training
from torch_impl.blocks import MLP, LayerNorm, MultiHeadAttention
from torch_impl.gated_mlp import GatedMLP
from torch_impl.inference import decode_steps, ed_decode_steps
from torch_impl.models import MODEL_CLASSES, model_class
from torch_impl.modern_decoder import ModernDTransformer
from torch_impl.rmsnorm import RMSNorm
from torch_impl.sampling import sample, truncated_distribution
from torch_impl.speculative import speculative_decoding

Array = np.ndarray
LOSSES = {"d_training": training.d_losses, "ed_training": training.ed_losses}


def _t(a):
    """A tensor view of a NumPy array (None passes through; bfloat16 through its bits)."""
    if a is None:
        return None
    a = np.ascontiguousarray(a)
    if a.dtype.name == "bfloat16":  # ml_dtypes.bfloat16, which torch.from_numpy cannot read
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _tensors(params: Mapping[str, Array]) -> dict[str, torch.Tensor]:
    return {k: _t(v) for k, v in params.items()}


def _np(t: torch.Tensor) -> Array:
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def _grads(grads: Mapping[str, torch.Tensor]) -> dict[str, Array]:
    return {k: _np(v) for k, v in grads.items()}


class TorchAdapter(TorchVision, Adapter):
    """torch_impl on the CPU, float32 and float64.

    ``threads`` (default 1) is passed to ``torch.set_num_threads`` on construction: the suite's
    tensors are tiny, and waking a pool of intra-op threads for each of them costs 10-50x the
    arithmetic on a busy machine. Pass ``threads=None`` to leave torch's setting alone.
    """

    def __init__(self, threads: int | None = 1):
        if threads is not None:
            torch.set_num_threads(threads)

    name = "torch_impl"
    dtypes = ("float32", "float64")
    algorithms = ("token_embedding", "positional_embedding", "basic_attention", "attention",
                  "mhattention", "layer_norm", "unembedding", "mlp", "ed_transformer",
                  "e_transformer", "d_transformer", "ed_training", "e_training", "d_training",
                  "d_inference", "ed_inference", "sampling", "sampling_distribution",
                  "speculative_decoding", "token_embedding_backward",
                  "positional_embedding_backward", "attention_backward", "mhattention_backward",
                  "layer_norm_backward", "mlp_backward", "unembedding_backward",
                  "count_parameters", "d_transformer_backward", "e_transformer_backward",
                  "ed_transformer_backward", "d_transformer_padded", "e_transformer_padded",
                  "ed_transformer_padded", "d_decode", "ed_decode", "d_training_padded",
                  "rope", "rmsnorm", "gated_mlp", "rope_backward",
                  "rmsnorm_backward", "gated_mlp_backward", "sinusoidal_embedding", "alibi",
                  *ATTENTION_VARIANTS, *VISION, "modern_d_transformer",
                  "modern_d_transformer_cached", "modern_d_transformer_backward")

    # -- forward ------------------------------------------------------------------------------
    def token_embedding(self, x, params):
        return _np(torch_impl.token_embedding(_t(x), _t(params["W_e"])))

    def positional_embedding(self, l, params):
        return _np(torch_impl.positional_embedding(l, _t(params["W_p"])))

    def basic_attention(self, e, E_ctx, params):
        return _np(torch_impl.basic_attention(_t(e), _t(E_ctx), **_tensors(params)))

    def attention(self, X, Z, params, mask=None):
        return _np(torch_impl.attention(_t(X), _t(Z), **_tensors(params), mask=_t(mask)))

    def mhattention(self, X, Z, params, mask=None):
        return _np(torch_impl.mh_attention(_t(X), _t(Z), **_tensors(params), mask=_t(mask)))

    def layer_norm(self, X, params, eps):
        return _np(torch_impl.layer_norm(_t(X), _t(params["gamma"]), _t(params["beta"]), eps))

    def unembedding(self, X, params):
        return _np(torch_impl.unembedding(_t(X), _t(params["W_u"])))

    def mlp(self, X, params, activation):
        return _np(torch_impl.mlp(_t(X), **_tensors(params), activation=activation))

    def sinusoidal_embedding(self, positions, d_e, base, index_offset, dtype):
        return _np(torch_impl.sinusoidal_embedding(_t(positions), d_e, base, index_offset,
                                                   getattr(torch, dtype)))

    def alibi(self, positions_x, positions_z, H, form, dtype):
        bias = torch_impl.alibi(_t(positions_x), _t(positions_z), H, getattr(torch, dtype),
                                form)
        return _np(bias.transpose(1, 2))  # (H, l_x, l_z) -> the protocol's (H, l_z, l_x)

    def rope(self, X, positions, config):
        return _np(torch_impl.rope(_t(X), _t(positions), config))

    def rmsnorm(self, X, params, eps, offset):
        return _np(torch_impl.rmsnorm(_t(X), _t(params["gamma"]), eps, offset))

    def gated_mlp(self, X, params, activation):
        return _np(torch_impl.gated_mlp(_t(X), **_tensors(params), activation=activation))
    # -- modern attention primitives (Algorithms 40-49) --------------------------------------
    def gq_attention(self, X, Z, params, mask=None):
        return _np(torch_impl.gq_attention(_t(X), _t(Z), **_tensors(params), mask=_t(mask)))

    def sliding_window_mask(self, l, w):
        return _np(torch_impl.sliding_window_mask(l, w))

    def block_sparse_mask(self, l, b, c):
        return _np(torch_impl.block_sparse_mask(l, b, c))

    def qk_norm(self, X, params, H, axis, eps):
        q = rearrange(_t(X), "b l (h d) -> b h l d", h=H)  # (B, H, l, d_attn)
        out = torch_impl.qk_norm(q, _t(params["gamma"]), axis, eps)
        return _np(rearrange(out, "b h l d -> b l (h d)"))

    def softcap(self, X, Z, params, c, mask=None):
        return _np(torch_impl.softcap_attention(_t(X), _t(Z), **_tensors(params), c=c,
                                                mask=_t(mask)))

    def online_softmax_attention(self, X, Z, params, block, mask=None):
        return _np(torch_impl.online_softmax_attention(_t(X), _t(Z), **_tensors(params),
                                                       block=block, mask=_t(mask)))

    def online_softmax_attention_backward(self, X, Z, params, block, dY, mask=None):
        return _grads(torch_impl.online_softmax_attention_backward(
            _t(dY), _t(X), _t(Z), **_tensors(params), block=block, mask=_t(mask)))

    def gq_attention_backward(self, X, Z, params, dY, mask=None):
        return _grads(torch_impl.gq_attention_backward(_t(dY), _t(X), _t(Z), **_tensors(params),
                                                       mask=_t(mask)))

    def softcap_backward(self, X, Z, params, c, dY, mask=None):
        return _grads(torch_impl.softcap_backward(_t(dY), _t(X), _t(Z), **_tensors(params), c=c,
                                                  mask=_t(mask)))

    def qk_norm_backward(self, X, params, H, axis, eps, dY):
        dq, q = (rearrange(_t(a), "b l (h d) -> b h l d", h=H) for a in (dY, X))
        g = torch_impl.qk_norm_backward(dq, q, _t(params["gamma"]), axis, eps)
        return {"X": _np(rearrange(g["q"], "b h l d -> b l (h d)")), "gamma": _np(g["gamma"])}

    def ed_transformer(self, z, x, params, config):
        return _np(torch_impl.ed_transformer(_t(z), _t(x), params, config))

    def e_transformer(self, x, params, config):
        return _np(torch_impl.e_transformer(_t(x), params, config))

    def d_transformer(self, x, params, config):
        return _np(torch_impl.d_transformer(_t(x), params, config))

    def _padded(self, x, real, params, config):
        """P of a padded batch: the model with its ``attention_mask`` (torch_impl.padding)."""
        model = MODEL_CLASSES[type(config)].from_canonical(config, params)
        with torch.no_grad():
            return _np(torch.softmax(model(_t(x), attention_mask=_t(real)), dim=-1))

    def d_transformer_padded(self, x, real, params, config):
        return self._padded(x, real, params, config)

    def e_transformer_padded(self, x, real, params, config):
        return self._padded(x, real, params, config)

    def ed_transformer_padded(self, z, x, z_real, x_real, params, config):
        model = MODEL_CLASSES[type(config)].from_canonical(config, params)
        with torch.no_grad():
            return _np(torch.softmax(model(_t(z), _t(x), _t(x_real), _t(z_real)), dim=-1))

    def modern_d_transformer(self, x, params, config):
        return _np(torch_impl.modern_d_transformer(_t(x), _tensors(params), config))

    def modern_d_transformer_cached(self, x, params, config, prefill):
        """Prefill, then one token per step through ModernDTransformer's ring-buffer cache."""
        model = ModernDTransformer.from_canonical(config, _tensors(params))
        cache, tokens = model.new_cache(x.shape[0]), _t(x)
        with torch.no_grad():
            logits = [model(tokens[:, :prefill], cache)]
            logits += [model(tokens[:, t:t + 1], cache) for t in range(prefill, x.shape[1])]
        return _np(torch.softmax(torch.cat(logits, dim=1), dim=-1))

    def modern_d_transformer_backward(self, x, params, config, dP):
        return _grads(torch_impl.modern_d_transformer_backward(_t(dP), _t(x), _tensors(params),
                                                               config))

    # -- training: Algorithms 11-13, one epoch over the rows (train_step on one row each) -----
    def model_for(self, config, params):
        """The torch_impl model of ``config`` holding ``params``, the modern decoder too (the
        hook through which a mutant trains its own model)."""
        return model_class(config).from_canonical(config, params)

    def _epoch(self, config, params, eta, loss_fn, rows):
        model = self.model_for(config, params)
        total = 0.0
        for row in rows:
            total += training.train_step(model, eta, loss_fn, row)
        return total, model.to_canonical()

    def d_training(self, x, params, config, eta):
        return self._epoch(config, params, eta, training.d_losses,
                           [(_t(x[b:b + 1]),) for b in range(len(x))])

    def d_training_padded(self, x, real, params, config, eta):
        return self._epoch(config, params, eta, training.d_losses,
                           [(_t(x[b:b + 1]), _t(real[b:b + 1])) for b in range(len(x))])

    def ed_training(self, z, x, params, config, eta):
        return self._epoch(config, params, eta, training.ed_losses,
                           [(_t(z[b:b + 1]), _t(x[b:b + 1])) for b in range(len(x))])

    def e_training(self, x, masked, params, config, eta, mask_token):
        def loss_fn(model, batch):
            return training.e_losses(model, batch, mask_token)
        return self._epoch(config, params, eta, loss_fn,
                           [(_t(x[b:b + 1]), _t(masked[b:b + 1])) for b in range(len(x))])

    # -- inference: Algorithms 14-15 with the KV cache -----------------------------------------
    def d_inference(self, prompt, params, config, l_gen, tau, seed):
        model = MODEL_CLASSES[type(config)].from_canonical(config, params)
        generator = torch.Generator().manual_seed(seed)
        y = torch_impl.d_inference(model, _t(prompt), l_gen, tau, generator)
        return np.concatenate([prompt, _np(y)], axis=1)

    def d_decode(self, prompt, params, config, l_gen, real=None, chunk=None, state=None):
        """torch_impl.inference.decode_steps; the state carries the model and its cache."""
        if state is None:
            model = MODEL_CLASSES[type(config)].from_canonical(config, params)
            y, log_p, st = decode_steps(model, _t(prompt), l_gen, _t(real), chunk)
        else:
            model, previous = state
            y, log_p, st = decode_steps(model, None, l_gen, state=previous)
        return _np(y), _np(log_p), (model, st)

    def ed_decode(self, z, params, config, l_gen, bos_token):
        model = MODEL_CLASSES[type(config)].from_canonical(config, params)
        y, log_p = ed_decode_steps(model, _t(z), l_gen, bos_token)
        return _np(y), _np(log_p)

    def ed_inference(self, z, params, config, tau, seed, bos_token, eos_token, l_max_gen):
        model = MODEL_CLASSES[type(config)].from_canonical(config, params)
        generator = torch.Generator().manual_seed(seed)
        rows = torch_impl.ed_inference(model, _t(z), tau, generator, bos_token, eos_token,
                                       l_max_gen)
        return [_np(r) for r in rows]

    # -- Algorithm 60: n rows per logits row through torch_impl.sampling.sample --------------
    def sampling(self, logits, config, n, seed):
        generator = torch.Generator().manual_seed(seed)
        rows = _t(logits).repeat_interleave(n, dim=0)  # (B * n, N_V)
        return _np(sample(rows, config, generator)).reshape(len(logits), n)

    def sampling_distribution(self, logits, config):
        return _np(truncated_distribution(_t(logits), config).to(_t(logits).dtype))

    # -- Algorithm 61: both models with their KV caches ---------------------------------------
    def speculative_decoding(self, prompt, target_params, target_config, draft_params,
                             draft_config, l_gen, k, sampling, seed):
        target = MODEL_CLASSES[type(target_config)].from_canonical(target_config, target_params)
        draft = MODEL_CLASSES[type(draft_config)].from_canonical(draft_config, draft_params)
        generator = torch.Generator().manual_seed(seed)
        y, accepted = self.speculative(target, draft, _t(prompt), l_gen, k, sampling, generator)
        return np.concatenate([prompt, _np(y)], axis=1), [np.array(A) for A in accepted]

    def speculative(self, target, draft, prompt, l_gen, k, sampling, generator):
        """torch_impl's Algorithm 61 (a hook for the mutants of conformance/mutants)."""
        return speculative_decoding(target, draft, prompt, l_gen, k, sampling, generator)

    # -- backward: torch_impl.backward (autograd through the fast forward) --------------------
    def token_embedding_backward(self, x, params, dY):
        return _grads(torch_impl.token_embedding_backward(_t(dY), _t(x), _t(params["W_e"])))

    def positional_embedding_backward(self, l, params, dY):
        return _grads(torch_impl.positional_embedding_backward(_t(dY), l, _t(params["W_p"])))

    def attention_backward(self, X, Z, params, dY, mask=None):
        return _grads(torch_impl.attention_backward(_t(dY), _t(X), _t(Z), **_tensors(params),
                                                    mask=_t(mask)))

    def mhattention_backward(self, X, Z, params, dY, mask=None):
        return _grads(torch_impl.mhattention_backward(_t(dY), _t(X), _t(Z), **_tensors(params),
                                                      mask=_t(mask)))

    def layer_norm_backward(self, X, params, eps, dY):
        return _grads(torch_impl.layer_norm_backward(_t(dY), _t(X), _t(params["gamma"]),
                                                     _t(params["beta"]), eps))

    def mlp_backward(self, X, params, activation, dY):
        return _grads(torch_impl.mlp_backward(_t(dY), _t(X), **_tensors(params),
                                              activation=activation))

    def unembedding_backward(self, X, params, y):
        ones = torch.ones(y.shape, dtype=_t(X).dtype)
        return _grads(torch_impl.unembedding_backward(ones, _t(X), _t(params["W_u"]), _t(y)))

    def rope_backward(self, X, positions, config, dY):
        return _grads(torch_impl.rope_backward(_t(dY), _t(X), _t(positions), config))

    def rmsnorm_backward(self, X, params, eps, offset, dY):
        return _grads(torch_impl.rmsnorm_backward(_t(dY), _t(X), _t(params["gamma"]), eps,
                                                  offset))

    def gated_mlp_backward(self, X, params, activation, dY):
        return _grads(torch_impl.gated_mlp_backward(_t(dY), _t(X), **_tensors(params),
                                                    activation=activation))

    # -- extras -------------------------------------------------------------------------------
    def count_parameters(self, algorithm, sizes):
        """Parameters of the nn.Modules torch_impl builds for ``algorithm``."""
        if algorithm in ("d_transformer", "e_transformer", "ed_transformer",
                         "modern_d_transformer", "vit_classifier"):
            module = model_class(sizes)(sizes)
        elif algorithm == "mhattention":
            module = MultiHeadAttention(sizes["d_x"], sizes["H"])
        elif algorithm == "layer_norm":
            module = LayerNorm(sizes["d_e"])
        elif algorithm == "rmsnorm":
            module = RMSNorm(sizes["d_e"])
        elif algorithm == "gated_mlp":
            module = GatedMLP(sizes["d_e"], sizes["d_mlp"], bias=sizes["bias"])
        else:
            module = MLP(sizes["d_e"], sizes["d_mlp"], "relu")
        return sum(p.numel() for p in module.parameters())

    def _vjp(self, config, params, dP, *tokens):
        """Gradients of sum(P * dP) for every canonical name, by autograd through the model."""
        model = MODEL_CLASSES[type(config)].from_canonical(config, params)
        P = torch.softmax(model(*map(_t, tokens)), dim=-1)
        P.backward(_t(dP))
        return model.canonical_grads()

    def d_transformer_backward(self, x, params, config, dP):
        return self._vjp(config, params, dP, x)

    def e_transformer_backward(self, x, params, config, dP):
        return self._vjp(config, params, dP, x)

    def ed_transformer_backward(self, z, x, params, config, dP):
        return self._vjp(config, params, dP, z, x)
