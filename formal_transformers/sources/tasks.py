"""The built-in sources: one class per (task, architecture), each with exact limits.

- ``MarkovLM``      decoder, next-token prediction on an order-k chain (floor: entropy rate)
- ``MaskedMarkov``  encoder, masked-token recovery on the chain (Bayes accuracy and loss)
- ``Seq2Seq``       encoder-decoder, reversal or copying (floor: loss 0, exact match 1)

The user's own text (``--text FILE``) lives in ``formal_transformers.sources.text``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
    symbol_names,
    target_log_probs,
)
from formal_transformers.sources.markov import MarkovChain
from formal_transformers.sources.masked import bayes_scores, posterior_marginals
from formal_transformers.sources.seq2seq import Seq2SeqTask
from formal_transformers.sources.text import CharTokenizer


class _SymbolCodec:
    """One printable character per token id: the symbols 'a', 'b', ... then the specials."""

    S: int
    specials: tuple[str, ...] = ()

    @property
    def vocab(self) -> str:
        return symbol_names(self.S) + "".join(self.specials)

    def decode(self, ids) -> str:
        return CharTokenizer(self.vocab).decode(ids)

    def encode(self, text: str) -> np.ndarray:
        return CharTokenizer(self.vocab).encode(text)


@dataclass
class MarkovLM(_SymbolCodec):
    """Decoder source: stationary sequences of an order-k Markov chain (spec: Algorithm 13).

    Validation loss is measured at target positions t >= k, where the floor is exactly the
    entropy rate; ``val_loss_all`` covers every target and is bounded by ``floor_all``.
    """

    chain: MarkovChain
    length: int = 64
    seed: int = 0
    n_validation: int = 2048
    name: str = "markov"
    arch: str = "decoder"

    @property
    def N_V(self) -> int:
        return self.chain.S

    @property
    def S(self) -> int:  # type: ignore[override]
        return self.chain.S

    def batch(self, step: int, batch_size: int) -> Batch:
        rng = stream_rng(self.seed, TRAIN_STREAM, step)
        return Batch(self.chain.sample(rng, batch_size, self.length))

    def validation_batch(self) -> Batch:
        rng = stream_rng(self.seed, VALIDATION_STREAM)
        return Batch(self.chain.sample(rng, self.n_validation, self.length))

    def evaluate(self, log_probs: LogProbFn) -> dict[str, float]:
        val = self.validation_batch()
        x, k = val.x, self.chain.k
        logq = chunked_log_probs(log_probs, val)[:, :-1, : self.N_V]  # predicts x[:, 1:]
        nll = -target_log_probs(logq, x[:, 1:])  # (B, l-1), target t = column + 1
        p = self.chain.next_token_probabilities(x)[:, 1:]  # true P(x[t] | x[0:t])
        kl = (p * (np.log(p) - logq)).sum(axis=2)
        loss, se = mean_and_stderr(nll[:, k - 1:].mean(axis=1))
        excess, excess_se = mean_and_stderr(kl[:, k - 1:].mean(axis=1))
        floors = self.chain.conditional_entropies(self.length)[1:]
        return {"val_loss": loss, "val_loss_stderr": se, "val_loss_all": float(nll.mean()),
                "floor_all": float(floors.mean()), "kl_excess": excess,
                "kl_excess_stderr": excess_se, "val_tokens": int(nll[:, k - 1:].size)}

    def limits(self) -> list[Limit]:
        return [Limit("val_loss", self.chain.entropy_rate(), "entropy rate")]

    def to_dict(self) -> dict[str, Any]:
        c = self.chain
        return {"name": self.name, "S": c.S, "k": c.k, "alpha": c.alpha, "seed": self.seed,
                "length": self.length, "n_validation": self.n_validation}


@dataclass
class MaskedMarkov(_SymbolCodec):
    """Encoder source: masked-token recovery on the chain (spec: Algorithm 12).

    Each position is masked independently with probability p_mask (input: ``mask_token`` = S);
    the limits are the exact Bayes accuracy and loss on the held-out set (see ``masked``).
    """

    chain: MarkovChain
    length: int = 32
    p_mask: float = 0.15
    seed: int = 0
    n_validation: int = 4096
    name: str = "masked-markov"
    arch: str = "encoder"
    specials: tuple[str, ...] = ("_",)
    _bayes: dict[str, float] | None = field(default=None, repr=False)

    @property
    def S(self) -> int:  # type: ignore[override]
        return self.chain.S

    @property
    def N_V(self) -> int:
        return self.chain.S + 1

    @property
    def mask_token(self) -> int:
        return self.chain.S

    def _make(self, rng: np.random.Generator, batch_size: int) -> Batch:
        x = self.chain.sample(rng, batch_size, self.length)
        return mask_tokens(rng, x, self.p_mask, self.mask_token)

    def batch(self, step: int, batch_size: int) -> Batch:
        return self._make(stream_rng(self.seed, TRAIN_STREAM, step), batch_size)

    def validation_batch(self) -> Batch:
        return self._make(stream_rng(self.seed, VALIDATION_STREAM), self.n_validation)

    def evaluate(self, log_probs: LogProbFn) -> dict[str, float]:
        val = self.validation_batch()
        logp = chunked_log_probs(log_probs, val)
        x, masked = val.targets, val.masked
        pred = logp.argmax(axis=2)
        q = posterior_marginals(self.chain, x, masked)
        q = np.concatenate([q, np.zeros(q.shape[:2] + (1,))], axis=2)  # the mask token: p = 0
        scores = bayes_scores(q, x, masked, predictions=pred)
        return {"val_loss": float(-target_log_probs(logp, x)[masked].mean()),
                "val_accuracy": float((pred == x)[masked].mean()), **scores}

    def limits(self) -> list[Limit]:
        if self._bayes is None:
            val = self.validation_batch()
            q = posterior_marginals(self.chain, val.targets, val.masked)
            self._bayes = bayes_scores(q, val.targets, val.masked)
        return [Limit("val_accuracy", self._bayes["bayes_accuracy"], "Bayes accuracy"),
                Limit("val_loss", self._bayes["bayes_loss"], "Bayes loss")]

    def to_dict(self) -> dict[str, Any]:
        c = self.chain
        return {"name": self.name, "S": c.S, "k": c.k, "alpha": c.alpha, "seed": self.seed,
                "length": self.length, "p_mask": self.p_mask, "n_validation": self.n_validation}


@dataclass
class Seq2Seq(_SymbolCodec):
    """Encoder-decoder source: reversal or copying (spec: Algorithm 11).

    ``exact_match`` counts sequences whose every teacher-forced argmax is right -- the same
    event as greedy decoding reproducing the whole target (a greedy decode can only leave the
    target's path at a position where the teacher-forced argmax is wrong).
    """

    task: Seq2SeqTask
    seed: int = 0
    n_validation_per_length: int = 64
    arch: str = "encoder-decoder"
    specials: tuple[str, ...] = ("^", "$")

    @property
    def name(self) -> str:
        return self.task.task

    @property
    def S(self) -> int:  # type: ignore[override]
        return self.task.S

    @property
    def N_V(self) -> int:
        return self.task.N_V

    @property
    def length(self) -> int:
        return self.task.l_max

    def batch(self, step: int, batch_size: int) -> Batch:
        z, x = self.task.sample(stream_rng(self.seed, TRAIN_STREAM, step), batch_size)
        return Batch(x, z=z)

    def validation_batches(self) -> list[Batch]:
        """One held-out batch per length n = 1 .. max_len."""
        rng = stream_rng(self.seed, VALIDATION_STREAM)
        out = []
        for n in range(1, self.task.max_len + 1):
            z, x = self.task.sample(rng, self.n_validation_per_length, n)
            out.append(Batch(x, z=z))
        return out

    def validation_batch(self) -> Batch:
        return self.validation_batches()[-1]

    def evaluate(self, log_probs: LogProbFn) -> dict[str, float]:
        losses, correct, exact = [], [], []
        for val in self.validation_batches():
            logp = chunked_log_probs(log_probs, val)[:, :-1]
            target = val.x[:, 1:]
            losses.append(-target_log_probs(logp, target))
            hit = logp.argmax(axis=2) == target
            correct.append(hit.ravel())
            exact.append(hit.all(axis=1))
        return {"val_loss": float(np.concatenate([v.ravel() for v in losses]).mean()),
                "val_token_accuracy": float(np.concatenate(correct).mean()),
                "val_exact_match": float(np.concatenate(exact).mean()),
                "val_sequences": int(sum(len(e) for e in exact))}

    def limits(self) -> list[Limit]:
        return [Limit("val_loss", 0.0, "Bayes loss (deterministic map)"),
                Limit("val_exact_match", 1.0, "Bayes exact match")]

    def to_dict(self) -> dict[str, Any]:
        t = self.task
        return {"name": self.name, "S": t.S, "max_len": t.max_len, "seed": self.seed,
                "n_validation_per_length": self.n_validation_per_length}
