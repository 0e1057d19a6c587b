"""FSDP2 (fully_shard) on two gloo CPU processes gives the same per-step objectives and the same
updated canonical parameters as one process on the full batch; DDP and FSDP gradient
accumulation over micro-batches equals the large batch; a sharded (DCP) checkpoint reads back
as canonical parameters in one process (spec: Algorithms 11-13 scaled out;
torch_impl/distributed.py states the reduction-order tolerance)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch_cases import assert_close

from formal_transformers.canonical import init_parameters, load_parameters
from formal_transformers.errors import ConfigError
from formal_transformers.hyperparameters import DTransformerConfig, EDTransformerConfig
from torch_impl.distributed import (
    check_strategy,
    launch_local,
    sharded_to_canonical,
    train_data_parallel,
)
from torch_impl.models import model_from_canonical
from torch_impl.training import d_losses, ed_losses, make_adamw, train_step

# float32 parameters after 3 steps: the shards' gradients are summed in another order than
# one process sums the full batch's, so agreement is to rounding, not bit for bit.
REDUCTION_ORDER_TOL = 1e-6


def _single_process(config, params, batches, lr, optimizer, loss_fn, micro=None):
    model = model_from_canonical(config, params)
    opt = make_adamw(model, lr=lr) if optimizer == "adamw" else lr
    losses = [train_step(model, opt, loss_fn, batch, micro) for batch in batches]
    return losses, model.to_canonical()


def _compare(params, single, sharded, what):
    moved = max(float(np.abs(single[k] - params[k]).max()) for k in params)
    assert moved > 1e-3, "training did not move the parameters: the comparison would be empty"
    assert sharded.keys() == single.keys()
    for name in params:
        assert_close(sharded[name], single[name], name, what, REDUCTION_ORDER_TOL, scaled=False)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_fsdp_on_two_ranks_equals_one_process_on_the_full_batch(tmp_path, optimizer):
    """3 steps, global batch 4 = 2 ranks x 2 sequences: losses per step and parameters."""
    config = DTransformerConfig(N_V=13, l_max=8, d_e=8, d_mlp=16, L=2, H=2)
    params = init_parameters(config, np.random.default_rng(0), std=0.3, dtype=np.float32)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(0, config.N_V, (4, 8), generator=g),) for _ in range(3)]
    lr = 0.05 if optimizer == "sgd" else 1e-2
    launch_local(2, train_data_parallel, config, params, batches, lr, optimizer, None,
                 str(tmp_path), 0, None, "fsdp", str(tmp_path / "dcp"))
    _, fsdp_params = load_parameters(tmp_path)
    fsdp_losses = json.loads((tmp_path / "losses.json").read_text())

    losses, single = _single_process(config, params, batches, lr, optimizer, d_losses)
    assert len(fsdp_losses) == len(batches)
    np.testing.assert_allclose(fsdp_losses, losses, rtol=1e-6, atol=0)
    if optimizer == "sgd":
        _compare(params, single, fsdp_params, "FSDP vs one process")
    else:
        # Adam divides by sqrt(v): b_k's gradient is zero in exact arithmetic (softmax ignores a
        # shift), so its float32 rounding noise is normalised to steps of size lr. Compare
        # every other parameter to rounding and b_k only to the scale of those steps.
        for name in params:
            tol = 3 * 3 * lr if name.endswith("b_k") else 1e-5
            assert_close(fsdp_params[name], single[name], name, "FSDP+AdamW vs one process",
                         tol, scaled=False)

    # The sharded checkpoint (one DCP shard file per rank) reads back, in this one process and
    # without a process group, as exactly the canonical parameters rank 0 gathered.
    assert len(list((tmp_path / "dcp").glob("*.distcp"))) == 2
    from_dcp = sharded_to_canonical(str(tmp_path / "dcp"), config)
    for name in params:
        np.testing.assert_array_equal(from_dcp[name], fsdp_params[name], err_msg=name)


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_gradient_accumulation_over_micro_batches_equals_the_large_batch(tmp_path, strategy):
    """Micro-batches of 1 on each rank (DDP no_sync / FSDP2 set_requires_gradient_sync:
    the reduction runs on the last micro-batch only) equal one process on the global batch of
    6 without accumulation; encoder-decoder (two inputs per batch), plain gradient descent."""
    config = EDTransformerConfig(N_V=11, l_max=6, d_e=8, d_mlp=16, L_enc=1, L_dec=1, H=2)
    params = init_parameters(config, np.random.default_rng(1), std=0.3, dtype=np.float32)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randint(0, config.N_V, (6, 5), generator=g),
                torch.randint(0, config.N_V, (6, 6), generator=g)) for _ in range(2)]
    launch_local(2, train_data_parallel, config, params, batches, 0.05, "sgd", 1,
                 str(tmp_path), 0, None, strategy)
    _, dp_params = load_parameters(tmp_path)
    _, single = _single_process(config, params, batches, 0.05, "sgd", ed_losses)
    _compare(params, single, dp_params, f"{strategy} accumulation vs the large batch")


def test_an_unknown_strategy_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match=r"one of \('ddp', 'fsdp'\), got 'zero3'"):
        check_strategy("zero3")
