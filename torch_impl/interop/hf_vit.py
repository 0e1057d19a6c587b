"""ViT (Hugging Face ``ViTForImageClassification``) <-> canonical ViT classifier (spec:
Algorithms 75-77).

The transformers ViT is the spec's ViT classifier with these correspondences (names of
transformers 5.x):
- ``patch_embeddings.projection`` is a Conv2d with kernel = stride = P: its weight
  (d_e, C, P, P) reshaped to (d_e, C P^2) is W_pe (property patches.convolution_identity);
- ``cls_token`` (1, 1, d_e) is e_cls and ``position_embeddings`` (1, N + 1, d_e) is W_p^T;
- each layer is pre-LN (``layernorm_before`` = ln1, ``layernorm_after`` = ln2), q/k/v/o
  projections with biases (head h at rows h*d_head:(h+1)*d_head), ``mlp.fc1``/``fc2``;
- ``vit.layernorm`` is ln_f (applied to every token; the head reads token 0, the class token:
  the same as the spec's layer norm of the class token alone), ``classifier`` is the head.
Variants the spec does not have are refused with a ConfigError naming the field: q/k/v
without biases (``qkv_bias=False``), non-square or mismatched image sizes, activations other
than GELU (exact or tanh) and ReLU. The pooler of ``ViTModel`` is not part of the classifier.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from formal_transformers.canonical import check_parameters, parameter_shapes
from formal_transformers.errors import ConfigError, ParameterFileError
from formal_transformers.hyperparameters import ViTConfig

ACTIVATION_FROM_HF = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                      "relu": "relu"}
ACTIVATION_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "relu": "relu"}


def _side(value, name: str) -> int:
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise ConfigError(f"ViTConfig.{name} = {value!r}: only square sizes are bridged")
        value = value[0]
    return int(value)


def config_from_vit(hf_config) -> ViTConfig:
    """The canonical ViTConfig of a ``transformers.ViTConfig``; refuses unsupported variants."""
    c = hf_config
    if not c.qkv_bias:
        raise ConfigError("transformers ViTConfig.qkv_bias = False: the spec's attention "
                          "(Algorithm 5) has query, key and value biases")
    if c.hidden_act not in ACTIVATION_FROM_HF:
        raise ConfigError(f"transformers ViTConfig.hidden_act must be one of "
                          f"{sorted(ACTIVATION_FROM_HF)}, got {c.hidden_act!r}")
    side = _side(c.image_size, "image_size")
    return ViTConfig(C=c.num_channels, height=side, width=side,
                     patch_size=_side(c.patch_size, "patch_size"), n_classes=c.num_labels,
                     d_e=c.hidden_size, d_mlp=c.intermediate_size, L=c.num_hidden_layers,
                     H=c.num_attention_heads, positions="learned",
                     activation=ACTIVATION_FROM_HF[c.hidden_act],
                     layer_norm_eps=c.layer_norm_eps)


def vit_config(config: ViTConfig):
    """A ``transformers.ViTConfig`` with the architecture of a canonical ViTConfig."""
    from transformers import ViTConfig as HFViTConfig

    if config.height != config.width:
        raise ConfigError(f"transformers' ViT takes square images, got {config.height} x "
                          f"{config.width}")
    if config.positions != "learned":
        raise ConfigError("transformers' ViT always adds learned positional embeddings; "
                          "positions = 'none' has no equivalent")
    return HFViTConfig(image_size=config.height, patch_size=config.patch_size,
                       num_channels=config.C, hidden_size=config.d_e,
                       num_hidden_layers=config.L, num_attention_heads=config.H,
                       intermediate_size=config.d_mlp,
                       hidden_act=ACTIVATION_TO_HF[config.activation],
                       layer_norm_eps=config.layer_norm_eps, num_labels=config.n_classes,
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                       qkv_bias=True)


def _pairs(l: int) -> list[tuple[str, str]]:
    """(transformers name, canonical name) of the direct copies of layer l."""
    h, c = f"vit.layers.{l}", f"layers.{l}"
    return [(f"{h}.layernorm_before.weight", f"{c}.ln1.gamma"),
            (f"{h}.layernorm_before.bias", f"{c}.ln1.beta"),
            (f"{h}.attention.o_proj.weight", f"{c}.mha.W_o"),
            (f"{h}.attention.o_proj.bias", f"{c}.mha.b_o"),
            (f"{h}.layernorm_after.weight", f"{c}.ln2.gamma"),
            (f"{h}.layernorm_after.bias", f"{c}.ln2.beta"),
            (f"{h}.mlp.fc1.weight", f"{c}.mlp.W_mlp1"), (f"{h}.mlp.fc1.bias", f"{c}.mlp.b_mlp1"),
            (f"{h}.mlp.fc2.weight", f"{c}.mlp.W_mlp2"), (f"{h}.mlp.fc2.bias", f"{c}.mlp.b_mlp2")]


GLOBAL = [("vit.embeddings.patch_embeddings.projection.bias", "b_pe"),
          ("vit.layernorm.weight", "ln_f.gamma"), ("vit.layernorm.bias", "ln_f.beta"),
          ("classifier.weight", "W_head"), ("classifier.bias", "b_head")]


def vit_to_canonical(state_dict: Mapping[str, torch.Tensor], hf_config
                     ) -> tuple[ViTConfig, dict[str, np.ndarray]]:
    """Canonical config and parameters of a ViTForImageClassification state dict."""
    config = config_from_vit(hf_config)
    sd = {k: v.detach().cpu().float().numpy() if v.dtype == torch.bfloat16
          else v.detach().cpu().numpy() for k, v in state_dict.items()}
    H, d_head = config.H, config.d_e // config.H
    try:
        e = "vit.embeddings."
        params = {"W_pe": sd[e + "patch_embeddings.projection.weight"].reshape(config.d_e, -1),
                  "e_cls": sd[e + "cls_token"].reshape(config.d_e),
                  "W_p": sd[e + "position_embeddings"][0].T}
        params |= {canon: sd[hf] for hf, canon in GLOBAL}
        for l in range(config.L):
            params |= {canon: sd[hf] for hf, canon in _pairs(l)}
            for s in "qkv":
                W = sd[f"vit.layers.{l}.attention.{s}_proj.weight"]  # (H d_head, d_e)
                b = sd[f"vit.layers.{l}.attention.{s}_proj.bias"]
                params[f"layers.{l}.mha.W_{s}"] = W.reshape(H, d_head, config.d_e)
                params[f"layers.{l}.mha.b_{s}"] = b.reshape(H, d_head)
    except KeyError as exc:
        raise ParameterFileError(f"ViTForImageClassification state dict lacks {exc}") from None
    params = {k: np.ascontiguousarray(v).copy() for k, v in params.items()}
    params = {name: params[name] for name in parameter_shapes(config)}
    check_parameters(config, params, "ViTForImageClassification state dict")
    return config, params


def canonical_to_vit(config: ViTConfig, params: Mapping[str, np.ndarray]):
    """(transformers ViTConfig, ViTForImageClassification state dict) from canonical params."""
    check_parameters(config, params)
    hf_config = vit_config(config)
    e = "vit.embeddings."
    P = config.patch_size
    sd = {e + "patch_embeddings.projection.weight": params["W_pe"].reshape(
              config.d_e, config.C, P, P),
          e + "cls_token": params["e_cls"].reshape(1, 1, config.d_e),
          e + "position_embeddings": params["W_p"].T[None]}
    sd |= {hf: params[canon] for hf, canon in GLOBAL}
    for l in range(config.L):
        sd |= {hf: params[canon] for hf, canon in _pairs(l)}
        for s in "qkv":
            sd[f"vit.layers.{l}.attention.{s}_proj.weight"] = \
                params[f"layers.{l}.mha.W_{s}"].reshape(config.d_e, config.d_e)
            sd[f"vit.layers.{l}.attention.{s}_proj.bias"] = \
                params[f"layers.{l}.mha.b_{s}"].reshape(config.d_e)
    return hf_config, {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}
