"""Sampling from trained models (spec: Algorithms 14-15, 14-d-inference.md, 15-ed-inference.md).

The spec re-runs the whole transformer on the growing sequence at every step. With
``use_cache=True`` (the default) the prompt is processed once into a static, preallocated KV
cache (torch_impl/kv_cache.py) and every later step feeds only the newest token and computes
only the last position's logits; the distributions are the same (property
``kv_cache.equivalence``). Sampling from q proportional to p^{1/tau} is sampling from
softmax(logits / tau), since p = softmax(logits).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from formal_transformers.errors import ConfigError, SequenceLengthError, SpecDTypeError
from formal_transformers.sampling_config import SamplingConfig
from formal_transformers.validation import check_token_id
from torch_impl import padding
from torch_impl.kv_cache import KVCache
from torch_impl.models import DTransformer, EDTransformer
from torch_impl.sampling import draw, sample

Generator = torch.Generator | np.random.Generator | None


def _check_sampling(tau: float, generator: Generator, greedy: bool) -> None:
    if greedy:
        return
    if not isinstance(generator, (torch.Generator, np.random.Generator)):
        raise ConfigError(f"generator must be a torch.Generator or a numpy.random.Generator "
                          f"(the one source of randomness), got {type(generator).__name__}")
    if not isinstance(tau, (int, float)) or isinstance(tau, bool) or not (
            math.isfinite(tau) and tau > 0):
        raise ConfigError(f"tau (temperature) must be a finite number > 0, got {tau!r}")


def _check_count(name: str, value: object, hi: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or (
            hi is not None and value > hi):
        top = f" and <= {hi}" if hi is not None else ""
        raise ConfigError(f"{name} must be an integer >= 1{top}, got {value!r}")


def _as_batch(name: str, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise SpecDTypeError(f"{name} must be a torch.Tensor of token ids, got {type(x).__name__}")
    return x[None] if x.ndim == 1 else x  # (B, l)


def sample_next(logits: torch.Tensor, tau: float, generator: Generator, greedy: bool = False,
                sampling: SamplingConfig | None = None) -> torch.Tensor:
    """One token per row from q proportional to p^{1/tau}, p = softmax(logits): (B, N_V) -> (B,).

    ``generator``: a torch.Generator or a numpy.random.Generator (see torch_impl.sampling.draw).
    ``greedy=True`` takes the argmax instead (the tau -> 0 limit, property
    sampling.greedy_limit). ``sampling``: Algorithm 60's conventions (top-k, top-p, min-p and
    the order of temperature), whose own ``tau`` then replaces ``tau``.
    """
    if greedy:
        return logits.argmax(dim=-1)
    if sampling is not None:
        return sample(logits, sampling, generator)  # Alg 60
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return draw(torch.softmax(logits / tau, dim=-1), generator)  # (B, N_V) -> (B,)


@torch.inference_mode()
def d_inference(model: DTransformer, prompt: torch.Tensor, l_gen: int, tau: float = 1.0,
                generator: Generator = None, use_cache: bool = True,
                greedy: bool = False, sampling: SamplingConfig | None = None) -> torch.Tensor:
    """Continue a prompt by l_gen sampled tokens (spec: Algorithm 14).

    prompt: (l_x,) or (B, l_x) token ids with l_x + l_gen - 1 <= l_max. Returns the new tokens,
    (l_gen,) or (B, l_gen). Randomness comes only from ``generator`` (see ``sample_next``);
    ``greedy=True`` needs none; ``sampling`` adds Algorithm 60's truncation conventions.
    """
    _check_sampling(tau, generator, greedy)
    _check_count("l_gen", l_gen)
    x = _as_batch("prompt", prompt)
    model.check_tokens("prompt", x)
    B, l_x = x.shape
    if l_x + l_gen - 1 > model.config.l_max:
        raise SequenceLengthError(f"prompt length l_x = {l_x} plus l_gen = {l_gen} minus 1 "
                                  f"exceeds the context size l_max = {model.config.l_max}")
    cache = model.new_cache(B, l_x + l_gen - 1) if use_cache else None

    def next_logits(i: int, y: torch.Tensor) -> torch.Tensor:
        if cache is not None:  # feed only the newest token, Alg 14 L6
            return model.last_logits(y[:, i:i + 1], cache)
        return model.last_logits(torch.cat([x, y[:, :i + 1]], dim=1), None)

    logits = model.last_logits(x, cache)  # (B, N_V): P[:, l_x - 1], Alg 14 L3-4
    y = decode_loop(logits, l_gen, next_logits, tau, generator, greedy, sampling)
    return y[0] if prompt.ndim == 1 else y


def decode_loop(logits: torch.Tensor, l_gen: int,
                next_logits: Callable[[int, torch.Tensor], torch.Tensor], tau: float,
                generator: Generator, greedy: bool, sampling: SamplingConfig | None = None
                ) -> torch.Tensor:
    """Alg 14 L5-6 for l_gen tokens: sample y[:, i] from ``logits`` (B, N_V), then
    ``next_logits(i, y)`` gives the distribution after y[:, i]. Returns y (B, l_gen)."""
    y = torch.empty(logits.shape[0], l_gen, dtype=torch.long, device=logits.device)
    for i in range(l_gen):
        y[:, i] = sample_next(logits, tau, generator, greedy, sampling)  # Alg 14 L5
        if i + 1 == l_gen:
            break
        logits = next_logits(i, y)  # Alg 14 L6
    return y


@torch.inference_mode()
def ed_inference(model: EDTransformer, z: torch.Tensor, tau: float = 1.0,
                 generator: Generator = None, bos_token: int = 0,
                 eos_token: int = 1, l_max_gen: int | None = None, use_cache: bool = True,
                 greedy: bool = False, sampling: SamplingConfig | None = None,
                 context_mask: torch.Tensor | None = None
                 ) -> torch.Tensor | list[torch.Tensor]:
    """Generate a target for the context z until eos_token or l_max_gen tokens (spec: Alg 15).

    z: (l_z,) or (B, l_z); ``context_mask`` (B, l_z) bool marks the real tokens of a padded
    batch of contexts (spec: 08-ed-transformer.md, "Padded batches"). Returns x_hat, starting
    with bos_token and ending with eos_token if it was sampled (at most 1 + l_max_gen tokens):
    a 1-D tensor for 1-D z, else a list of B 1-D tensors. l_max_gen defaults to l_max.
    """
    c = model.config
    l_max_gen = c.l_max if l_max_gen is None else l_max_gen
    _check_sampling(tau, generator, greedy)
    _check_count("l_max_gen", l_max_gen, c.l_max)
    check_token_id("bos_token", bos_token, c.N_V)
    check_token_id("eos_token", eos_token, c.N_V)
    zb = _as_batch("z", z)
    context_mask = _context_mask(context_mask, zb)
    kv = model.context(model.encode(zb, context_mask))  # the encoder runs once, Alg 15 L4
    B = zb.shape[0]
    x_hat = torch.full((B, 1 + l_max_gen), bos_token, dtype=torch.long, device=zb.device)
    lengths = torch.ones(B, dtype=torch.long, device=zb.device)
    done = torch.zeros(B, dtype=torch.bool, device=zb.device)  # eos sampled
    cache = model.new_cache(B, l_max_gen) if use_cache else None
    n = 1  # length(x_hat)
    while n <= l_max_gen and not bool(done.all()):  # Alg 15 L3
        x_in = x_hat[:, n - 1:n] if cache is not None else x_hat[:, :n]
        logits = model.lm_head(model.decode(x_in, kv, cache, None, context_mask)[:, -1])
        y = sample_next(logits, tau, generator, greedy, sampling)  # Alg 15 L4-6
        x_hat[:, n] = y  # Alg 15 L7
        n += 1
        lengths = torch.where(done, lengths, n)
        done |= y == eos_token
    out = [x_hat[b, :int(lengths[b])].clone() for b in range(B)]
    return out[0] if z.ndim == 1 else out


@dataclass
class DecodeState:
    """Where a greedy decode stopped: the KV cache and the last token, not yet fed."""

    cache: KVCache
    pending: torch.Tensor  # (B, 1)


@torch.inference_mode()
def decode_steps(model: DTransformer, prompt: torch.Tensor | None, l_gen: int,
                 attention_mask: torch.Tensor | None = None, chunk: int | None = None,
                 state: DecodeState | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, DecodeState]:
    """Greedy decoding (Algorithm 14 at tau -> 0) that exposes every step's distribution.

    prompt (B, l) ids, prefilled into a KV cache ``chunk`` tokens at a time (None: at once);
    ``attention_mask`` (B, l) bool marks the real tokens of a left-padded prompt (spec:
    10-d-transformer.md, "Padded batches"). ``state`` (from an earlier call, prompt None)
    continues that decode. Returns (new tokens (B, l_gen), log p of each step's next-token
    distribution (B, l_gen, N_V), the state to continue from).
    """
    _check_count("l_gen", l_gen)
    if state is None:
        x = _as_batch("prompt", prompt)
        model.check_tokens("prompt", x)
        B, l = x.shape
        if attention_mask is not None:
            real = padding.check_real(attention_mask, (B, l))
            if not bool(real[:, -1].all()):
                raise ConfigError("decode_steps takes left-padded prompts: the last position "
                                  "of every row must be a real token")
        step = l if chunk is None else chunk
        _check_count("chunk", step)
        cache = model.new_cache(B)
        for s in range(0, l, step):  # Alg 14 L3-4: P[:, l_x - 1] after the whole prompt
            mask = None if attention_mask is None else attention_mask[:, s:s + step]
            logits = model.last_logits(x[:, s:s + step], cache, mask)
    else:
        if prompt is not None:
            raise ConfigError("decode_steps continues from state: pass prompt=None")
        cache = state.cache
        logits = model.last_logits(state.pending, cache)
    B = logits.shape[0]
    y = torch.empty(B, l_gen, dtype=torch.long, device=logits.device)
    log_p = torch.empty(B, l_gen, logits.shape[-1], dtype=logits.dtype, device=logits.device)
    for i in range(l_gen):
        log_p[:, i] = torch.log_softmax(logits, dim=-1)
        y[:, i] = logits.argmax(dim=-1)  # Alg 14 L5 at tau -> 0
        if i + 1 < l_gen:
            logits = model.last_logits(y[:, i:i + 1], cache)  # Alg 14 L6
    return y, log_p, DecodeState(cache, y[:, -1:].clone())


def _context_mask(context_mask: torch.Tensor | None, zb: torch.Tensor) -> torch.Tensor | None:
    """The real tokens of a padded batch of contexts (checked), or None."""
    return None if context_mask is None else padding.check_real(context_mask, tuple(zb.shape))


@torch.inference_mode()
def ed_decode_steps(model: EDTransformer, z: torch.Tensor, l_gen: int, bos_token: int = 0,
                    context_mask: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy Algorithm 15 for exactly l_gen tokens (no stop at eos), exposing every step's
    distribution: z (B, l_z) -> (new tokens (B, l_gen), log p of each step (B, l_gen, N_V)).
    ``context_mask`` (B, l_z) bool: the real tokens of padded contexts (as in ed_inference).
    The encoder runs once; the decoder's self-attention keys and values are cached."""
    c = model.config
    _check_count("l_gen", l_gen, c.l_max)
    check_token_id("bos_token", bos_token, c.N_V)
    zb = _as_batch("z", z)
    context_mask = _context_mask(context_mask, zb)
    kv = model.context(model.encode(zb, context_mask))  # Alg 15 L4: the encoder's output, once
    B = zb.shape[0]
    cache = model.new_cache(B, l_gen)
    y = torch.empty(B, l_gen, dtype=torch.long, device=zb.device)
    log_p = None
    x_in = torch.full((B, 1), bos_token, dtype=torch.long, device=zb.device)  # Alg 15 L1
    for i in range(l_gen):
        logits = model.lm_head(model.decode(x_in, kv, cache, None, context_mask)[:, -1])
        if log_p is None:  # Alg 15 L4-5 above
            log_p = logits.new_empty(B, l_gen, logits.shape[-1])
        log_p[:, i] = torch.log_softmax(logits, dim=-1)
        y[:, i] = logits.argmax(dim=-1)  # Alg 15 L6 at tau -> 0
        x_in = y[:, i:i + 1]
    return y, log_p
