"""A nanoGPT-style GPT (tied embedding, ``bias=False``, mean loss) behind the adapter protocol.

The module below is written in the style of Karpathy's nanoGPT ``model.py`` (our own code):
one fused ``c_attn`` projection, ``scaled_dot_product_attention(is_causal=True)``, a 4x MLP
with exact GELU, pre-LN blocks, the LM head tied to the token embedding, optional biases, and
``F.cross_entropy`` (a MEAN over the predicted tokens) as the training loss. It is the spec's
D transformer (Algorithm 10) with three declared variants, and the adapter says so::

    variants = {"tied_unembedding": True, "bias": False, "loss_reduction": "mean"}

so the suite draws parameters without ``W_u`` and without biases, and trains with the mean
loss (spec/algorithms/07, 10, 13, "Declared variant"). Declaring nothing instead makes the
same model fail: it cannot hold a separate W_u or any bias, and its loss is not the sum.

    formal-transformers verify --impl conformance.examples.nanogpt:NanoGPTAdapter
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from conformance.adapter import Adapter
from formal_transformers.canonical import full_parameters, parameter_shapes


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (nanoGPT's: torch's lacked ``bias=False`` once)."""

    def __init__(self, n: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, bias: bool):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.n_head, self.n_embd = n_head, n_embd

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, n_embd: int, bias: bool):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, bias: bool):
        super().__init__()
        self.ln_1, self.attn = LayerNorm(n_embd, bias), CausalSelfAttention(n_embd, n_head, bias)
        self.ln_2, self.mlp = LayerNorm(n_embd, bias), MLP(n_embd, bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """nanoGPT's GPT: wte, wpe, blocks, ln_f and a head tied to wte."""

    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int,
                 n_embd: int, bias: bool = False):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, n_embd), wpe=nn.Embedding(block_size, n_embd),
            h=nn.ModuleList(Block(n_embd, n_head, bias) for _ in range(n_layer)),
            ln_f=LayerNorm(n_embd, bias)))
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying

    def forward(self, idx, targets=None):
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


# -- the adapter ---------------------------------------------------------------------------

def _pairs(config) -> list[tuple[str, str, bool]]:
    """(GPT state-dict name, canonical name) of everything but c_attn and the biases."""
    out = [("transformer.wte.weight", "W_e", True), ("transformer.wpe.weight", "W_p", True),
           ("transformer.ln_f.weight", "ln_f.gamma", False),
           ("transformer.ln_f.bias", "ln_f.beta", False)]
    for l in range(config.L):
        h, c = f"transformer.h.{l}", f"layers.{l}"
        out += [(f"{h}.ln_1.weight", f"{c}.ln1.gamma", False),
                (f"{h}.ln_1.bias", f"{c}.ln1.beta", False),
                (f"{h}.attn.c_proj.weight", f"{c}.mha.W_o", False),
                (f"{h}.attn.c_proj.bias", f"{c}.mha.b_o", False),
                (f"{h}.ln_2.weight", f"{c}.ln2.gamma", False),
                (f"{h}.ln_2.bias", f"{c}.ln2.beta", False),
                (f"{h}.mlp.c_fc.weight", f"{c}.mlp.W_mlp1", False),
                (f"{h}.mlp.c_fc.bias", f"{c}.mlp.b_mlp1", False),
                (f"{h}.mlp.c_proj.weight", f"{c}.mlp.W_mlp2", False),
                (f"{h}.mlp.c_proj.bias", f"{c}.mlp.b_mlp2", False)]
    return out


class NanoGPTAdapter(Adapter):
    """nanoGPT-style GPT (tied, bias-free, mean loss), float32 and float64."""

    name = "nanoGPT-style GPT (tied, bias=False)"
    dtypes = ("float32", "float64")
    algorithms = ("d_transformer", "d_transformer_backward", "d_training", "count_parameters")
    variants = {"tied_unembedding": True, "bias": False, "loss_reduction": "mean"}
    bias = False  # the model's own structure, whatever is declared

    def constrain(self, algorithm, sizes):
        """nanoGPT fixes the MLP width (4 d_e), exact GELU and eps = 1e-5."""
        return sizes | {"d_mlp": 4 * sizes["d_e"], "activation": "gelu",
                        "layer_norm_eps": 1e-5}

    def model(self, config, params=None):
        gpt = GPT(config.N_V, config.l_max, config.L, config.H, config.d_e, self.bias)
        if params is None:
            return gpt
        dtype = next(iter(params.values())).dtype
        gpt = gpt.to(torch.float64 if dtype == np.float64 else torch.float32)
        full = full_parameters(config, params)  # what the model cannot hold is dropped:
        sd = gpt.state_dict()  # a separate W_u (the head IS wte) and biases it does not have
        with torch.no_grad():
            for name, canon, transposed in _pairs(config):
                if name in sd:
                    value = full[canon].T if transposed else full[canon]
                    sd[name].copy_(torch.from_numpy(np.ascontiguousarray(value)))
            for l in range(config.L):
                m, h = f"layers.{l}.mha", f"transformer.h.{l}.attn.c_attn"
                W = np.concatenate([full[f"{m}.W_{s}"].reshape(config.d_e, config.d_e)
                                    for s in "qkv"])
                sd[f"{h}.weight"].copy_(torch.from_numpy(W))
                if f"{h}.bias" in sd:
                    sd[f"{h}.bias"].copy_(torch.from_numpy(np.concatenate(
                        [full[f"{m}.b_{s}"].reshape(-1) for s in "qkv"])))
        return gpt

    def canonical(self, config, tensors) -> dict[str, np.ndarray]:
        """Canonical entries of ``config`` from a state dict of values or gradients."""
        out = {}
        for name, canon, transposed in _pairs(config):
            if name in tensors:
                value = tensors[name].detach().numpy()
                out[canon] = (value.T if transposed else value).copy()
        for l in range(config.L):
            m, h = f"layers.{l}.mha", f"transformer.h.{l}.attn.c_attn"
            W = tensors[f"{h}.weight"].detach().numpy()
            for i, s in enumerate("qkv"):
                out[f"{m}.W_{s}"] = W[i * config.d_e:(i + 1) * config.d_e].reshape(
                    config.H, config.d_attn, config.d_e).copy()
                if f"{h}.bias" in tensors:
                    out[f"{m}.b_{s}"] = tensors[f"{h}.bias"].detach().numpy()[
                        i * config.d_e:(i + 1) * config.d_e].reshape(config.H, -1).copy()
        out["W_u"] = out["W_e"].T.copy()
        shapes = parameter_shapes(config)  # zeros for entries the model does not have
        return {k: out.get(k, np.zeros(s, dtype=out["W_e"].dtype)) for k, s in shapes.items()}

    def d_transformer(self, x, params, config):
        logits, _ = self.model(config, params)(torch.from_numpy(x))
        return torch.softmax(logits, dim=-1).detach().numpy()

    def d_transformer_backward(self, x, params, config, dP):
        gpt = self.model(config, params)
        logits, _ = gpt(torch.from_numpy(x))
        torch.softmax(logits, dim=-1).backward(torch.from_numpy(dP))
        return self.canonical(config, {n: p.grad if p.grad is not None else torch.zeros_like(p)
                                       for n, p in gpt.named_parameters(remove_duplicate=False)})

    def d_training(self, x, params, config, eta):
        gpt, total = self.model(config, params), 0.0
        for row in torch.from_numpy(x):
            gpt.zero_grad()
            _, loss = gpt(row[None, :-1], row[None, 1:])  # nanoGPT: mean cross-entropy
            loss.backward()
            with torch.no_grad():
                for p in gpt.parameters():
                    p -= eta * p.grad
            total += loss.item()
        return total, self.canonical(config, gpt.state_dict())

    def count_parameters(self, algorithm, sizes):
        return sum(p.numel() for p in self.model(sizes).parameters())  # the tied matrix once
