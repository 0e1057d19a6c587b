"""The Llama family of Hugging Face ``transformers`` <-> canonical modern D transformer
(spec: Algorithm 65, spec/algorithms/65-modern-d-transformer.md).

Four architecture classes share one state-dict layout (``model.layers.{l}.self_attn.q_proj``,
``mlp.gate_proj``, ...) and differ in the conventions their configs select:

- ``LlamaForCausalLM``: RMSNorm, RoPE (half_split, default / linear / llama3 scaling), SwiGLU,
  GQA, ``attention_bias`` (q, k, v and o together) and ``mlp_bias``;
- ``MistralForCausalLM``: Llama plus one ``sliding_window`` for every layer;
- ``Qwen2ForCausalLM``: biases on q, k, v only (``attention_bias="qkv"``), windows per layer
  from ``layer_types``;
- ``Gemma2ForCausalLM``: RMSNorm with scale 1 + w (``norm_offset``), the extra norms after
  attention and after the MLP (``post_norms``: its ``post_attention_layernorm`` and
  ``post_feedforward_layernorm``; its ``pre_feedforward_layernorm`` is our ln2), embeddings
  scaled by sqrt(d_e), GeGLU (tanh), scores scaled by ``query_pre_attn_scalar^-1/2``,
  soft-capping of the scores and of the final logits, alternating sliding/full layers, tied
  unembedding.

Conventions of the Hugging Face code (transformers 5.x, read from its modeling files):
``rotate_half`` pairs feature i with i + d/2 (our ``Rope(layout="half_split")``); ``repeat_kv``
repeats every kv head H/G times in place, so query head h uses kv head floor(h G / H); the
sliding-window mask keeps key s for query t iff t - w < s <= t (w keys).

A config field the spec has no selection for is refused with ``UnsupportedVariantError``
naming it (dynamic/yarn RoPE, a partial rotary fraction, ``pretraining_tp`` > 1,
bidirectional attention, an unknown activation), never ignored. Two optional keys that
``transformers`` itself does not read are honoured as declarations: ``rope_layout`` (a
checkpoint whose rotary is interleaved says so) and, for Llama, ``sliding_window``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from formal_transformers.canonical import check_parameters, parameter_shapes
from formal_transformers.errors import ParameterFileError, UnsupportedVariantError
from formal_transformers.hyperparameters import ModernDTransformerConfig
from formal_transformers.rope import Rope, RopeScaling

FAMILIES = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Gemma2ForCausalLM")
ACTIVATION_FROM_HF = {"silu": "silu", "swish": "silu", "gelu_pytorch_tanh": "gelu_tanh",
                      "gelu_new": "gelu_tanh", "gelu": "gelu", "relu": "relu"}
ACTIVATION_TO_HF = {"silu": "silu", "gelu_tanh": "gelu_pytorch_tanh", "gelu": "gelu",
                    "relu": "relu"}


def _refuse(family: str, field: str, value: Any, why: str) -> UnsupportedVariantError:
    return UnsupportedVariantError(f"{family} config field {field}={value!r} is a variant the "
                                   f"spec does not have ({why})")


def _rope_fields(family: str, c) -> dict[str, Any]:
    rp = dict(getattr(c, "rope_parameters", None) or {})
    kind = rp.get("rope_type", "default")
    if kind not in ("default", "linear", "llama3"):
        raise _refuse(family, "rope_parameters.rope_type", kind,
                      "supported: default, linear, llama3")
    fraction = rp.get("partial_rotary_factor", getattr(c, "partial_rotary_factor", 1.0))
    if fraction not in (None, 1, 1.0):
        raise _refuse(family, "partial_rotary_factor", fraction,
                      "this family rotates every feature of a head")
    scaling = RopeScaling()
    if kind == "linear":
        scaling = RopeScaling("linear", factor=float(rp["factor"]))
    elif kind == "llama3":
        scaling = RopeScaling("llama3", factor=float(rp["factor"]),
                              low_freq_factor=float(rp["low_freq_factor"]),
                              high_freq_factor=float(rp["high_freq_factor"]),
                              original_max_position=int(rp["original_max_position_embeddings"]))
    return {"rope": Rope(layout=getattr(c, "rope_layout", "half_split"),
                         theta=float(rp.get("rope_theta", 10000.0)), scaling=scaling)}


def _windows(family: str, c) -> tuple[int | None, ...] | None:
    w = getattr(c, "sliding_window", None)
    if family in ("MistralForCausalLM", "LlamaForCausalLM"):
        return None if w is None else (int(w),) * c.num_hidden_layers
    types = getattr(c, "layer_types", None) or ["full_attention"] * c.num_hidden_layers
    bad = [t for t in types if t not in ("full_attention", "sliding_attention")]
    if bad:
        raise _refuse(family, "layer_types", bad[0], "full_attention or sliding_attention")
    windows = tuple(int(w) if t == "sliding_attention" and w is not None else None
                    for t in types)
    return None if all(v is None for v in windows) else windows


def config_from_hf(hf_config, family: str | None = None) -> ModernDTransformerConfig:
    """The modern D transformer config of a Llama/Mistral/Qwen2/Gemma2 config; refuses what
    the spec has no selection for (UnsupportedVariantError naming the field)."""
    c = hf_config
    family = family or (getattr(c, "architectures", None) or [None])[0] or _family_of(c)
    if family not in FAMILIES:
        raise UnsupportedVariantError(f"architecture {family!r} has no bridge; supported: "
                                      f"{', '.join(FAMILIES)}")
    gemma = family == "Gemma2ForCausalLM"
    act = getattr(c, "hidden_activation", None) if gemma else c.hidden_act
    if act not in ACTIVATION_FROM_HF:
        raise _refuse(family, "hidden_act", act, f"supported: {sorted(ACTIVATION_FROM_HF)}")
    if (getattr(c, "pretraining_tp", 1) or 1) > 1:
        raise _refuse(family, "pretraining_tp", c.pretraining_tp, "sliced projections")
    if getattr(c, "use_bidirectional_attention", None):
        raise _refuse(family, "use_bidirectional_attention", True, "the decoder is causal")
    if family == "Qwen2ForCausalLM":
        bias = "qkv"
    elif family == "MistralForCausalLM":
        bias = "none"
    else:
        bias = "all" if getattr(c, "attention_bias", False) else "none"
    fields: dict[str, Any] = dict(
        N_V=c.vocab_size, l_max=c.max_position_embeddings, d_e=c.hidden_size,
        d_mlp=c.intermediate_size, L=c.num_hidden_layers, H=c.num_attention_heads,
        G=c.num_key_value_heads or c.num_attention_heads, d_head=getattr(c, "head_dim", None),
        norm="rmsnorm", norm_eps=float(c.rms_norm_eps), positions="rope", mlp="gated",
        activation=ACTIVATION_FROM_HF[act], windows=_windows(family, c), attention_bias=bias,
        mlp_bias=bool(getattr(c, "mlp_bias", False)),
        tie_embeddings=bool(getattr(c, "tie_word_embeddings", False)))
    fields |= _rope_fields(family, c)
    if gemma:
        fields |= dict(norm_offset=True, post_norms=True, embedding_scale=True,
                       attn_softcap=c.attn_logit_softcapping,
                       final_softcap=c.final_logit_softcapping,
                       attn_scale=float(c.query_pre_attn_scalar) ** -0.5)
    return ModernDTransformerConfig(**fields)


def _family_of(c) -> str:
    return {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
            "qwen2": "Qwen2ForCausalLM", "gemma2": "Gemma2ForCausalLM"}.get(
        getattr(c, "model_type", ""), getattr(c, "model_type", "unknown"))


def hf_config(config: ModernDTransformerConfig, family: str):
    """A ``transformers`` config of ``family`` with the architecture of ``config``; refuses a
    selection the family cannot express (UnsupportedVariantError naming the field)."""
    import transformers

    if family not in FAMILIES:
        raise UnsupportedVariantError(f"family {family!r} has no bridge; supported: "
                                      f"{', '.join(FAMILIES)}")
    c = config
    if c.activation not in ACTIVATION_TO_HF:
        raise UnsupportedVariantError(f"activation {c.activation!r} has no {family} equivalent")
    s = c.rope.scaling
    rope: dict[str, Any] = {"rope_theta": c.rope.theta,
                            "rope_type": "default" if s.kind == "none" else s.kind}
    if s.kind != "none":
        rope["factor"] = s.factor
    if s.kind == "llama3":
        rope |= {"low_freq_factor": s.low_freq_factor, "high_freq_factor": s.high_freq_factor,
                 "original_max_position_embeddings": s.original_max_position}
    kw: dict[str, Any] = dict(
        vocab_size=c.N_V, max_position_embeddings=c.l_max, hidden_size=c.d_e,
        intermediate_size=c.d_mlp, num_hidden_layers=c.L, num_attention_heads=c.H,
        num_key_value_heads=c.G, head_dim=c.d_head, rms_norm_eps=c.norm_eps,
        rope_parameters=rope, tie_word_embeddings=c.tie_embeddings, attention_dropout=0.0,
        architectures=[family], bos_token_id=None, eos_token_id=None, pad_token_id=None)
    windows = c.windows or (None,) * c.L
    sizes = {w for w in windows if w is not None}
    if len(sizes) > 1:
        raise UnsupportedVariantError(f"{family} has one sliding_window for every windowed "
                                      f"layer, got windows={c.windows!r}")
    window = sizes.pop() if sizes else None
    layer_types = ["sliding_attention" if w is not None else "full_attention" for w in windows]
    if family == "Gemma2ForCausalLM":
        kw |= dict(hidden_activation=ACTIVATION_TO_HF[c.activation],
                   attention_bias=c.attention_bias == "all",
                   query_pre_attn_scalar=round(c.scale ** -2),
                   attn_logit_softcapping=c.attn_softcap,
                   final_logit_softcapping=c.final_softcap, sliding_window=window,
                   layer_types=layer_types)
        cls = transformers.Gemma2Config
    else:
        kw["hidden_act"] = ACTIVATION_TO_HF[c.activation]
        if family == "LlamaForCausalLM":
            kw |= dict(attention_bias=c.attention_bias == "all", mlp_bias=c.mlp_bias)
            cls = transformers.LlamaConfig
        elif family == "MistralForCausalLM":
            kw["sliding_window"] = window
            cls = transformers.MistralConfig
        else:
            kw |= dict(use_sliding_window=window is not None, sliding_window=window,
                       layer_types=layer_types, max_window_layers=0)
            cls = transformers.Qwen2Config
    out = cls(**kw)
    back = config_from_hf(out, family)
    if back != config:
        diff = next(f for f in config.to_dict() if config.to_dict()[f] != back.to_dict()[f])
        raise UnsupportedVariantError(
            f"{family} cannot express {diff}={getattr(config, diff)!r} (it would read back as "
            f"{getattr(back, diff)!r})")
    return out


def _norm_names(family: str) -> dict[str, str]:
    """Canonical norm name -> the family's module name inside ``model.layers.{l}``."""
    if family == "Gemma2ForCausalLM":
        return {"ln1": "input_layernorm", "ln1_post": "post_attention_layernorm",
                "ln2": "pre_feedforward_layernorm", "ln2_post": "post_feedforward_layernorm"}
    return {"ln1": "input_layernorm", "ln2": "post_attention_layernorm"}


def _layer_pairs(family: str, l: int) -> list[tuple[str, str]]:
    """(HF name, canonical name) of layer l; projections keep nn.Linear's orientation."""
    h, c = f"model.layers.{l}", f"layers.{l}"
    pairs = [(f"{h}.{hf}.weight", f"{c}.{ours}.gamma") for ours, hf in _norm_names(family).items()]
    for s in "qkvo":
        pairs += [(f"{h}.self_attn.{s}_proj.weight", f"{c}.mha.W_{s}"),
                  (f"{h}.self_attn.{s}_proj.bias", f"{c}.mha.b_{s}")]
    for s, ours in (("gate", "gate"), ("up", "up"), ("down", "down")):
        pairs += [(f"{h}.mlp.{s}_proj.weight", f"{c}.mlp.W_{ours}"),
                  (f"{h}.mlp.{s}_proj.bias", f"{c}.mlp.b_{ours}")]
    return pairs


def _pairs(config: ModernDTransformerConfig, family: str) -> list[tuple[str, str]]:
    """Every (HF name, canonical name) of ``config``'s canonical entries, in canonical order."""
    pairs = [("model.embed_tokens.weight", "W_e"), ("model.norm.weight", "ln_f.gamma"),
             ("lm_head.weight", "W_u")]
    for l in range(config.L):
        pairs += _layer_pairs(family, l)
    wanted = parameter_shapes(config)
    return [(hf, canon) for hf, canon in pairs if canon in wanted]


def hf_to_canonical(state_dict: Mapping[str, torch.Tensor], hf_cfg, family: str | None = None
                    ) -> tuple[ModernDTransformerConfig, dict[str, np.ndarray]]:
    """Canonical config and parameters of a Llama-family ``*ForCausalLM`` state dict."""
    config = config_from_hf(hf_cfg, family)
    family = family or (getattr(hf_cfg, "architectures", None) or [_family_of(hf_cfg)])[0]
    shapes = parameter_shapes(config)
    sd = {k: v.detach().cpu().to(torch.float64).numpy() if v.dtype == torch.bfloat16
          else v.detach().cpu().numpy() for k, v in state_dict.items()}
    params: dict[str, np.ndarray] = {}
    for hf, canon in _pairs(config, family):
        if hf not in sd:
            raise ParameterFileError(f"{family} state dict: missing entry '{hf}' "
                                     f"(canonical {canon}, shape {shapes[canon]})")
        value = sd[hf].T if canon == "W_e" else sd[hf]
        params[canon] = np.ascontiguousarray(value).reshape(shapes[canon]).copy()
    check_parameters(config, params, source=f"{family} state dict")
    return config, params


def canonical_to_hf(config: ModernDTransformerConfig, params: Mapping[str, np.ndarray],
                    family: str):
    """(transformers config, ``family`` state dict of tensors) from canonical parameters."""
    return hf_config(config, family), hf_state_dict(config, params, family)


def hf_state_dict(config: ModernDTransformerConfig, params: Mapping[str, np.ndarray],
                  family: str) -> dict[str, torch.Tensor]:
    """The ``family`` state dict (tensors sharing memory with contiguous arrays) of canonical
    parameters, name by name; no check that the family can express ``config``."""
    check_parameters(config, params)
    sd: dict[str, torch.Tensor] = {}
    for hf, canon in _pairs(config, family):
        value = np.ascontiguousarray(params[canon].T if canon == "W_e" else params[canon])
        if canon.rsplit(".", 1)[-1] in ("W_q", "W_k", "W_v"):
            value = value.reshape(-1, value.shape[-1])  # (H d_head, d_e): heads stacked on rows
        elif canon.rsplit(".", 1)[-1] in ("b_q", "b_k", "b_v"):
            value = value.reshape(-1)
        sd[hf] = torch.from_numpy(value)
    if config.tie_embeddings:
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    return sd


def build_hf_model(config: ModernDTransformerConfig, params: Mapping[str, np.ndarray],
                   family: str, dtype: torch.dtype = torch.float32):
    """A ``transformers`` model of ``family`` (eager attention, eval mode) holding ``params``."""
    import transformers

    cfg, sd = canonical_to_hf(config, params, family)
    cfg._attn_implementation = "eager"
    model = getattr(transformers, family)(cfg).to(dtype).eval()
    missing, unexpected = model.load_state_dict({k: v.to(dtype) for k, v in sd.items()},
                                                strict=False)
    missing = [k for k in missing if not (config.tie_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise ParameterFileError(f"{family}: state dict does not fit the model "
                                 f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model
