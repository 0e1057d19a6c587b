"""Sequence reversal and copying for the encoder-decoder (spec: Algorithms 8, 11 and 15).

The context z is a uniform random string over [S] of length n in 1..max_len; the target is
x = [bos] + f(z) + [eos] with f the reversal or the identity, bos = S and eos = S + 1, so
N_V = S + 2. The map z -> f(z) is deterministic: the Bayes-optimal loss is 0 and the
Bayes-optimal exact-match rate is 1.

Every batch holds sequences of one length n (drawn uniformly per batch), so no padding is
ever needed and the loss of Algorithm 11 applies unchanged to every row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formal_transformers.errors import ConfigError

TASKS = ("reverse", "copy")


@dataclass(frozen=True)
class Seq2SeqTask:
    """A deterministic string map z -> f(z) over S symbols, with bos/eos framing."""

    task: str = "reverse"
    S: int = 10
    max_len: int = 16

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"Seq2SeqTask.task must be one of {TASKS}, got {self.task!r}")
        for name in ("S", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"Seq2SeqTask.{name} must be a positive integer, got {value!r}")

    @property
    def bos(self) -> int:
        return self.S

    @property
    def eos(self) -> int:
        return self.S + 1

    @property
    def N_V(self) -> int:
        return self.S + 2

    @property
    def l_max(self) -> int:
        """Longest sequence either side: x = bos + max_len symbols + eos."""
        return self.max_len + 2

    def target(self, z: np.ndarray) -> np.ndarray:
        """x = [bos] + f(z) + [eos] for a batch z (B, n) -> (B, n + 2)."""
        body = z[:, ::-1] if self.task == "reverse" else z
        B = z.shape[0]
        return np.concatenate([np.full((B, 1), self.bos), body, np.full((B, 1), self.eos)],
                              axis=1).astype(np.int64)

    def sample(self, rng: np.random.Generator, batch: int, n: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """A batch (z (B, n), x (B, n + 2)); n is drawn from 1..max_len unless given."""
        if n is None:
            n = int(rng.integers(1, self.max_len + 1))
        if not 1 <= n <= self.max_len:
            raise ConfigError(f"length n must be in [1, {self.max_len}], got {n}")
        z = rng.integers(0, self.S, size=(batch, n), dtype=np.int64)
        return z, self.target(z)
