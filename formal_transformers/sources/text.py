"""A character-level tokenizer and a text source for ``--text FILE`` (spec: Algorithm 13).

The vocabulary is the sorted set of characters of the file; token id = rank. Training windows
are drawn uniformly from the first 90 % of the text, validation windows from the rest (when
the text is long enough to hold both), so validation measures held-out text.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from formal_transformers.errors import SourceError, TokenRangeError
from formal_transformers.sources.base import (
    TRAIN_STREAM,
    VALIDATION_STREAM,
    Batch,
    Limit,
    LogProbFn,
    chunked_log_probs,
    mask_tokens,
    mean_and_stderr,
    stream_rng,
    target_log_probs,
)

MASK_CHAR = "_"
"""The encoder's mask token as a character: in --prompt it marks a token to fill."""


@dataclass(frozen=True)
class CharTokenizer:
    """Characters <-> ids over a fixed alphabet (a string of distinct characters)."""

    alphabet: str

    def __post_init__(self) -> None:
        if not self.alphabet or len(set(self.alphabet)) != len(self.alphabet):
            raise SourceError(f"tokenizer alphabet must be non-empty with distinct characters, "
                              f"got {self.alphabet!r}")

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls("".join(sorted(set(text))))

    @property
    def N_V(self) -> int:
        return len(self.alphabet)

    def encode(self, text: str) -> np.ndarray:
        """Token ids of ``text``, shape (len(text),); an unknown character is a TokenRangeError."""
        index = {c: i for i, c in enumerate(self.alphabet)}
        unknown = sorted({c for c in text if c not in index})
        if unknown:
            raise TokenRangeError(f"text holds characters outside the tokenizer's alphabet "
                                  f"{self.alphabet!r}: {''.join(unknown)!r}")
        return np.array([index[c] for c in text], dtype=np.int64)

    def decode(self, ids) -> str:
        return "".join(self.alphabet[int(i)] for i in ids)


def read_text(path: str | os.PathLike) -> str:
    """The file's text (UTF-8); missing, unreadable or empty files are SourceErrors."""
    p = Path(path)
    if not p.is_file():
        raise SourceError(f"--text: file {str(p)!r} does not exist or is not a regular file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"--text: cannot read {str(p)!r} as UTF-8 text ({exc})") from None
    if len(text) < 2:
        raise SourceError(f"--text: file {str(p)!r} holds {len(text)} characters; a language "
                          "model needs at least 2 (one to read, one to predict)")
    return text


@dataclass(frozen=True)
class TextCorpus:
    """Token ids of a text split into training and (optional) validation parts."""

    tokens: np.ndarray
    window: int

    def split(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(train, validation) ids; validation is None when the text is too short for both."""
        n = len(self.tokens)
        cut = int(n * 0.9)
        if n - cut >= self.window and cut >= self.window:
            return self.tokens[:cut], self.tokens[cut:]
        return self.tokens, None

    def windows(self, part: np.ndarray, rng: np.random.Generator, batch: int) -> np.ndarray:
        """``batch`` windows of ``window`` consecutive ids from ``part``, shape (B, window)."""
        starts = rng.integers(0, len(part) - self.window + 1, size=batch)
        return np.stack([part[s: s + self.window] for s in starts]).astype(np.int64)


def file_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class TextLM:
    """A user's text file as a character-level source (decoder: Alg 13; encoder: Alg 12).

    ``path`` is stored absolute, so a run resumes (and samples) from any directory.

    The tokenizer needs only the stored ``alphabet`` (sampling works without the file); the
    file itself is read on the first batch and must still have the recorded ``sha256``.
    For the encoder, positions are masked with probability p_mask (``mask_token`` = N_V - 1).
    """

    path: str
    alphabet: str
    sha256: str
    length: int = 64
    seed: int = 0
    arch: str = "decoder"
    p_mask: float = 0.15
    n_validation: int = 256
    name: str = "text"
    _corpus: TextCorpus | None = field(default=None, repr=False)

    @classmethod
    def from_file(cls, path: str | os.PathLike, arch: str = "decoder", length: int = 64,
                  seed: int = 0, p_mask: float = 0.15) -> TextLM:
        text = read_text(path)
        if arch == "encoder" and MASK_CHAR in text:
            where = text.index(MASK_CHAR)
            raise SourceError(f"--text: {str(path)!r} holds the encoder's mask character "
                              f"{MASK_CHAR!r} (first at character {where}); it stands for the "
                              "mask token in prompts and output, so the text must not contain "
                              "it: replace it in the file (or train the decoder)")
        tok = CharTokenizer.from_text(text)
        src = cls(os.path.abspath(path), tok.alphabet, file_digest(text),
                  min(length, len(text)), seed, arch, p_mask)
        src._corpus = TextCorpus(tok.encode(text), src.length)
        return src

    @property
    def tokenizer(self) -> CharTokenizer:
        return CharTokenizer(self.alphabet)

    @property
    def N_V(self) -> int:
        return len(self.alphabet) + (1 if self.arch == "encoder" else 0)

    def corpus(self) -> TextCorpus:
        if self._corpus is None:
            text = read_text(self.path)
            if file_digest(text) != self.sha256:
                raise SourceError(f"--text: {self.path!r} changed since the run started "
                                  f"(sha256 {file_digest(text)[:12]}..., recorded "
                                  f"{self.sha256[:12]}...)")
            self._corpus = TextCorpus(self.tokenizer.encode(text), self.length)
        return self._corpus

    def _make(self, part: np.ndarray, rng: np.random.Generator, batch_size: int) -> Batch:
        x = self.corpus().windows(part, rng, batch_size)
        if self.arch == "encoder":
            return mask_tokens(rng, x, self.p_mask, self.N_V - 1)
        return Batch(x)

    def batch(self, step: int, batch_size: int) -> Batch:
        train, _ = self.corpus().split()
        return self._make(train, stream_rng(self.seed, TRAIN_STREAM, step), batch_size)

    def validation_batch(self) -> Batch | None:
        _, val = self.corpus().split()
        if val is None:
            return None
        return self._make(val, stream_rng(self.seed, VALIDATION_STREAM), self.n_validation)

    def evaluate(self, log_probs: LogProbFn) -> dict[str, float]:
        val = self.validation_batch()
        if val is None:
            return {}
        logp = chunked_log_probs(log_probs, val)
        if self.arch == "encoder":
            nll = -target_log_probs(logp, val.targets)[val.masked]
            return {"val_loss": float(nll.mean()) if nll.size else float("nan")}
        loss, se = mean_and_stderr(-target_log_probs(logp[:, :-1], val.x[:, 1:]).mean(axis=1))
        return {"val_loss": loss, "val_loss_stderr": se}

    def limits(self) -> list[Limit]:
        return []

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "alphabet": self.alphabet,
                "sha256": self.sha256, "length": self.length, "seed": self.seed,
                "arch": self.arch, "p_mask": self.p_mask, "n_validation": self.n_validation}

    @property
    def vocab(self) -> str:
        """One character per token id; the encoder's mask token (id N_V - 1) is MASK_CHAR
        '_', always (a text holding '_' cannot train the encoder)."""
        if self.arch != "encoder":
            return self.alphabet
        return self.alphabet + MASK_CHAR

    def encode(self, text: str) -> np.ndarray:
        return CharTokenizer(self.vocab).encode(text)

    def decode(self, ids) -> str:
        return CharTokenizer(self.vocab).decode(ids)
