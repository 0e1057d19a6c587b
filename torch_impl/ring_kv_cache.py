"""Static KV cache of the modern decoder: G (not H) heads, a ring buffer of w positions for a
windowed layer (spec: Algorithm 65, spec/algorithms/65-modern-d-transformer.md; memory in
spec/memory.md).

Layer l keeps two preallocated (B, G, C_l, d_head) buffers, C_l = min(w_l, capacity) for a
layer with window w_l and C_l = capacity otherwise. Position p lives in slot p mod C_l, so a
windowed layer never holds more than its w most recent positions: the query at position t sees
keys t - w + 1 .. t (w keys), and every one of them is still in the ring when t is written.
``positions`` says which absolute position each slot holds, so the caller builds the mask from
positions alone and the order of the slots never matters (attention is invariant to a
permutation of its keys).
"""

from __future__ import annotations

import torch

from formal_transformers.errors import SequenceLengthError

EMPTY = 2 ** 30  # the position of a slot never written: later than every query, so masked


class RingKVCache:
    """Keys and values of L layers: per layer (B, G, C_l, d_head), C_l = min(w_l, capacity)."""

    def __init__(self, windows: list[int | None], B: int, G: int, capacity: int, d_head: int,
                 dtype: torch.dtype, device: torch.device | str | None = None):
        self.slots = [capacity if w is None else min(w, capacity) for w in windows]
        self.k = [torch.zeros(B, G, C, d_head, dtype=dtype, device=device) for C in self.slots]
        self.v = [torch.zeros_like(k) for k in self.k]
        self.capacity = capacity
        self.length = 0

    def positions(self, layer: int, length: int | None = None) -> torch.Tensor:
        """The absolute position held by each slot of ``layer`` (EMPTY if none): (C_l,)."""
        n = self.length if length is None else length
        C = self.slots[layer]
        j = torch.arange(C, device=self.k[layer].device)
        if n <= C:
            return torch.where(j < n, j, torch.full_like(j, EMPTY))
        return n - 1 - torch.remainder(n - 1 - j, C)  # the latest p < n with p = j (mod C)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Attend-then-store for T new tokens k, v (B, G, T, d_head) at positions
        length .. length + T - 1.

        Returns the keys and values a query of this step may need -- the cached slots followed
        by the new tokens, (B, G, C_l + T, d_head) -- and their absolute positions (C_l + T,).
        Then writes the last min(T, C_l) new tokens into their slots.
        """
        start, T = self.length, k.shape[2]
        if start + T > self.capacity:
            raise SequenceLengthError(f"KV cache holds {self.capacity} positions; cannot append "
                                      f"{T} token(s) after {start}")
        C = self.slots[layer]
        new_pos = torch.arange(start, start + T, device=k.device)
        pos = torch.cat([self.positions(layer), new_pos])
        k_all = torch.cat([self.k[layer], k], dim=2)  # (B, G, C + T, d_head)
        v_all = torch.cat([self.v[layer], v], dim=2)
        keep = min(T, C)
        slots = torch.remainder(new_pos[T - keep:], C)
        self.k[layer][:, :, slots] = k[:, :, T - keep:]
        self.v[layer][:, :, slots] = v[:, :, T - keep:]
        return k_all, v_all, pos

    def advance(self, T: int) -> None:
        """Mark T more tokens as cached (after every layer has been updated)."""
        self.length += T

    def reset(self) -> None:
        """Forget every cached token (the buffers are reused)."""
        self.length = 0

    def nbytes(self) -> int:
        """Bytes of the key and value buffers: 2 B G d_head sum_l C_l elements."""
        return sum(t.numel() * t.element_size() for t in self.k + self.v)
