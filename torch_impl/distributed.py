"""Data-parallel training under torchrun: DDP or FSDP2 (spec: Algorithms 11-13 scaled out).

Every rank takes a contiguous, equal shard of each global batch. With ``strategy="ddp"`` each
rank holds the whole model and DDP averages the gradients over the ranks during backward; with
``strategy="fsdp"`` (FSDP2, ``torch.distributed.fsdp.fully_shard``: one unit per transformer
block, then the root for the embeddings, final norm and unembedding) each rank stores 1/W of
every parameter, gradient and optimizer moment, all-gathers a block's parameters just before
using them and reduce-scatters (averages) its gradients after. Either way each rank's objective
is the MEAN over its sequences of the spec's per-sequence loss (torch_impl/training.py), so the
average over W equal shards is the mean over the global batch: the update equals that of one
process on the full batch. Exactly so in real arithmetic; in floating point the two sums are
added in another order, so the tests allow a reduction-order tolerance (1e-6 absolute on the
float32 parameters after a few steps, the kind of bound PyTorch's own FSDP parity tests use).

    torchrun --nproc_per_node=2 -m torch_impl.distributed --strategy fsdp --steps 20

uses gloo on CPU and nccl on CUDA (one GPU per rank, LOCAL_RANK). ``launch_local`` starts W
local processes without torchrun (torch.multiprocessing spawn), for tests and notebooks.
``formal-transformers train --distributed fsdp --nproc 2`` runs the whole training loop this way
(progress bar, metrics, canonical checkpoints and resume as in one process).

Checkpoints: ``full_parameters`` gathers the canonical parameters from a wrapped model;
``save_sharded`` writes a torch.distributed.checkpoint (DCP) directory, one shard file per rank,
and ``sharded_to_canonical`` reads such a directory back in ONE process (no process group) as
canonical parameters, which ``formal_transformers.canonical.save_parameters`` stores as
safetensors.
"""

from __future__ import annotations

import argparse
import gc
import os
import socket
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import NoReturn

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from formal_transformers.atomic import write_json
from formal_transformers.canonical import init_parameters, save_parameters
from formal_transformers.errors import ConfigError
from formal_transformers.hyperparameters import (
    Config,
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
)
from torch_impl.models import CanonicalModel, model_class, model_from_canonical
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


STRATEGIES = ("ddp", "fsdp")


def check_strategy(strategy: str) -> str:
    """The data-parallel strategy, checked: 'ddp' or 'fsdp'."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"the distributed strategy must be one of {STRATEGIES}, "
                          f"got {strategy!r}")
    return strategy


def wrap(model: CanonicalModel, strategy: str) -> torch.nn.Module:
    """``model`` prepared for data-parallel training in the current process group.

    "ddp": a DistributedDataParallel replica (``.module`` is ``model``). "fsdp": ``model``
    itself, sharded in place by FSDP2: every transformer block (each element of the model's
    ModuleLists) is one unit (a cross-attention's K/V projection one more), the root holds
    the rest. Build optimizers after wrapping.
    """
    check_strategy(strategy)
    if strategy == "ddp":
        w = model.lm_head.weight
        return DistributedDataParallel(model, device_ids=[w.device.index] if w.is_cuda
                                       else None)
    from torch.distributed.fsdp import fully_shard

    for child in model.children():
        if isinstance(child, torch.nn.ModuleList):
            for block in child:
                # A decoder block's cross-attention K/V projection runs outside the block's
                # forward (EDTransformer.context, once per source sequence), so it is a unit
                # of its own: FSDP unshards a unit's parameters in its forward pre-hook only.
                for module in block.modules():
                    if getattr(module, "cross", False):
                        fully_shard(module.kv)
                fully_shard(block)
    fully_shard(model)
    return model


def unwrapped(model: torch.nn.Module) -> CanonicalModel:
    """The CanonicalModel inside a DDP wrapper (FSDP2 shards the model in place)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def full_parameters(config: Config, model: torch.nn.Module) -> dict[str, np.ndarray]:
    """The canonical parameters of a DDP- or FSDP-wrapped model, as full NumPy arrays.

    Collective: every rank of the group must call it (FSDP all-gathers the shards).
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    inner = unwrapped(model)
    full = get_model_state_dict(inner, options=StateDictOptions(full_state_dict=True))
    dtype = next(iter(full.values())).dtype
    plain = model_class(config)(config).to(dtype)
    plain.load_state_dict({k: v.detach().cpu() for k, v in full.items()})
    return plain.to_canonical()


def save_sharded(model: torch.nn.Module, directory: str) -> None:
    """Write the model's (sharded) state as a torch.distributed.checkpoint directory.

    Collective; each rank writes its own shards. ``sharded_to_canonical`` reads it back.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    dcp.save({"model": get_model_state_dict(unwrapped(model))}, checkpoint_id=directory)


def sharded_to_canonical(directory: str, config: Config, dtype: torch.dtype = torch.float32
                         ) -> dict[str, np.ndarray]:
    """Canonical parameters from a DCP directory of ``save_sharded``, in one process.

    No process group is needed: DCP reassembles every shard into the full tensors of a plain
    model of ``config``'s architecture. A directory of another architecture or size raises
    the loader's error (missing keys or shape mismatch) rather than loading partially.
    """
    import torch.distributed.checkpoint as dcp

    plain = model_class(config)(config).to(dtype)
    state = {"model": plain.state_dict()}
    with warnings.catch_warnings():  # "no process group: loading in a single process" is the point
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, checkpoint_id=directory)
    plain.load_state_dict(state["model"])
    return plain.to_canonical()


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
                        mask_token: int = 0, on_step: Callable[[int, float], None] | None = None,
                        strategy: str = "ddp", sharded_out: str | None = None
                        ) -> dict[str, np.ndarray]:
    """Train from canonical ``params`` on global ``batches`` inside a process group.

    Each rank takes its shard of every batch; ``strategy`` is "ddp" or "fsdp" (``wrap``);
    ``optimizer`` is "adamw" (make_adamw) or "sgd" (the spec's plain gradient descent with
    eta = lr). The global batch objective of every step (averaged over the ranks) goes to
    ``on_step(step, loss)`` on rank 0. Rank 0 writes the result to ``out`` (canonical
    save_parameters) and the per-step objectives to ``out/losses.json``; ``sharded_out``
    receives a DCP checkpoint from every rank. Returns the canonical parameters (all ranks).
    """
    check_strategy(strategy)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", torch.cuda.current_device()) if (
        dist.get_backend() == "nccl") else torch.device("cpu")
    model = wrap(model_from_canonical(config, params, device=device), strategy)
    opt = make_adamw(model, lr=lr) if optimizer == "adamw" else lr
    loss_fn = loss_function(config, mask_token)
    losses = []
    for step, batch in enumerate(batches):
        local = shard([t.to(device) for t in batch], rank, world)
        loss = train_step(model, opt, loss_fn, local, micro_batch_size)
        total = torch.tensor([loss], dtype=torch.float64, device=device)
        dist.all_reduce(total)  # equal shards: the mean of the local means
        losses.append(float(total) / world)
        if on_step is not None and rank == 0:
            on_step(step, losses[-1])
    result = full_parameters(config, model)
    if sharded_out is not None:
        save_sharded(model, sharded_out)
    if out is not None and rank == 0:
        save_parameters(out, config, result)
        write_json(os.path.join(out, "losses.json"), losses)
    return result


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now, for a local process group's store."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_spawned_rank(work: Callable[[], object]) -> NoReturn:
    """A spawned rank's life after it joined the group: ``work()``, wait for every rank (no
    rank tears gloo down while another still talks to it), leave the group and exit with
    status 0 without interpreter finalisation; on an error, leave the group and re-raise
    (the spawner reports it).

    Gloo's C++ worker threads can outlive ``destroy_process_group`` (FSDP and DDP keep
    references to the group); tearing the interpreter down under them aborts the process
    (``terminate called without an active exception``, SIGABRT) after the work succeeded --
    the failure pytorch/pytorch#179291 describes. A spawned rank has nothing left to finalise:
    results travel by file, written and closed before it exits.
    """
    try:
        work()
        dist.barrier()
    except BaseException:
        dist.destroy_process_group()
        raise
    gc.collect()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _entry(rank: int, world: int, port: int, backend: str, fn: Callable, args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    init_from_env(backend)
    run_spawned_rank(lambda: fn(*args))


def launch_local(world: int, fn: Callable, *args: object, backend: str = "gloo") -> None:
    """Run ``fn(*args)`` in ``world`` local processes joined in one process group.

    ``fn`` and ``args`` must be picklable (a module-level function); results travel by file.
    """
    mp.spawn(_entry, args=(world, free_port(), backend, fn, args), nprocs=world, join=True)


def main(argv: list[str] | None = None) -> None:
    """torchrun entry point: train a preset on synthetic token batches."""
    from formal_transformers.presets import get_preset

    p = argparse.ArgumentParser(description="DDP / FSDP2 training of a preset on random tokens")
    p.add_argument("--strategy", choices=STRATEGIES, default="ddp")
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
                        out=a.out, strategy=a.strategy,
                        on_step=lambda i, loss: print(f"step {i}: loss {loss:.4f}", flush=True))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
