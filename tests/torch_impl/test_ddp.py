"""DDP on two gloo CPU processes gives the same update as one process on the full batch
(spec: Algorithms 11-13 scaled out; loss normalisation in torch_impl/training.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_cases import assert_close

from formal_transformers.canonical import init_parameters, load_parameters
from formal_transformers.errors import ConfigError
from formal_transformers.hyperparameters import DTransformerConfig
from torch_impl.distributed import launch_local, shard, train_data_parallel
from torch_impl.models import model_from_canonical
from torch_impl.training import d_losses, train_step


def test_two_gloo_processes_update_the_parameters_like_one_process_on_the_full_batch(tmp_path):
    """3 steps of the spec's gradient descent, global batch 4 = 2 ranks x 2 sequences,
    micro-batches of 1 (so the no_sync accumulation path runs too); float32, to 1e-6.

    Plain gradient descent, not AdamW, on purpose: Adam is invariant to the scale of the
    gradient, so it would not notice a sum-vs-mean normalisation error; and it divides by
    sqrt(v), which blows the float32 rounding noise of b_k's gradient (zero in exact
    arithmetic: softmax ignores a shift) up to steps of size lr.
    """
    config = DTransformerConfig(N_V=13, l_max=8, d_e=8, d_mlp=16, L=2, H=2)
    params = init_parameters(config, np.random.default_rng(0), std=0.3, dtype=np.float32)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(0, config.N_V, (4, 8), generator=g),) for _ in range(3)]
    launch_local(2, train_data_parallel, config, params, batches, 0.05, "sgd", 1, str(tmp_path))
    _, ddp_params = load_parameters(tmp_path)

    model = model_from_canonical(config, params)
    for batch in batches:
        train_step(model, 0.05, d_losses, batch)
    single = model.to_canonical()
    moved = max(float(np.abs(single[k] - params[k]).max()) for k in params)
    assert moved > 1e-3, "training did not move the parameters: the comparison would be empty"
    for name in params:
        assert_close(ddp_params[name], single[name], name, "DDP vs one process", 1e-6,
                     scaled=False)


def test_a_batch_that_does_not_split_evenly_over_the_ranks_is_refused():
    with pytest.raises(ConfigError, match="divisible by the number of processes"):
        shard([torch.zeros(5, 3)], 0, 2)
