"""Data-parallel training with torch.distributed DDP, under torchrun (spec: Algorithms 11-13).

Every rank holds the whole model and a contiguous, equal shard of each global batch; DDP
averages the gradients over ranks during backward. Each rank's objective is the MEAN over its
sequences of the spec's per-sequence loss (torch_impl/training.py), so the average over W
equal shards is the mean over the global batch: the update equals that of one process on the
full batch (tested to 1e-6 with two gloo processes on CPU).

    torchrun --nproc_per_node=2 -m torch_impl.distributed --preset tiny-decoder --steps 20

uses gloo on CPU and nccl on CUDA (one GPU per rank, LOCAL_RANK). ``launch_local`` starts W
local processes without torchrun (torch.multiprocessing spawn), for tests and notebooks.
FSDP is not wrapped here: at the sizes this project trains, DDP's replicated parameters fit.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from formal_transformers.canonical import init_parameters, save_parameters
from formal_transformers.errors import ConfigError
from formal_transformers.hyperparameters import (
    Config,
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
)
from torch_impl.models import model_from_canonical
from torch_impl.training import (
    Batch,
    LossFn,
    d_losses,
    e_losses,
    ed_losses,
    make_adamw,
    train_step,
)


def init_from_env(backend: str | None = None) -> tuple[int, int]:
    """Join the process group described by torchrun's environment; returns (rank, world)."""
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise ConfigError(f"environment variable {var} is not set: start this under "
                              "torchrun (or launch_local)")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=int(os.environ["RANK"]),
                                world_size=int(os.environ["WORLD_SIZE"]))
    return dist.get_rank(), dist.get_world_size()


def shard(batch: Batch, rank: int, world: int) -> list[torch.Tensor]:
    """Rank ``rank``'s contiguous share of a global batch; B must be divisible by world."""
    B = batch[0].shape[0]
    if B % world:
        raise ConfigError(f"the global batch size B = {B} must be divisible by the number of "
                          f"processes ({world}) so that every rank averages the same count")
    n = B // world
    return [t[rank * n:(rank + 1) * n] for t in batch]


def loss_function(config: Config, mask_token: int = 0) -> LossFn:
    """The per-sequence loss of the architecture's training algorithm (Algs 11-13)."""
    if isinstance(config, DTransformerConfig):
        return d_losses
    if isinstance(config, EDTransformerConfig):
        return ed_losses

    def masked_lm(model, batch: Batch) -> torch.Tensor:
        return e_losses(model, batch, mask_token)

    assert isinstance(config, ETransformerConfig)
    return masked_lm


def train_data_parallel(config: Config, params: Mapping[str, np.ndarray],
                        batches: Iterable[Batch], lr: float = 1e-3, optimizer: str = "adamw",
                        micro_batch_size: int | None = None, out: str | None = None,
                        mask_token: int = 0, on_step: Callable[[int, float], None] | None = None
                        ) -> dict[str, np.ndarray]:
    """Train from canonical ``params`` on global ``batches`` inside a process group.

    Each rank takes its shard of every batch; ``optimizer`` is "adamw" (make_adamw) or
    "sgd" (the spec's plain gradient descent with eta = lr). Rank 0 writes the result to
    ``out`` (canonical save_parameters) when given. ``on_step(step, loss)`` receives the
    global batch objective (averaged over the ranks) on rank 0. Returns the canonical parameters.
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", torch.cuda.current_device()) if (
        dist.get_backend() == "nccl") else torch.device("cpu")
    model = model_from_canonical(config, params, device=device)
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                  else None)
    opt = make_adamw(ddp, lr=lr) if optimizer == "adamw" else lr
    loss_fn = loss_function(config, mask_token)
    for step, batch in enumerate(batches):
        local = shard([t.to(device) for t in batch], rank, world)
        loss = train_step(ddp, opt, loss_fn, local, micro_batch_size)
        if on_step is not None:
            total = torch.tensor([loss], dtype=torch.float64, device=device)
            dist.all_reduce(total)  # equal shards: the mean of the local means
            if rank == 0:
                on_step(step, float(total) / world)
    result = model.to_canonical()
    if out is not None and rank == 0:
        save_parameters(out, config, result)
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(rank: int, world: int, port: int, backend: str, fn: Callable, args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    init_from_env(backend)
    try:
        fn(*args)
        dist.barrier()  # no rank tears gloo down while another still talks to it
    finally:
        dist.destroy_process_group()


def launch_local(world: int, fn: Callable, *args: object, backend: str = "gloo") -> None:
    """Run ``fn(*args)`` in ``world`` local processes joined in one process group.

    ``fn`` and ``args`` must be picklable (a module-level function); results travel by file.
    """
    mp.spawn(_entry, args=(world, _free_port(), backend, fn, args), nprocs=world, join=True)


def main(argv: list[str] | None = None) -> None:
    """torchrun entry point: train a preset on synthetic token batches."""
    from formal_transformers.presets import get_preset

    p = argparse.ArgumentParser(description="DDP training of a preset on random tokens")
    p.add_argument("--preset", default="tiny-decoder")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=8, help="global batch size")
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--micro-batch-size", type=int, default=None)
    p.add_argument("--out", default=None, help="directory for the trained parameters")
    a = p.parse_args(argv)
    config = get_preset(a.preset)
    if not isinstance(config, DTransformerConfig):
        raise ConfigError("the synthetic-data entry point trains decoder presets only")
    init_from_env()
    params = init_parameters(config, np.random.default_rng(0), dtype=np.float32)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randint(0, config.N_V, (a.batch_size, a.length), generator=g),)
               for _ in range(a.steps)]
    train_data_parallel(config, params, batches, a.lr, micro_batch_size=a.micro_batch_size,
                        out=a.out, on_step=lambda i, loss: print(f"step {i}: loss {loss:.4f}",
                                                                 flush=True))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
