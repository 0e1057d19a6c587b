"""BERT (Hugging Face ``BertModel`` / ``BertForMaskedLM``) <-> canonical E transformer (Alg 9).

BERT is the spec's E transformer (post-LN, bidirectional) with these stated variants:
- ``embedding_layer_norm=True``: a layer norm right after the embedding (canonical ``emb_ln``);
- layer_norm_eps = BERT's ``layer_norm_eps`` (1e-12); activation "gelu" (exact, erf-based);
- token types: the spec has none. The embedding of token type 0 is FOLDED into the positional
  embedding on the way in, W_p[:, t] = position_embeddings[t] + token_type_embeddings[0], so
  the E transformer reproduces BERT for inputs whose token_type_ids are all 0 (BERT's default).
  On the way out, position_embeddings = W_p^T and the token-type table is zero; inputs of
  other token types are not represented.
- BERT's ``last_hidden_state`` is the E transformer's X after its last layer, BEFORE the head
  (W_f, phi, ln_f, W_u): ``ETransformer.hidden_states(x)``.
- The head: BertForMaskedLM's ``cls.predictions.transform`` is (W_f, b_f, ln_f), its decoder is
  W_u. BERT's vocabulary bias ``cls.predictions.bias`` has no place in the spec: a non-zero one
  is refused. A BertModel state dict has no head; then W_f = I, b_f = 0, ln_f = (1, 0) and
  W_u = W_e^T are placeholders, which do not affect the hidden states. The pooler is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from formal_transformers.canonical import check_parameters, parameter_shapes
from formal_transformers.errors import ConfigError, ParameterFileError
from formal_transformers.hyperparameters import ETransformerConfig

ACTIVATION_FROM_HF = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                      "relu": "relu"}
ACTIVATION_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}
_HEAD = "cls.predictions"
_STACKED = ("W_q", "b_q", "W_k", "b_k", "W_v", "b_v")


def config_from_bert(hf_config) -> ETransformerConfig:
    """The E transformer config of a ``transformers.BertConfig``; refuses unsupported variants."""
    c = hf_config
    if c.is_decoder or getattr(c, "add_cross_attention", False):
        raise ConfigError("BertConfig is_decoder/add_cross_attention: the E transformer "
                          "(Algorithm 9) is an unmasked encoder without cross-attention")
    if getattr(c, "position_embedding_type", None) not in (None, "absolute"):
        raise ConfigError(f"BertConfig.position_embedding_type must be 'absolute' "
                          f"(Algorithm 2), got {c.position_embedding_type!r}")
    if c.hidden_act not in ACTIVATION_FROM_HF:
        raise ConfigError(f"BertConfig.hidden_act must be one of {sorted(ACTIVATION_FROM_HF)}, "
                          f"got {c.hidden_act!r}")
    return ETransformerConfig(
        N_V=c.vocab_size, l_max=c.max_position_embeddings, d_e=c.hidden_size,
        d_mlp=c.intermediate_size, L=c.num_hidden_layers, H=c.num_attention_heads,
        activation=ACTIVATION_FROM_HF[c.hidden_act], layer_norm_eps=c.layer_norm_eps,
        embedding_layer_norm=True)


def bert_config(config: ETransformerConfig, tie_word_embeddings: bool = True):
    """A ``transformers.BertConfig`` with the architecture of an E transformer config."""
    from transformers import BertConfig

    if not config.embedding_layer_norm:
        raise ConfigError("BERT always normalises its embedding: the E transformer config "
                          "needs embedding_layer_norm=True")
    return BertConfig(vocab_size=config.N_V, max_position_embeddings=config.l_max,
                      hidden_size=config.d_e, intermediate_size=config.d_mlp,
                      num_hidden_layers=config.L, num_attention_heads=config.H,
                      hidden_act=ACTIVATION_TO_HF[config.activation],
                      layer_norm_eps=config.layer_norm_eps, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0, tie_word_embeddings=tie_word_embeddings)


def _pairs(l: int) -> list[tuple[str, str]]:
    """(BERT name, canonical name) of layer l; BERT's Linear weights have the spec's orientation."""
    b, c = f"encoder.layer.{l}", f"layers.{l}"
    pairs = [(f"{b}.attention.output.dense.weight", f"{c}.mha.W_o"),
             (f"{b}.attention.output.dense.bias", f"{c}.mha.b_o"),
             (f"{b}.attention.output.LayerNorm.weight", f"{c}.ln1.gamma"),
             (f"{b}.attention.output.LayerNorm.bias", f"{c}.ln1.beta"),
             (f"{b}.intermediate.dense.weight", f"{c}.mlp.W_mlp1"),
             (f"{b}.intermediate.dense.bias", f"{c}.mlp.b_mlp1"),
             (f"{b}.output.dense.weight", f"{c}.mlp.W_mlp2"),
             (f"{b}.output.dense.bias", f"{c}.mlp.b_mlp2"),
             (f"{b}.output.LayerNorm.weight", f"{c}.ln2.gamma"),
             (f"{b}.output.LayerNorm.bias", f"{c}.ln2.beta")]
    for hf, s in (("query", "q"), ("key", "k"), ("value", "v")):
        pairs += [(f"{b}.attention.self.{hf}.weight", f"{c}.mha.W_{s}"),
                  (f"{b}.attention.self.{hf}.bias", f"{c}.mha.b_{s}")]
    return pairs


_GLOBAL = [("embeddings.LayerNorm.weight", "emb_ln.gamma"),
           ("embeddings.LayerNorm.bias", "emb_ln.beta")]
_HEAD_PAIRS = [(f"{_HEAD}.transform.dense.weight", "W_f"), (f"{_HEAD}.transform.dense.bias", "b_f"),
               (f"{_HEAD}.transform.LayerNorm.weight", "ln_f.gamma"),
               (f"{_HEAD}.transform.LayerNorm.bias", "ln_f.beta"),
               (f"{_HEAD}.decoder.weight", "W_u")]


def _head(sd: Mapping[str, np.ndarray], config: ETransformerConfig) -> dict[str, np.ndarray]:
    if f"{_HEAD}.transform.dense.weight" not in sd:  # a BertModel: placeholders, see above
        d = config.d_e
        return {"W_f": np.eye(d, dtype=sd["embeddings.word_embeddings.weight"].dtype),
                "b_f": np.zeros(d), "ln_f.gamma": np.ones(d), "ln_f.beta": np.zeros(d),
                "W_u": sd["embeddings.word_embeddings.weight"]}
    if np.any(sd.get(f"{_HEAD}.bias", 0.0) != 0):
        raise ParameterFileError(f"BERT state dict: '{_HEAD}.bias' is non-zero, but the spec's "
                                 "unembedding (Algorithm 7) has no vocabulary bias")
    return {canon: sd[hf] for hf, canon in _HEAD_PAIRS}


def bert_to_canonical(state_dict: Mapping[str, torch.Tensor], hf_config
                      ) -> tuple[ETransformerConfig, dict[str, np.ndarray]]:
    """Canonical config and parameters of a BertModel or BertForMaskedLM state dict."""
    config = config_from_bert(hf_config)
    sd = {k.removeprefix("bert."): v.detach().cpu().numpy() for k, v in state_dict.items()}
    dtype = sd["embeddings.word_embeddings.weight"].dtype
    try:
        params = {"W_e": sd["embeddings.word_embeddings.weight"].T,
                  "W_p": (sd["embeddings.position_embeddings.weight"]  # token type 0 folded in
                          + sd["embeddings.token_type_embeddings.weight"][0]).T}
        params |= {canon: sd[hf] for hf, canon in _GLOBAL}
        for l in range(config.L):
            params |= {canon: sd[hf] for hf, canon in _pairs(l)}
        params |= _head(sd, config)
    except KeyError as exc:
        raise ParameterFileError(f"BERT state dict: missing entry {exc}") from None
    H, d = config.H, config.d_attn
    for l in range(config.L):
        for s in "qkv":  # (H * d_attn, d_e) -> heads stacked on axis 0
            m = f"layers.{l}.mha"
            params[f"{m}.W_{s}"] = params[f"{m}.W_{s}"].reshape(H, d, config.d_e)
            params[f"{m}.b_{s}"] = params[f"{m}.b_{s}"].reshape(H, d)
    params = {k: np.array(params[k], dtype=dtype) for k in parameter_shapes(config)}
    check_parameters(config, params, source="BERT state dict")
    return config, params


def canonical_to_bert(config: ETransformerConfig, params: Mapping[str, np.ndarray],
                      head: bool = True):
    """(BertConfig, state dict) from canonical parameters.

    ``head=True`` gives a BertForMaskedLM state dict (``bert.`` prefix, ``cls.`` head with a
    zero vocabulary bias); ``head=False`` a BertModel one without pooler (load it into
    ``BertModel(config, add_pooling_layer=False)``). The token-type table is zero (see above).
    """
    check_parameters(config, params)
    hf_config = bert_config(config, bool(np.array_equal(params["W_u"], params["W_e"].T)))
    W_e = params["W_e"]
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": W_e.T,
        "embeddings.position_embeddings.weight": params["W_p"].T,
        "embeddings.token_type_embeddings.weight": np.zeros((hf_config.type_vocab_size,
                                                             config.d_e), W_e.dtype)}
    sd |= {hf: params[canon] for hf, canon in _GLOBAL}
    for l in range(config.L):
        for hf, canon in _pairs(l):
            a = params[canon]  # heads (H, d_attn[, d_e]) -> BERT's (H * d_attn[, d_e])
            sd[hf] = a.reshape(-1, *a.shape[2:]) if canon[-3:] in _STACKED else a
    if head:
        sd = {f"bert.{k}": v for k, v in sd.items()}
        sd |= {hf: params[canon] for hf, canon in _HEAD_PAIRS}
        sd[f"{_HEAD}.bias"] = sd[f"{_HEAD}.decoder.bias"] = np.zeros(config.N_V, W_e.dtype)
    return hf_config, {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}
