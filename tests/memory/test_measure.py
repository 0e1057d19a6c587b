"""The measuring instruments (spec/memory.md section 8) on allocations of known size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from formal_transformers.memory.measure import (
    numpy_kept_bytes,
    saved_tensor_bytes,
    torch_memory_tracker,
    traced_peak,
)


def test_traced_peak_sees_a_temporary_array():
    def f():
        a = np.ones(100_000)  # 800 kB, freed on return
        return float(a.sum())

    _, peak = traced_peak(f)
    assert 800_000 <= peak < 800_000 * 1.02


def test_numpy_kept_bytes_counts_what_survives_only():
    keep = []

    def f():
        np.ones(50_000)  # freed at once
        keep.append(np.zeros(10_000))

    _, kept = numpy_kept_bytes(f)
    assert kept == 80_000


def test_torch_tracker_counts_allocations_frees_and_not_views():
    x = torch.zeros(1000)  # existed before: counted once by add_existing
    tracker = torch_memory_tracker()
    tracker.add_existing([x])
    with tracker:
        y = torch.ones(2000)  # 8000 bytes
        v = y[:10].view(2, 5)  # a view allocates nothing
        z = y * 2  # another 8000
        del z
        x.add_(1)  # in place
    assert tracker.peak == 4000 + 8000 + 8000
    assert tracker.live == 4000 + 8000
    del y, v
    assert tracker.live == 4000


def test_saved_tensor_bytes_counts_distinct_saved_storages():
    w = torch.randn(10, 10, requires_grad=True)
    x = torch.randn(4, 10)
    # tanh saves its output (4 x 10 float32); the matmul saves x and w (excluded)
    _, saved = saved_tensor_bytes(lambda: torch.tanh(x @ w), exclude=[w, x])
    assert saved == 4 * 10 * 4


def test_saved_tensor_bytes_leaves_out_what_a_dropped_node_saved():
    w = torch.randn(10, 10, requires_grad=True)
    x = torch.randn(4, 10)

    def f():
        torch.tanh(x @ w)  # its output, which tanh saved, is dropped with its node
        return torch.exp(x @ w)  # exp saves its output: 4 x 10 float32

    assert saved_tensor_bytes(f, exclude=[w, x])[1] == 4 * 10 * 4


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_peak_reads_the_allocator():
    from formal_transformers.memory.measure import cuda_peak

    _, peak = cuda_peak(lambda: torch.empty(1 << 20, device="cuda"))
    assert peak >= 4 << 20
