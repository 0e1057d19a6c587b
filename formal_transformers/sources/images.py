"""A synthetic image source with an exactly computable Bayes posterior (issue 17).

Each class k has a template T_k, a C x P x P patch drawn once from the seed. An image of class
k is all zeros except that T_k is pasted at one of the n_h x n_w patch-aligned positions, drawn
uniformly, and then Gaussian noise N(0, sigma^2) is added to every pixel. Classes are drawn
uniformly. Because the noise is Gaussian and the position uniform, the posterior of the class
is exact and cheap: with I_q the patch of I at position q,

    log p(k | I) = log sum_q exp( <I_q, T_k> / sigma^2 - ||T_k||^2 / (2 sigma^2) ) + const

(the ||I||^2 term is the same for every class and position). The Bayes classifier takes its
argmax. Its accuracy, an expectation over images, is estimated on the held-out set itself
(every held-out image's Bayes decision is computed exactly), with the Monte-Carlo standard
error sqrt(a (1 - a) / n); the model is compared with it on the same images (a paired
comparison: the shared sampling noise cancels). The Bayes log loss is E[-log p(y | I)].

A ViT can represent the Bayes rule: the patch projection computes the template correlations
<I_q, T_k>, and the class token's attention over the patches is a soft maximum over positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from formal_transformers.errors import SourceError
from formal_transformers.sources.base import (
    TRAIN_STREAM,
    VALIDATION_STREAM,
    Batch,
    Limit,
    stream_rng,
)


def logsumexp(a: np.ndarray, axis: int, keepdims: bool = False) -> np.ndarray:
    """log sum exp along ``axis``, shifted by the maximum (no overflow)."""
    m = np.max(a, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


@dataclass
class TemplateImages:
    """Source "images" for the ViT classifier: Batch.x images (B, C, h, w), targets (B,)."""

    n_classes: int = 4
    C: int = 1
    patch_size: int = 3
    grid: int = 3  # n_h = n_w
    sigma: float = 0.6
    seed: int = 0
    n_validation: int = 4096
    name: str = "images"
    arch: str = "vit"
    _templates: np.ndarray = field(init=False, repr=False)
    _bayes: dict[str, float] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("n_classes", "C", "patch_size", "grid", "n_validation"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise SourceError(f"images: {name} must be an integer >= 1, got {v!r}")
        if self.n_classes < 2:
            raise SourceError(f"images: n_classes must be >= 2, got {self.n_classes}")
        if not (isinstance(self.sigma, (int, float)) and 0 < self.sigma < float("inf")):
            raise SourceError(f"images: sigma must be a finite number > 0, got {self.sigma!r}")
        rng = np.random.default_rng([int(self.seed), 0x1A6E])
        T = rng.standard_normal((self.n_classes, self.C, self.patch_size, self.patch_size))
        self._templates = T / np.sqrt((T ** 2).sum(axis=(1, 2, 3), keepdims=True)) * 2.0

    # -- the generating process ----------------------------------------------------------------
    @property
    def side(self) -> int:
        return self.grid * self.patch_size

    @property
    def model_fields(self) -> dict[str, int]:
        """The ViTConfig fields the data fix: channels, image size, patch size, classes."""
        return {"C": self.C, "height": self.side, "width": self.side,
                "patch_size": self.patch_size, "n_classes": self.n_classes}

    def _make(self, rng: np.random.Generator, n: int) -> tuple[Batch, np.ndarray]:
        P, g = self.patch_size, self.grid
        y = rng.integers(0, self.n_classes, n)
        where = rng.integers(0, g * g, n)
        I = self.sigma * rng.standard_normal((n, self.C, self.side, self.side))
        for b in range(n):
            r, c = divmod(int(where[b]), g)
            I[b, :, r * P:(r + 1) * P, c * P:(c + 1) * P] += self._templates[y[b]]
        return Batch(I.astype(np.float32), targets=y), where

    def batch(self, step: int, batch_size: int) -> Batch:
        return self._make(stream_rng(self.seed, TRAIN_STREAM, step), batch_size)[0]

    def validation_batch(self) -> Batch:
        return self._make(stream_rng(self.seed, VALIDATION_STREAM), self.n_validation)[0]

    def sample(self, seed: int, n: int) -> tuple[Batch, np.ndarray]:
        """n fresh images from their own stream (``classify``), and each template's position."""
        return self._make(np.random.default_rng([int(seed), 0x5A3]), n)

    # -- the exact posterior -------------------------------------------------------------------
    def log_posterior(self, images: np.ndarray) -> np.ndarray:
        """log p(k | I) for images (B, C, h, w): (B, n_classes), exact."""
        P, g, s2 = self.patch_size, self.grid, self.sigma ** 2
        I = np.asarray(images, dtype=np.float64)
        patches = I.reshape(I.shape[0], self.C, g, P, g, P).transpose(0, 2, 4, 1, 3, 5)
        corr = np.einsum("bqrcij,kcij->bqrk", patches, self._templates).reshape(
            I.shape[0], g * g, self.n_classes)  # <I_q, T_k>
        energy = corr / s2 - (self._templates ** 2).sum(axis=(1, 2, 3)) / (2 * s2)
        scores = logsumexp(energy, axis=1)  # (B, K)
        return scores - logsumexp(scores, axis=1, keepdims=True)

    def bayes(self) -> dict[str, float]:
        """The Bayes classifier on the held-out images: accuracy (with its Monte-Carlo
        standard error) and log loss."""
        if not self._bayes:
            val = self.validation_batch()
            lp = self.log_posterior(val.x)
            correct = lp.argmax(axis=1) == val.targets
            a = float(correct.mean())
            self._bayes = {"bayes_accuracy": a,
                           "bayes_accuracy_stderr": float(np.sqrt(a * (1 - a) / len(val))),
                           "bayes_loss": float(-lp[np.arange(len(val)), val.targets].mean())}
        return self._bayes

    # -- what the training loop needs ----------------------------------------------------------
    def evaluate(self, log_probs) -> dict[str, float]:
        """log_probs(batch) -> (B, n_classes); accuracy and loss against the Bayes rule on the
        same images."""
        val = self.validation_batch()
        parts = [log_probs(val.rows(i, i + 512)) for i in range(0, len(val), 512)]
        lp = np.concatenate(parts)
        y = val.targets
        accuracy = float((lp.argmax(axis=1) == y).mean())
        bayes = self.bayes()
        return {"val_loss": float(-lp[np.arange(len(val)), y].mean()),
                "val_accuracy": accuracy,
                "bayes_accuracy": bayes["bayes_accuracy"],
                "accuracy_gap": bayes["bayes_accuracy"] - accuracy}

    def limits(self) -> list[Limit]:
        b = self.bayes()
        return [Limit("val_accuracy", b["bayes_accuracy"],
                      f"Bayes accuracy (± {b['bayes_accuracy_stderr']:.3f})"),
                Limit("val_loss", b["bayes_loss"], "Bayes loss")]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "n_classes": self.n_classes, "C": self.C,
                "patch_size": self.patch_size, "grid": self.grid, "sigma": self.sigma,
                "seed": self.seed, "n_validation": self.n_validation}

    # one "token" per class, so that reports that print tokens still can
    @property
    def N_V(self) -> int:
        return self.n_classes

    @property
    def length(self) -> int:
        return self.grid * self.grid + 1

    vocab = ""

    def encode(self, text: str) -> np.ndarray:
        raise SourceError("the images source has no text: use `formal-transformers classify`")

    def decode(self, ids) -> str:
        raise SourceError("the images source has no text: use `formal-transformers classify`")
