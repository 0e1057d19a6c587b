"""Shared set-up of the end-to-end tests (issue 8): one torch thread per test, so that
``pytest -n 2`` on the 2-core CI machine runs two tests side by side without oversubscribing."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
