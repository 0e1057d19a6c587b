"""GPT-2 (Hugging Face ``GPT2LMHeadModel``) <-> canonical D transformer (spec: Algorithm 10).

GPT-2 is the spec's D transformer with these stated variants, selected by config fields:
- activation "gelu_tanh" (GPT-2's ``gelu_new``), layer_norm_eps = ``layer_norm_epsilon`` (1e-5);
- its Conv1D layers compute x W + b, so their weights are the TRANSPOSE of the spec's W;
- c_attn fuses [W_q; W_k; W_v] (all heads, head h at rows h*d_head:(h+1)*d_head of each);
- the LM head is tied to the token embedding: W_u = W_e^T. Exporting parameters whose W_u
  differs from W_e^T gives a config with ``tie_word_embeddings=False``.
Features GPT-2 can switch on that the spec does not have (cross-attention, attention scaled by
the inverse layer index, unscaled attention) are refused with a ConfigError, never ignored.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from formal_transformers.canonical import check_parameters, parameter_shapes
from formal_transformers.errors import ConfigError, ParameterFileError
from formal_transformers.hyperparameters import DTransformerConfig

ACTIVATION_FROM_HF = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                      "gelu": "gelu", "relu": "relu"}
ACTIVATION_TO_HF = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}
_IGNORED = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers of older versions


def config_from_gpt2(hf_config) -> DTransformerConfig:
    """The D transformer config of a ``transformers.GPT2Config``; refuses unsupported variants."""
    c = hf_config
    refused = {"add_cross_attention": c.add_cross_attention,
               "scale_attn_by_inverse_layer_idx": c.scale_attn_by_inverse_layer_idx,
               "scale_attn_weights": not c.scale_attn_weights}
    bad = [k for k, v in refused.items() if v]
    if bad:
        raise ConfigError(f"GPT2Config {bad[0]} is set to a variant the spec does not have "
                          f"(Algorithm 10 scales scores by 1/sqrt(d_attn), has no cross-attention)")
    if c.activation_function not in ACTIVATION_FROM_HF:
        raise ConfigError(f"GPT2Config.activation_function must be one of "
                          f"{sorted(ACTIVATION_FROM_HF)}, got {c.activation_function!r}")
    return DTransformerConfig(
        N_V=c.vocab_size, l_max=c.n_positions, d_e=c.n_embd,
        d_mlp=c.n_inner if c.n_inner is not None else 4 * c.n_embd, L=c.n_layer, H=c.n_head,
        activation=ACTIVATION_FROM_HF[c.activation_function],
        layer_norm_eps=c.layer_norm_epsilon)


def gpt2_config(config: DTransformerConfig, tie_word_embeddings: bool = True):
    """A ``transformers.GPT2Config`` with the architecture of a D transformer config."""
    from transformers import GPT2Config

    if config.activation not in ACTIVATION_TO_HF:
        raise ConfigError(f"activation {config.activation!r} has no GPT-2 equivalent")
    return GPT2Config(vocab_size=config.N_V, n_positions=config.l_max, n_embd=config.d_e,
                      n_layer=config.L, n_head=config.H, n_inner=config.d_mlp,
                      activation_function=ACTIVATION_TO_HF[config.activation],
                      layer_norm_epsilon=config.layer_norm_eps,
                      tie_word_embeddings=tie_word_embeddings, resid_pdrop=0.0,
                      embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None)


def _pairs(l: int) -> list[tuple[str, str, bool]]:
    """(GPT-2 name, canonical name, transposed?) of layer l, c_attn excepted."""
    h, c = f"h.{l}", f"layers.{l}"
    return [(f"{h}.ln_1.weight", f"{c}.ln1.gamma", False),
            (f"{h}.ln_1.bias", f"{c}.ln1.beta", False),
            (f"{h}.attn.c_proj.weight", f"{c}.mha.W_o", True),
            (f"{h}.attn.c_proj.bias", f"{c}.mha.b_o", False),
            (f"{h}.ln_2.weight", f"{c}.ln2.gamma", False),
            (f"{h}.ln_2.bias", f"{c}.ln2.beta", False),
            (f"{h}.mlp.c_fc.weight", f"{c}.mlp.W_mlp1", True),
            (f"{h}.mlp.c_fc.bias", f"{c}.mlp.b_mlp1", False),
            (f"{h}.mlp.c_proj.weight", f"{c}.mlp.W_mlp2", True),
            (f"{h}.mlp.c_proj.bias", f"{c}.mlp.b_mlp2", False)]


def _global_pairs() -> list[tuple[str, str, bool]]:
    return [("wte.weight", "W_e", True), ("wpe.weight", "W_p", True),
            ("ln_f.weight", "ln_f.gamma", False), ("ln_f.bias", "ln_f.beta", False)]


def gpt2_to_canonical(state_dict: Mapping[str, torch.Tensor], hf_config
                      ) -> tuple[DTransformerConfig, dict[str, np.ndarray]]:
    """Canonical config and parameters of a GPT2LMHeadModel (or GPT2Model) state dict."""
    config = config_from_gpt2(hf_config)
    sd = {k.removeprefix("transformer."): v.detach().cpu().numpy()
          for k, v in state_dict.items() if not k.endswith(_IGNORED)}
    try:
        params = {canon: (sd[hf].T if t else sd[hf]).copy() for hf, canon, t in _global_pairs()}
        for l in range(config.L):
            params |= {canon: (sd[hf].T if t else sd[hf]).copy() for hf, canon, t in _pairs(l)}
            W = sd[f"h.{l}.attn.c_attn.weight"].T  # (3 d_e, d_e): rows [W_q; W_k; W_v]
            b = sd[f"h.{l}.attn.c_attn.bias"]  # (3 d_e,)
            for i, s in enumerate("qkv"):
                params[f"layers.{l}.mha.W_{s}"] = W[i * config.d_e:(i + 1) * config.d_e].reshape(
                    config.H, config.d_attn, config.d_e).copy()  # (H, d_attn, d_e)
                params[f"layers.{l}.mha.b_{s}"] = b[i * config.d_e:(i + 1) * config.d_e].reshape(
                    config.H, config.d_attn).copy()
    except KeyError as exc:
        raise ParameterFileError(f"GPT-2 state dict: missing entry {exc}") from None
    params["W_u"] = sd.get("lm_head.weight", sd["wte.weight"]).copy()  # tied: W_u = W_e^T
    params = {k: params[k] for k in parameter_shapes(config) if k in params}
    check_parameters(config, params, source="GPT-2 state dict")
    return config, params


def canonical_to_gpt2(config: DTransformerConfig, params: Mapping[str, np.ndarray]):
    """(GPT2Config, GPT2LMHeadModel state dict of float tensors) from canonical parameters."""
    check_parameters(config, params)
    if not config.bias:
        raise ConfigError("GPT-2 has every bias and layer-norm beta: canonical_to_gpt2 needs "
                          "a config with bias=True, got bias=False")
    # a declared tied_unembedding has no W_u entry (W_u = W_e^T, spec Algorithm 7 variant);
    # an untied set may still hold a W_u equal to W_e^T, which GPT-2 can tie as well
    tied = config.tied_unembedding or bool(
        np.array_equal(params["W_u"], params["W_e"].T))
    sd: dict[str, np.ndarray] = {}
    for hf, canon, t in _global_pairs():
        sd[f"transformer.{hf}"] = params[canon].T if t else params[canon]
    for l in range(config.L):
        for hf, canon, t in _pairs(l):
            sd[f"transformer.{hf}"] = params[canon].T if t else params[canon]
        m = f"layers.{l}.mha"
        W = np.concatenate([params[f"{m}.W_{s}"].reshape(config.d_e, config.d_e) for s in "qkv"])
        sd[f"transformer.h.{l}.attn.c_attn.weight"] = W.T  # Conv1D: (d_e, 3 d_e)
        sd[f"transformer.h.{l}.attn.c_attn.bias"] = np.concatenate(
            [params[f"{m}.b_{s}"].reshape(-1) for s in "qkv"])
    sd["lm_head.weight"] = params["W_e"].T if "W_u" not in params else params["W_u"]
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}
    return gpt2_config(config, tie_word_embeddings=tied), state
