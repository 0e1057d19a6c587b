"""The predictor: training and inference memory from hyperparameters and dtype, a literal
transcription of spec/memory.md sections 3, 5 and 6, formulas (M12)-(M14), (M28)-(M31).

``training_memory`` and ``inference_memory`` return frozen estimates with a breakdown
(``rows``: component, bytes, formula) and a JSON form; the CLI renders them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from formal_transformers.errors import ConfigError
from formal_transformers.hyperparameters import (
    Config,
    DTransformerConfig,
    EDTransformerConfig,
    ModernDTransformerConfig,
)
from formal_transformers.memory import modern, working
from formal_transformers.memory.activations import Term, activation_terms, check_path, total_bytes
from formal_transformers.memory.counts import parameter_counts, tied_parameter_count

DTYPE_BYTES = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2}
OPTIMIZERS = ("sgd", "adamw")
DEVICES = ("cpu", "cuda")


def dtype_bytes(dtype: str) -> int:
    """b, bytes per number of a dtype name (spec/memory.md section 1)."""
    if dtype not in DTYPE_BYTES:
        raise ConfigError(f"dtype must be one of {list(DTYPE_BYTES)}, got {dtype!r}")
    return DTYPE_BYTES[dtype]


def _check_sizes(config: Config, batch: int, seq: int, src_seq: int | None) -> None:
    for name, value in (("batch", batch), ("seq", seq), ("src_seq", src_seq)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < 1):
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    for name, value in (("seq", seq), ("src_seq", src_seq)):
        if value is not None and value > getattr(config, "l_max", value):
            raise ConfigError(f"{name} = {value} exceeds the context size l_max = "
                              f"{config.l_max}")
    if seq < 2 and isinstance(config, (DTransformerConfig, EDTransformerConfig,
                                       ModernDTransformerConfig)):
        raise ConfigError(f"seq must be at least 2 for a next-token loss, got {seq}")


@dataclass(frozen=True)
class Estimate:
    """A predicted memory breakdown; ``rows`` are (component, bytes, formula)."""

    kind: str  # training | inference
    config: Config
    settings: dict[str, Any]
    parameters: int
    rows: tuple[tuple[str, int, str], ...]
    peak: int
    activations: tuple[Term, ...] = field(default=())

    def row(self, component: str) -> int:
        return dict((r[0], r[1]) for r in self.rows)[component]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "config": self.config.to_dict(), **self.settings,
                "parameters": self.parameters,
                "tied_parameters": tied_parameter_count(self.config),
                "parameter_counts": parameter_counts(self.config),
                "breakdown": [{"component": c, "bytes": b, "formula": f}
                              for c, b, f in self.rows],
                "activations": [{"name": t.name, "group": t.group, "count": t.count,
                                 "width": t.width, "bytes": t.bytes}
                                for t in self.activations],
                "peak_bytes": self.peak}


def training_memory(config: Config, batch: int, seq: int, dtype: str = "float32",
                    optimizer: str = "adamw", path: str = "sdpa", src_seq: int | None = None,
                    device: str = "cpu") -> Estimate:
    """Memory of one training step in steady state (spec/memory.md sections 3-5).

    path 'reference' is reference_numpy: one sequence at a time (batch must be 1), float64,
    plain gradient descent. path 'naive' / 'sdpa' is torch_impl with PyTorch's math kernel
    or a flash kernel. seq = l (l_x for the ED transformer, whose context has src_seq).
    """
    check_path(path)
    b = dtype_bytes(dtype)
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if device not in DEVICES:
        raise ConfigError(f"device must be one of {DEVICES}, got {device!r}")
    if path == "reference" and (batch != 1 or b != 8 or optimizer != "sgd"):
        raise ConfigError("path 'reference' runs one sequence in float64 with gradient "
                          f"descent: batch=1, dtype='float64', optimizer='sgd' (got batch="
                          f"{batch}, dtype={dtype!r}, optimizer={optimizer!r})")
    _check_sizes(config, batch, seq, src_seq)
    P = parameter_counts(config)["total"]
    terms = activation_terms(config, batch, seq, b, path, src_seq)
    params, grads = P * b, P * b  # (M12), (M13)
    opt = 2 * P * b if optimizer == "adamw" else 0  # (M14)
    acts = total_bytes(terms)
    if path == "reference":
        w_bwd = working.reference_backward_working(config, seq, src_seq)  # (M26)
        w_upd = working.reference_update_working(config)  # (M27)
        peak = params + grads + max(acts + w_bwd, w_upd)  # (M29)
        rows = [("working memory: backward", w_bwd, "(M26)"),
                ("working memory: update", w_upd, "(M27)")]
    else:
        if isinstance(config, ModernDTransformerConfig):  # (M69)
            w_fwd = modern.modern_forward_working(config, batch, seq, b)
            w_bwd = modern.modern_backward_working(config, batch, seq, b, path)
        else:
            w_fwd = working.torch_forward_working(config, batch, seq, b)  # (M23)
            w_bwd = working.torch_backward_working(config, batch, seq, b, path, src_seq)  # (M24)
        w_opt = working.optimizer_working(config, optimizer, b, device)  # (M25)
        peak = params + opt + max(acts + w_fwd, acts + w_bwd, grads + w_opt)  # (M28)
        rows = [("working memory: forward", w_fwd, "(M23)"),
                ("working memory: backward", w_bwd, "(M24)"),
                ("working memory: optimizer", w_opt, "(M25)")]
    rows = [("parameters", params, "(M12) P b"), ("gradients", grads, "(M13) P b"),
            ("optimizer state", opt, "(M14) 2 P b (AdamW) or 0"),
            ("activations", acts, "(M68)" if isinstance(config, ModernDTransformerConfig)
             else "(M15)-(M22)"), *rows]
    settings = {"batch": batch, "seq": seq, "src_seq": src_seq, "dtype": dtype,
                "optimizer": optimizer, "path": path, "device": device}
    return Estimate("training", config, settings, P, tuple(rows), peak, tuple(terms))


def kv_cache_bytes(config: Config, batch: int, capacity: int, b: int) -> int:
    """(M30) 2 L B T H d_head b: keys and values of every self-attention layer for T cached
    positions (L = L_dec for the ED transformer)."""
    L = config.L_dec if isinstance(config, EDTransformerConfig) else config.L
    return 2 * L * batch * capacity * config.H * (config.d_e // config.H) * b


def modern_kv_cache_bytes(config: ModernDTransformerConfig, batch: int, capacity: int, b: int
                          ) -> int:
    """(M67) 2 B G d_head b sum_l min(w_l, T): the modern decoder's cache keeps G kv heads and
    a windowed layer only its last w_l positions (torch_impl/ring_kv_cache.py)."""
    c = config
    slots = sum(capacity if c.window(l) is None else min(c.window(l), capacity)
                for l in range(c.L))
    return 2 * batch * c.G * c.d_head * b * slots


def inference_memory(config: Config, batch: int, prompt: int, new_tokens: int,
                     dtype: str = "float32") -> Estimate:
    """Memory of sampling with a static KV cache (spec/memory.md section 6; Algs 14-15).

    D transformer: ``prompt`` = l_x tokens, then ``new_tokens`` = l_gen; the cache holds
    T = l_x + l_gen - 1 positions (the last sampled token is never fed back). ED
    transformer: ``prompt`` = l_z context tokens, ``new_tokens`` = the length limit of the
    target; the cache holds T = new_tokens positions.
    """
    b = dtype_bytes(dtype)
    if isinstance(config, ModernDTransformerConfig):
        return modern_inference_memory(config, batch, prompt, new_tokens, dtype)
    if not isinstance(config, (DTransformerConfig, EDTransformerConfig)):
        raise ConfigError("inference (Algorithms 14-15) exists for the decoder and the "
                          f"encoder-decoder architectures, not for {config.arch!r}")
    for name, value in (("batch", batch), ("prompt", prompt), ("new_tokens", new_tokens)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    c, P = config, parameter_counts(config)["total"]
    n = batch * prompt
    if isinstance(c, DTransformerConfig):
        positions = prompt + new_tokens - 1
        kv, cross, z_out = kv_cache_bytes(c, batch, positions, b), 0, 0  # (M30)
        w = n * (2 * c.d_mlp + 3 * c.d_e) * b  # (M31) prefill of the prompt
        peak = P * b + kv + w
    else:
        positions = new_tokens
        kv = kv_cache_bytes(c, batch, positions, b)  # (M30)
        cross = 2 * c.L_dec * n * c.d_e * b  # (M30) cross-attention K, V of Z
        z_out = n * c.d_e * b
        w_enc = n * (2 * c.d_mlp + 2 * c.d_e) * b  # (M32) the encoder's forward pass
        w = batch * (2 * c.d_mlp + 3 * c.d_e) * b  # (M32) one decode step
        peak = P * b + max(w_enc, z_out + cross + kv + w)
    if max(positions, prompt) > c.l_max:
        raise ConfigError(f"prompt = {prompt} tokens and a cache of {positions} positions must "
                          f"fit in the context size l_max = {c.l_max}")
    rows = (("parameters", P * b, "(M12) P b"), ("KV cache", kv, "(M30) 2 L B T H d_head b"),
            ("cross-attention K, V of Z", cross, "(M30) 2 L_dec B l_z d_e b"),
            ("encoder output Z", z_out, "B l_z d_e b"),
            ("working memory", w, "(M31) / (M32)"))
    settings = {"batch": batch, "prompt": prompt, "new_tokens": new_tokens,
                "cache_positions": positions, "dtype": dtype}
    return Estimate("inference", config, settings, P, rows, peak)


def _check_counts(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def modern_inference_memory(config: ModernDTransformerConfig, batch: int, prompt: int,
                            new_tokens: int, dtype: str = "float32") -> Estimate:
    """Sampling from the modern decoder with its ring-buffer cache (spec/memory.md section
    11): P b + (M67) + (M70); the cache holds T = prompt + new_tokens - 1 positions, a
    windowed layer at most w of them."""
    b, c = dtype_bytes(dtype), config
    _check_counts(batch=batch, prompt=prompt, new_tokens=new_tokens)
    positions = prompt + new_tokens - 1
    if positions > c.l_max:
        raise ConfigError(f"prompt = {prompt} tokens and a cache of {positions} positions must "
                          f"fit in the context size l_max = {c.l_max}")
    P = parameter_counts(c)["total"]
    kv = modern_kv_cache_bytes(c, batch, positions, b)  # (M67)
    w = modern.modern_inference_working(c, batch, prompt, positions, b)  # (M70)
    rows = (("parameters", P * b, "(M12) P b"),
            ("KV cache", kv, "(M67) 2 B G d_h b sum_l min(w_l, T)"),
            ("working memory", w, "(M70)"))
    settings = {"batch": batch, "prompt": prompt, "new_tokens": new_tokens,
                "cache_positions": positions, "dtype": dtype}
    return Estimate("inference", c, settings, P, rows, P * b + kv + w)
