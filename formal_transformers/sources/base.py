"""What every training source provides: batches, a held-out set, metrics and its known limit.

A source is seeded and generates data on the fly; batch ``i`` depends only on (seed, i), so a
run resumed from a checkpoint sees exactly the batches it would have seen without stopping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

TRAIN_STREAM, VALIDATION_STREAM = 1, 2


def stream_rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    """The generator of batch ``index`` of a stream; training and validation never share one."""
    return np.random.default_rng([int(seed), stream, int(index)])


@dataclass(frozen=True)
class Batch:
    """One batch in the form the architecture's training algorithm takes (spec: Algs 11-13).

    decoder (Alg 13):          x (B, l) token ids.
    encoder (Alg 12):          x (B, l) the masked input, targets (B, l) the original tokens,
                               masked (B, l) bool -- the loss sums over masked positions only.
    encoder-decoder (Alg 11):  z (B, l_z) context ids, x (B, l_x) target ids (bos ... eos).
    """

    x: np.ndarray
    z: np.ndarray | None = None
    targets: np.ndarray | None = None
    masked: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def rows(self, lo: int, hi: int) -> Batch:
        """Rows lo..hi-1 of every array (for chunked evaluation)."""
        def cut(a):
            return None if a is None else a[lo:hi]
        return Batch(self.x[lo:hi], cut(self.z), cut(self.targets), cut(self.masked))


LogProbFn = Callable[[Batch], np.ndarray]
"""Model under evaluation: log-probabilities log P[v, t] as an array (B, l_x, N_V)."""


@dataclass(frozen=True)
class Limit:
    """The best any model can do on a source, computed exactly from its generating process."""

    metric: str  # the metric it bounds, e.g. "val_loss"
    value: float
    label: str  # e.g. "entropy rate"


class Source(Protocol):
    """The interface the training loop relies on."""

    name: str
    arch: str
    N_V: int
    length: int  # the longest sequence a batch can hold (the model needs l_max >= length)
    vocab: str  # one printable character per token id (encode/decode)

    def batch(self, step: int, batch_size: int) -> Batch: ...
    def validation_batch(self) -> Batch: ...
    def evaluate(self, log_probs: LogProbFn) -> dict[str, float]: ...
    def limits(self) -> list[Limit]: ...
    def to_dict(self) -> dict[str, Any]: ...
    def encode(self, text: str) -> np.ndarray: ...
    def decode(self, ids) -> str: ...


def chunked_log_probs(log_probs: LogProbFn, batch: Batch, chunk: int = 256) -> np.ndarray:
    """log_probs over ``batch`` in row chunks, concatenated (bounded memory on big sets)."""
    parts = [log_probs(batch.rows(i, i + chunk)) for i in range(0, len(batch), chunk)]
    return np.concatenate(parts, axis=0)


def target_log_probs(logp: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """logp[b, t, targets[b, t]] for every (b, t): (B, l, N_V), (B, l) -> (B, l)."""
    return np.take_along_axis(logp, targets[..., None], axis=2)[..., 0]


def mask_tokens(rng: np.random.Generator, x: np.ndarray, p_mask: float, mask_token: int
                ) -> Batch:
    """Mask each position of x (B, l) independently with probability p_mask (spec: Alg 12)."""
    masked = rng.random(x.shape) < p_mask
    return Batch(np.where(masked, mask_token, x), targets=x, masked=masked)


def mean_and_stderr(values: np.ndarray) -> tuple[float, float]:
    """Sample mean and its standard error (treating values as independent)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    return float(v.mean()), se


ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def symbol_names(S: int) -> str:
    """Printable names of the symbols 0..S-1 of a synthetic alphabet ('a', 'b', ...)."""
    if len(ALPHABET) < S:
        raise ValueError(f"at most {len(ALPHABET)} synthetic symbols, got {S}")
    return ALPHABET[:S]
