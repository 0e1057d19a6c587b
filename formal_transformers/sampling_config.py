"""Hyperparameters of the sampling conventions and of speculative decoding (spec: Algorithms
60-61, spec/algorithms/60-sampling.md, 61-speculative-decoding.md).

``SamplingConfig`` is one frozen dataclass for Algorithm 60's hyperparameters: temperature
``tau``, ``top_k`` (None: off, i.e. N_V), ``top_p`` (1: off), ``min_p`` (0: off) and
``order``, the place of the temperature (a declared variant: "temperature_first" as in Hugging
Face transformers and vLLM, "truncation_first" as in llama.cpp's default chain). Every field is
validated in ``__post_init__`` with a ConfigError naming the field, the expected range and the
value received; 0 is never read as "off".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from formal_transformers.errors import ConfigError

ORDERS = ("temperature_first", "truncation_first")


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _is_int(value: object) -> bool:
    import numpy as np

    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class SamplingConfig:
    """Algorithm 60's hyperparameters; the defaults truncate nothing (Algorithm 14's line 5)."""

    tau: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    min_p: float = 0.0
    order: str = "temperature_first"

    def __post_init__(self) -> None:
        if not _is_real(self.tau) or self.tau <= 0:
            raise ConfigError(f"SamplingConfig.tau (temperature) must be a finite number > 0, "
                              f"got {self.tau!r}")
        if self.top_k is not None and (not _is_int(self.top_k) or self.top_k < 1):
            raise ConfigError(f"SamplingConfig.top_k must be an integer >= 1 (None: no top-k), "
                              f"got {self.top_k!r}")
        if not _is_real(self.top_p) or not 0 < self.top_p <= 1:
            raise ConfigError(f"SamplingConfig.top_p must be a number in (0, 1] (1: no top-p), "
                              f"got {self.top_p!r}")
        if not _is_real(self.min_p) or not 0 <= self.min_p <= 1:
            raise ConfigError(f"SamplingConfig.min_p must be a number in [0, 1] (0: no min-p), "
                              f"got {self.min_p!r}")
        if self.order not in ORDERS:
            raise ConfigError(f"SamplingConfig.order must be one of {ORDERS}, got {self.order!r}")

    def k_for(self, N_V: int) -> int:
        """The effective k: top_k clipped to N_V (None means N_V, no truncation)."""
        if self.top_k is None:
            return N_V
        return min(int(self.top_k), N_V)

    @property
    def truncates(self) -> bool:
        """Whether any truncation rule is active."""
        return self.top_k is not None or self.top_p < 1 or self.min_p > 0


def check_draft_length(k: object) -> int:
    """Speculative decoding's draft length k (Algorithm 61): an integer >= 1."""
    if not _is_int(k) or k < 1:
        raise ConfigError(f"draft length k must be an integer >= 1, got {k!r}")
    return int(k)
