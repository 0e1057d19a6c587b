"""Hugging Face ``GPT2LMHeadModel`` (random weights, tied LM head) behind the adapter protocol.

GPT-2 as shipped ties its LM head to the token embedding, ``lm_head.weight is wte.weight``:
one matrix. That is the spec's declared variant ``tied_unembedding`` (spec/algorithms/07 and
10, "Declared variant"), and this adapter declares it, so the suite draws parameters without a
separate ``W_u`` and checks that the gradient of the shared matrix is the sum of both uses.
The conversion is torch_impl.interop.hf_gpt2's (Conv1D transposes, fused c_attn). The model
is built from a small ``GPT2Config`` per call; nothing is downloaded. Padded batches
(``d_transformer_padded``) pass GPT-2 its ``attention_mask`` and the spec's positions
(spec/algorithms/10, "Padded batches"); without ``position_ids`` GPT-2 counts positions from
the padding, and left-padded rows fail ``batch.padding_invariance``.

    formal-transformers verify --impl conformance.examples.hf_gpt2:HFGPT2Adapter
"""

from __future__ import annotations

import numpy as np
import torch

from conformance.adapter import Adapter
from formal_transformers.canonical import full_parameters, parameter_shapes, without_variants
from torch_impl.interop.hf_gpt2 import canonical_to_gpt2, gpt2_config, gpt2_to_canonical


class HFGPT2Adapter(Adapter):
    """transformers.GPT2LMHeadModel, tied, float32 and float64 (eager attention)."""

    name = "transformers GPT2LMHeadModel (tied)"
    dtypes = ("float32", "float64")
    algorithms = ("d_transformer", "d_transformer_backward", "d_transformer_padded",
                  "count_parameters")
    variants = {"tied_unembedding": True}

    def constrain(self, algorithm, sizes):
        """GPT-2's activation is gelu_new (the spec's gelu_tanh)."""
        return sizes | {"activation": "gelu_tanh"}

    def model(self, config, params=None):
        from transformers import GPT2LMHeadModel

        plain = without_variants(config)
        hf_config = gpt2_config(plain, tie_word_embeddings=True)
        hf_config._attn_implementation = "eager"
        model = GPT2LMHeadModel(hf_config).eval()
        if params is None:
            return model
        full = dict(full_parameters(config, params))
        full["W_u"] = full["W_e"].T  # the head IS wte: a separate W_u cannot be held
        _, state = canonical_to_gpt2(plain, full)
        dtype = next(iter(params.values())).dtype
        model = model.to(torch.float64 if dtype == np.float64 else torch.float32)
        model.load_state_dict(state, strict=False)
        return model

    def d_transformer(self, x, params, config):
        with torch.no_grad():
            logits = self.model(config, params)(torch.from_numpy(x)).logits
        return torch.softmax(logits, dim=-1).numpy()

    def d_transformer_padded(self, x, real, params, config):
        """GPT-2 on a padded batch: its attention_mask, and position_ids counted from each
        row's first real token (what transformers' generate builds for left padding)."""
        mask = torch.from_numpy(real).long()
        with torch.no_grad():
            logits = self.model(config, params)(torch.from_numpy(x), attention_mask=mask,
                                                position_ids=self.position_ids(mask)).logits
        return torch.softmax(logits, dim=-1).numpy()

    def position_ids(self, mask):
        return (mask.cumsum(-1) - 1).clamp(min=0)

    def d_transformer_backward(self, x, params, config, dP):
        model = self.model(config, params)
        torch.softmax(model(torch.from_numpy(x)).logits, dim=-1).backward(torch.from_numpy(dP))
        grads = {n: p.grad if p.grad is not None else torch.zeros_like(p)
                 for n, p in model.named_parameters(remove_duplicate=False)}
        _, canonical = gpt2_to_canonical(grads, model.config)  # W_u: the shared matrix's grad
        return {k: canonical[k] for k in parameter_shapes(config)}

    def count_parameters(self, algorithm, sizes):
        return sum(p.numel() for p in self.model(sizes).parameters())  # the tied matrix once
