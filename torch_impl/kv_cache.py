"""Static, preallocated key/value cache for decoding (spec: Algorithms 14-15, fast path).

Inference (Algs 14-15) re-runs the transformer on a sequence that grows by one token per step.
With causal self-attention the keys and values of the tokens already seen never change, so
they are computed once and kept here; each step projects only the new token. The buffers are
allocated once, for the longest sequence the call can reach, so a decode step allocates no
cache memory and attends to a view ``k[:, :, :length]``.
"""

from __future__ import annotations

import torch

from formal_transformers.errors import SequenceLengthError


class KVCache:
    """Keys and values of L self-attention layers: per layer two (B, H, capacity, d_head)
    buffers, ``k[l]`` and ``v[l]``.

    ``length`` tokens are cached; a forward pass appends T tokens to every layer with
    ``update`` and then calls ``advance(T)`` once. ``cross`` holds, for encoder-decoder
    models, each decoder layer's keys and values of the encoder output (computed once).
    """

    def __init__(self, L: int, B: int, H: int, capacity: int, d_head: int,
                 dtype: torch.dtype, device: torch.device | str | None = None):
        # One tensor per layer, not views of one (L, ...) tensor: a compiled step that writes
        # a layer's buffer in place then mutates an input, not a view of one, and inductor
        # writes the new position alone instead of copying the whole cache back every step.
        shape = (B, H, capacity, d_head)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(L)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(L)]
        self.capacity = capacity
        self.length = 0
        self.cross: list[tuple[torch.Tensor, torch.Tensor]] = []
        # padded decoding (torch_impl.padding): which cached positions hold real tokens
        self.real = torch.ones((B, capacity), dtype=torch.bool, device=device)
        self.padded = False

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Write k, v (B, H, T, d_head) after the cached tokens of ``layer``.

        Returns the keys and values of all tokens so far, (B, H, length + T, d_head) views,
        and the offset (= length) of the first new token.
        """
        start, end = self.length, self.length + k.shape[2]
        if end > self.capacity:
            raise SequenceLengthError(f"KV cache holds {self.capacity} positions; cannot append "
                                      f"{k.shape[2]} token(s) after {start}")
        k_all, v_all = self.k[layer], self.v[layer]  # (B, H, capacity, d_head)
        k_all[:, :, start:end] = k
        v_all[:, :, start:end] = v
        return k_all[:, :, :end], v_all[:, :, :end], start

    def advance(self, T: int) -> None:
        """Mark T more tokens as cached (after every layer has been updated)."""
        self.length += T

    def reset(self) -> None:
        """Forget every cached token (the buffers are reused)."""
        self.length = 0
        self.cross = []
        self.real.fill_(True)
        self.padded = False
