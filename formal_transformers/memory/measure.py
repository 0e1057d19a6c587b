"""Measuring memory (spec/memory.md section 8): tracemalloc for NumPy, live tensor storage for
torch on CPU, the caching allocator's counter on CUDA.

- ``traced_peak``: peak of ``tracemalloc`` (every Python and NumPy allocation) while a
  function runs, above what was traced when it started.
- ``numpy_kept_bytes``: NumPy array data (tracemalloc domain of NumPy) that a function
  allocated and that is still alive when it returns -- e.g. the caches of a forward pass.
- ``TorchMemoryTracker``: a TorchDispatchMode that counts the bytes of every tensor storage
  an operator allocates until the storage is freed, so ``peak`` is the high-water mark of
  live tensor memory on CPU, where torch has no allocator statistics. Scratch space a kernel
  allocates and frees inside one operator is not a tensor and is not seen.
- ``saved_tensor_bytes``: the distinct storages autograd's graph holds for the backward
  pass when the forward pass returns.
- ``cuda_peak``: ``torch.cuda.max_memory_allocated`` around a function.
"""

from __future__ import annotations

import tracemalloc
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np


def _start_tracing() -> bool:
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    return started


def traced_peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    """(fn(), peak traced bytes above the traced bytes at the start of the call)."""
    started = _start_tracing()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        if started:
            tracemalloc.stop()
    return result, peak


def numpy_kept_bytes(fn: Callable[[], Any]) -> tuple[Any, int]:
    """(fn(), bytes of NumPy array data allocated by fn and alive when it returns)."""
    domain = np.lib.tracemalloc_domain
    only_numpy = [tracemalloc.DomainFilter(inclusive=True, domain=domain)]

    def numpy_bytes() -> int:
        snapshot = tracemalloc.take_snapshot().filter_traces(only_numpy)
        return sum(stat.size for stat in snapshot.statistics("filename"))

    started = _start_tracing()
    try:
        before = numpy_bytes()
        result = fn()
        kept = numpy_bytes() - before
    finally:
        if started:
            tracemalloc.stop()
    return result, kept


def _tracker_class():
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class TorchMemoryTracker(TorchDispatchMode):
        """Live and peak bytes of tensor storages allocated inside the ``with`` block.

        Outputs that alias an input (views, in-place and out= operators, read from the
        operator's schema) allocate nothing and are not counted. ``add_existing`` counts
        tensors made before the block (parameters, inputs) once, so that ``peak`` is the
        total; storages shared by several tensors count once.
        """

        def __init__(self) -> None:
            super().__init__()
            self.live = 0
            self.peak = 0
            self._sizes: dict[int, int] = {}

        def add_existing(self, tensors: Iterable[torch.Tensor]) -> None:
            for t in tensors:
                self._track(t)

        def reset_peak(self) -> None:
            self.peak = self.live

        def _track(self, t: torch.Tensor) -> None:
            storage = t.untyped_storage()
            key = storage._cdata
            if key in self._sizes:
                return
            size = storage.nbytes()
            self._sizes[key] = size
            self.live += size
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._free, key)

        def _free(self, key: int) -> None:
            self.live -= self._sizes.pop(key, 0)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            returns = func._schema.returns
            flat = tree_flatten(out)[0]
            if len(returns) == 1 and len(flat) > 1:  # one Tensor[] return
                aliased = [returns[0].alias_info is not None] * len(flat)
            else:
                aliased = [r.alias_info is not None for r in returns]
                aliased += [False] * (len(flat) - len(aliased))
            for t, alias in zip(flat, aliased, strict=False):
                if isinstance(t, torch.Tensor) and not alias:
                    self._track(t)
            return out

    return TorchMemoryTracker


def torch_memory_tracker():
    """A new TorchMemoryTracker (imports torch on first use)."""
    return _tracker_class()()


class _Packed:
    """What autograd holds for one saved tensor while the saved-tensor hooks are active."""

    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor: Any) -> None:
        self.tensor = tensor


def saved_tensor_bytes(fn: Callable[[], Any], exclude: Iterable[Any] = ()) -> tuple[Any, int]:
    """(fn(), bytes of the distinct storages that autograd's graph holds for the backward
    pass when fn returns), leaving out the storages of ``exclude`` (the parameters and
    inputs, which exist anyway).

    Each saved tensor is packed into a holder that autograd keeps in the node that saved it;
    a node that autograd drops during the forward pass (its output unused) drops the holder,
    and its storage no longer counts. A storage counts once while any holder holds it."""
    import torch

    skip = {t.untyped_storage()._cdata for t in exclude}
    saved: dict[int, list[int]] = {}  # storage address -> [bytes, live holders]

    def release(key: int) -> None:
        saved[key][1] -= 1

    def pack(t: torch.Tensor) -> _Packed:
        # a detached alias: holding a saved output itself (with its grad_fn) from the node
        # that saved it would be a reference cycle through C++ that keeps the node alive
        holder = _Packed(t.detach())
        storage = t.untyped_storage()
        key = storage._cdata
        if key not in skip:
            entry = saved.setdefault(key, [storage.nbytes(), 0])
            if entry[1] == 0:  # new, or an address reused after the last holder went
                entry[0] = storage.nbytes()
            entry[1] += 1
            weakref.finalize(holder, release, key)
        return holder

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda holder: holder.tensor):
        result = fn()
    return result, sum(n for n, holders in saved.values() if holders > 0)


def cuda_peak(fn: Callable[[], Any], device: Any = None) -> tuple[Any, int]:
    """(fn(), torch.cuda.max_memory_allocated during fn), counting what was allocated before."""
    import torch

    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    result = fn()
    torch.cuda.synchronize(device)
    return result, torch.cuda.max_memory_allocated(device)
