"""Hugging Face ``GPT2LMHeadModel`` (random weights, tied LM head) behind the adapter protocol.

GPT-2 as shipped ties its LM head to the token embedding, ``lm_head.weight is wte.weight``:
one matrix. That is the spec's declared variant ``tied_unembedding`` (spec/algorithms/07 and
10, "Declared variant"), and this adapter declares it, so the suite draws parameters without a
separate ``W_u`` and checks that the gradient of the shared matrix is the sum of both uses.
The conversion is torch_impl.interop.hf_gpt2's (Conv1D transposes, fused c_attn). The model
is built from a small ``GPT2Config`` per call; nothing is downloaded.

    formal-transformers verify --impl examples.hf_gpt2:HFGPT2Adapter
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
    algorithms = ("d_transformer", "d_transformer_backward", "count_parameters")
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

    def d_transformer_backward(self, x, params, config, dP):
        model = self.model(config, params)
        torch.softmax(model(torch.from_numpy(x)).logits, dim=-1).backward(torch.from_numpy(dP))
        grads = {n: p.grad if p.grad is not None else torch.zeros_like(p)
                 for n, p in model.named_parameters(remove_duplicate=False)}
        _, canonical = gpt2_to_canonical(grads, model.config)  # W_u: the shared matrix's grad
        return {k: canonical[k] for k in parameter_shapes(config)}

    def count_parameters(self, algorithm, sizes):
        return sum(p.numel() for p in self.model(sizes).parameters())  # the tied matrix once
