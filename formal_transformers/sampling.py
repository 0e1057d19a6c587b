"""Sampling from a trained checkpoint with the KV cache (spec: Algorithms 14 and 15).

- decoder: continue a prompt (DInference, torch_impl.inference.d_inference);
- encoder-decoder: map a context z to a target, stopping at eos (EDInference);
- encoder: fill the mask characters of a prompt from P (the masked-LM use of Algorithm 9).

Temperature tau samples from q proportional to p^{1/tau}; tau = 0 means greedy (argmax).
top_k, top_p, min_p and the order of temperature and truncation are Algorithm 60's sampling
conventions (spec/algorithms/60-sampling.md); None leaves a rule off. Randomness comes only
from a torch.Generator seeded with ``seed``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from formal_transformers.checkpoint import load_checkpoint
from formal_transformers.errors import CheckpointError, ConfigError
from formal_transformers.sampling_config import SamplingConfig
from formal_transformers.sources import source_from_dict
from formal_transformers.sources.base import stream_rng

SAMPLE_STREAM = 3  # prompts drawn when none is given: neither training nor validation data
FLAGS = {"tau": "--temperature", "top_k": "--top-k", "top_p": "--top-p", "min_p": "--min-p",
         "order": "--temperature-order"}


def conventions(temperature: float, top_k: int | None = None, top_p: float | None = None,
                min_p: float | None = None, order: str | None = None
                ) -> SamplingConfig | None:
    """Algorithm 60's conventions from the command line's values, None when none is set.

    A value given as 0 is checked like any other (``is not None``): --top-k 0 and --top-p 0
    are errors, never "off". ConfigError names the flag. At temperature 0 (greedy) the
    conventions are still validated; the tau they carry is then unused.
    """
    fields = {name: value for name, value in
              (("top_k", top_k), ("top_p", top_p), ("min_p", min_p), ("order", order))
              if value is not None}
    if not fields:
        return None
    try:
        return SamplingConfig(tau=float(temperature) or 1.0, **fields)
    except ConfigError as exc:
        field = str(exc).split()[0].removeprefix("SamplingConfig.")
        raise ConfigError(f"{FLAGS.get(field, field)}: {exc}") from None


def sample(checkpoint: str | os.PathLike, prompt: str | None = None, temperature: float = 1.0,
           max_new_tokens: int | None = None, seed: int = 0, top_k: int | None = None,
           top_p: float | None = None, min_p: float | None = None, order: str | None = None
           ) -> dict[str, Any]:
    """Generate from the model in ``checkpoint`` (a run directory or its checkpoint/).

    Returns the prompt, the generated tokens and their text (one character per token, the
    source's vocabulary) and, for reversal/copying, the target the model should produce.

    ``prompt`` None draws a prompt from the source (a stream of its own); an empty prompt is a
    ConfigError. ``max_new_tokens``: the decoder generates exactly that many (default: fill
    the context), the encoder-decoder at most that many before eos (default and largest
    value: l_max; more is a ConfigError); the encoder fills the masks of its prompt
    (``_``, MASK_CHAR) and refuses ``max_new_tokens``.
    top_k, top_p, min_p, order: Algorithm 60's conventions (see ``conventions``).
    """
    import torch

    from torch_impl.models import model_from_canonical

    if not (isinstance(temperature, (int, float)) and np.isfinite(temperature)
            and temperature >= 0):
        raise ConfigError(f"--temperature must be a finite number >= 0, got {temperature!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"--seed must be an integer >= 0, got {seed!r}")
    if prompt is not None and prompt == "":
        raise ConfigError("--prompt is empty: give at least one character (or leave --prompt "
                          "out to draw a prompt from the training source)")
    if max_new_tokens is not None and (not isinstance(max_new_tokens, int)
                                       or isinstance(max_new_tokens, bool)
                                       or max_new_tokens < 1):
        raise ConfigError(f"--max-new-tokens must be an integer >= 1, got {max_new_tokens!r}")
    truncation = conventions(temperature, top_k, top_p, min_p, order)
    ck = load_checkpoint(checkpoint)
    source = source_from_dict(ck.run["source"])
    model = model_from_canonical(ck.config, ck.params)
    model.eval()
    gen = torch.Generator().manual_seed(int(seed))
    opts = {"tau": float(temperature) or 1.0, "generator": gen, "greedy": temperature == 0,
            "sampling": truncation}
    rng = stream_rng(seed, SAMPLE_STREAM)
    arch = ck.config.arch
    if arch in ("decoder", "modern-decoder"):
        result = _continue(model, source, prompt, max_new_tokens, rng, opts)
    elif arch == "encoder-decoder":
        result = _transduce(model, source, prompt, max_new_tokens, rng, opts)
    elif arch == "encoder":
        if max_new_tokens is not None:
            raise ConfigError("--max-new-tokens does not apply to the encoder: it fills the "
                              "mask characters '_' of --prompt and generates nothing else")
        result = _fill(model, source, prompt, rng, opts)
    else:  # a classifier has nothing to sample
        raise CheckpointError(f"{checkpoint}: cannot sample from arch {arch!r}; a ViT "
                              "classifier is run with `formal-transformers classify`")
    applied = {} if truncation is None else {
        "top_k": truncation.top_k, "top_p": truncation.top_p, "min_p": truncation.min_p,
        "temperature_order": truncation.order}
    return {"arch": arch, "source": source.name, "temperature": temperature, "seed": seed,
            "step": ck.step, **applied, **result}


def _continue(model, source, prompt, max_new_tokens, rng, opts) -> dict[str, Any]:
    import torch

    from torch_impl.inference import d_inference

    ids = source.encode(prompt) if prompt else np.array([rng.integers(source.N_V)])
    l_max = model.config.l_max
    room = l_max - len(ids) + 1  # Alg 14: l_x + l_gen - 1 <= l_max
    if room < 1 or (max_new_tokens is not None and max_new_tokens > room):
        raise ConfigError(f"--prompt of {len(ids)} characters leaves room for at most "
                          f"{max(room, 0)} new tokens in the context of l_max = {l_max}, got "
                          f"--max-new-tokens {max_new_tokens if max_new_tokens else 'default'}")
    l_gen = max_new_tokens if max_new_tokens is not None else room
    y = d_inference(model, torch.as_tensor(ids), l_gen, **opts)  # Alg 14, KV cache
    return {"prompt": source.decode(ids), "tokens": y.tolist(), "text": source.decode(y)}


def _transduce(model, source, prompt, max_new_tokens, rng, opts) -> dict[str, Any]:
    import torch

    from torch_impl.inference import ed_inference

    task = source.task
    z = source.encode(prompt) if prompt else task.sample(rng, 1)[0][0]
    l_max = model.config.l_max
    if len(z) > l_max:
        raise ConfigError(f"--prompt holds {len(z)} characters; the model's context is "
                          f"l_max = {l_max}")
    if max_new_tokens is not None and max_new_tokens > l_max:
        raise ConfigError(f"--max-new-tokens {max_new_tokens} exceeds the encoder-decoder's "
                          f"l_max = {l_max}, the most tokens it can generate")
    l_max_gen = l_max if max_new_tokens is None else max_new_tokens
    x = ed_inference(model, torch.as_tensor(z), bos_token=task.bos, eos_token=task.eos,
                     l_max_gen=l_max_gen, **opts)  # Alg 15, KV cache
    body = [int(t) for t in x[1:] if int(t) != task.eos]
    out = {"prompt": source.decode(z), "tokens": x.tolist(), "text": source.decode(body),
           "ended_with_eos": bool(int(x[-1]) == task.eos)}
    if int(np.max(z, initial=0)) < task.S:
        expected = source.decode(task.target(np.asarray(z)[None])[0, 1:-1])
        out |= {"expected": expected, "correct": expected == out["text"]}
    return out


def _fill(model, source, prompt, rng, opts) -> dict[str, Any]:
    import torch

    from torch_impl.inference import sample_next

    mask_token = model.config.N_V - 1
    if prompt:
        x = source.encode(prompt)
    else:  # a held-out sequence with its masks
        val = source.validation_batch() or source.batch(0, 1)
        x = val.x[int(rng.integers(len(val)))]
    masked = x == mask_token
    with torch.no_grad():
        logits = model(torch.as_tensor(x)[None])[0]  # (l, N_V), Alg 9
    logits[:, mask_token] = -torch.inf  # a filled position holds a real token
    filled = x.copy()
    if masked.any():
        rows = logits[torch.as_tensor(masked)]
        filled[masked] = sample_next(rows, opts["tau"], opts["generator"], opts["greedy"],
                                     opts["sampling"]).numpy()
    return {"prompt": source.decode(x), "tokens": filled.tolist(), "text": source.decode(filled),
            "masked_positions": np.flatnonzero(masked).tolist()}
