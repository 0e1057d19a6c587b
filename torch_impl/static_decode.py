"""Decoding the D transformer with one static-shape step, for torch.compile (spec: Algorithm 14).

The eager decode loop (torch_impl.inference.d_inference) attends to the cached prefix
``k[:, :, :length]``, whose length grows by one token per step: a new shape at every step, so
a compiler would specialise or guard on it again and again. ``StaticDecoder``'s step instead
attends to the whole preallocated buffer of the KV cache (torch_impl/kv_cache.py) under the
causal row of Algorithm 10 L6 for the query at position ``pos``, Mask[t_z] = [t_z <= pos], and
writes the new key and value at ``pos`` with ``index_copy_``; ``pos`` is a tensor. Every step
then has the same shapes and runs the same graph, which ``torch.compile`` specialises once:
on CPU inductor fuses the layer norms, GELU, attention of the one query and residual
additions between the matrix-vector products, and its C++ wrapper (``cpp_wrapper``) calls them
without Python in between; on CUDA ``mode="reduce-overhead"`` replays the step as a CUDA graph.
After the first call the compiled step runs without re-evaluating dynamo's guards on every
parameter (``skip_guard_eval_unsafe``): ``generate`` itself checks what the graph was
specialised on (B, capacity), and the parameters are graph inputs, so their updates are seen.
Keys t_z > pos hold zeros or stale values and are masked out, so the distribution of every
step is that of the eager loop (property kv_cache.equivalence; tested to float rounding,
tokens identical).

The prompt is prefilled by the eager model into the same cache buffers (Alg 14 L3-4).
"""

from __future__ import annotations

import math

import torch

from formal_transformers.errors import SequenceLengthError
from torch_impl.inference import Generator, _as_batch, _check_count, _check_sampling, decode_loop
from torch_impl.kv_cache import KVCache
from torch_impl.models import DTransformer


class StaticDecoder:
    """Batch-B decoding of ``model`` with a static step, optionally compiled.

    ``compile``: False (eager static step), True (``torch.compile`` with inductor) or a dict
    of ``torch.compile`` keyword arguments (e.g. ``{"mode": "reduce-overhead"}`` on CUDA, or
    ``{"backend": "eager"}`` to test the tracing cheaply). ``capacity`` (<= l_max) bounds
    prompt + generated tokens; the compiled step is reused by every ``generate`` call with the
    same B and capacity.
    """

    def __init__(self, model: DTransformer, B: int = 1, capacity: int | None = None,
                 compile: bool | dict = False, weights_in_out: bool | None = None):
        c = model.config
        capacity = c.l_max if capacity is None else capacity
        _check_count("capacity", capacity, c.l_max)
        _check_count("B", B)
        self.model, self.B, self.capacity = model.eval(), B, capacity
        self.cache: KVCache = model.new_cache(B, capacity)
        device = model.lm_head.weight.device
        self.keys = torch.arange(capacity, device=device)  # t_z
        self.token = torch.zeros(B, 1, dtype=torch.long, device=device)
        self.pos = torch.zeros(1, dtype=torch.long, device=device)
        self.compiled = bool(compile)
        # The step's matrices as (in, out) copies (x @ W^T read as x @ W_t): at batch 1 on CPU
        # the BLAS matrix-vector product over that layout reads the weights faster (measured
        # by bench's floor in both layouts). Default: on CPU. Costs a second copy of the
        # weights while the decoder lives; refreshed when a weight changes (``_sync``).
        self.in_out = device.type == "cpu" if weights_in_out is None else bool(weights_in_out)
        self._linears = [lin for layer in model.layers
                         for lin in (layer.mha.qkv, layer.mha.out, layer.mlp.fc1, layer.mlp.fc2)]
        self._linears.append(model.lm_head)
        self._wt = [lin.weight.detach().t().contiguous() for lin in self._linears] \
            if self.in_out else []
        self._seen = [self._stamp(lin) for lin in self._linears] if self.in_out else []
        step = self._step
        if compile:
            # The cache buffers keep their addresses for the decoder's lifetime: say so, so
            # that a CUDA graph (mode="reduce-overhead") may write them in place (as
            # transformers' StaticCache and gpt-fast do).
            for buffer in (*self.cache.k, *self.cache.v):
                torch._dynamo.mark_static_address(buffer)
            options = dict(compile) if isinstance(compile, dict) else (
                {"options": {"cpp_wrapper": True}} if device.type == "cpu" else {})
            step = torch.compile(step, fullgraph=True, dynamic=False, **options)
        self.step = step
        self._warm = False  # the compiled step has run once (and compiled)

    def _step(self, token: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """token (B, 1) at position pos (1,) -> the logits of the next token (B, N_V).

        Alg 10 L2-9 for one new column, attending to the cached columns t_z <= pos. The
        attention of the one query is written out (Algorithm 4, lines 4-6) rather than called
        through scaled_dot_product_attention, whose CPU kernel costs more than the arithmetic
        at one query, and which the compiler fuses.
        """
        m, cache = self.model, self.cache
        B = token.shape[0]
        X = m.wte(token) + m.wpe(pos)  # (B, 1, d_e), Alg 10 L2-3
        # Mask[t_z, pos] = [t_z <= pos] (Alg 10 L6) as an additive -inf (Algorithm 4, line 5)
        excluded = torch.where(self.keys <= pos, 0.0, -math.inf).to(X.dtype)
        for l, layer in enumerate(m.layers):  # Alg 10 L4-8
            mha, mlp = layer.mha, layer.mlp
            qkv = self._linear(4 * l, layer.ln1(X))
            q, k, v = qkv.view(B, 1, 3, mha.H, -1).permute(2, 0, 3, 1, 4)
            cache.k[l].index_copy_(2, pos, k)  # (B, H, capacity, d_head)
            cache.v[l].index_copy_(2, pos, v)
            S = q @ cache.k[l].transpose(-1, -2) * (1 / math.sqrt(q.shape[-1]))  # (B, H, 1, cap)
            y = torch.softmax(S + excluded, dim=-1) @ cache.v[l]  # (B, H, 1, d_head)
            X = X + self._linear(4 * l + 1, y.transpose(1, 2).reshape(B, 1, -1))
            X = X + self._linear(4 * l + 3, mlp.phi(self._linear(4 * l + 2, layer.ln2(X))))
        return self._linear(4 * len(m.layers), m.ln_f(X)[:, -1])  # Alg 10 L9-10, (B, N_V)

    def _linear(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """The i-th matrix of the step applied to x (..., d_in): W x + b, through its (in, out)
        copy when ``in_out``."""
        lin = self._linears[i]
        if not self.in_out:
            return lin(x)
        y = x @ self._wt[i]
        return y if lin.bias is None else y + lin.bias

    @staticmethod
    def _stamp(lin: torch.nn.Linear) -> tuple:
        """What identifies a weight's current values: the tensor and its in-place version."""
        return (id(lin.weight), lin.weight.data_ptr(), lin.weight._version)

    def _sync(self) -> None:
        """Refresh the (in, out) copies of the weights changed since they were made (an
        optimizer step or load_state_dict bumps a parameter's version; a new parameter has a
        new identity). Changes through ``.data`` are invisible: build a new decoder then."""
        for i, lin in enumerate(self._linears if self.in_out else ()):
            stamp = self._stamp(lin)
            if stamp != self._seen[i]:
                self._wt[i].copy_(lin.weight.detach().t())
                self._seen[i] = stamp

    @torch.inference_mode()
    def generate(self, prompt: torch.Tensor, l_gen: int, tau: float = 1.0,
                 generator: Generator = None, greedy: bool = False) -> torch.Tensor:
        """Algorithm 14 like torch_impl.inference.d_inference: the l_gen new tokens.

        prompt: (l_x,) or (B, l_x) with l_x + l_gen - 1 <= capacity.
        """
        _check_sampling(tau, generator, greedy)
        _check_count("l_gen", l_gen)
        x = _as_batch("prompt", prompt)
        self.model.check_tokens("prompt", x)
        B, l_x = x.shape
        if B != self.B:
            raise SequenceLengthError(f"this decoder was built for B = {self.B} sequences, "
                                      f"got a prompt batch of {B}")
        if l_x + l_gen - 1 > self.capacity:
            raise SequenceLengthError(f"prompt length l_x = {l_x} plus l_gen = {l_gen} minus 1 "
                                      f"exceeds the decoder's capacity {self.capacity}")
        self.cache.reset()
        self._sync()

        def next_logits(i: int, y: torch.Tensor) -> torch.Tensor:
            # the newest token only (Alg 14 L6), in the same (B, 1) and (1,) tensors every
            # step: a slice of y would differ in storage offset, which the compiled step
            # guards on
            self.token.copy_(y[:, i:i + 1])
            self.pos.fill_(l_x + i)
            return self._run_step(self.token, self.pos)

        logits = self.model.last_logits(x, self.cache)  # eager prefill, Alg 14 L3-4
        y = decode_loop(logits, l_gen, next_logits, tau, generator, greedy)
        return y[0] if prompt.ndim == 1 else y

    def _run_step(self, token: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """``step``; once compiled, without re-checking every parameter's guards."""
        if not self.compiled or not self._warm:
            self._warm = True
            return self.step(token, pos)
        with torch.compiler.set_stance(skip_guard_eval_unsafe=True):
            return self.step(token, pos)
