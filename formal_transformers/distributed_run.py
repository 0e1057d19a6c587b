"""A training run on several local processes: DDP or FSDP2 over gloo (CPU) or nccl (CUDA).

``train_distributed`` is ``training_run.train`` on ``nproc`` ranks of one process group. The
calling process is rank 0: it keeps the progress bar (``on_record``), Ctrl-C (``stop``) and the
run directory, exactly as in one process; ranks 1..nproc-1 are spawned workers that ignore
Ctrl-C and follow rank 0's decision to stop. Every step trains on one global batch of
``batch_size`` sequences, each rank on its contiguous ``batch_size / nproc`` of them, so the
update equals one process's on the whole batch (torch_impl/distributed.py states the
reduction-order tolerance). Checkpoints are the canonical ones of a one-process run: a run can
be resumed with another process count, or without distribution.

Under torchrun (which starts one process per rank itself), ``torch_impl.distributed``'s entry
point trains a preset the same way: ``torchrun --nproc_per_node=2 -m torch_impl.distributed
--strategy fsdp``.
"""

from __future__ import annotations

import datetime
import gc
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from formal_transformers.errors import ConfigError
from formal_transformers.training_run import Callback, RunConfig, train

# How long a rank waits for the others at a collective before giving up with an error (so a
# crashed worker cannot hang the run forever). Generous: an evaluation can take a while.
COLLECTIVE_TIMEOUT_S = 300.0


def check_distributed(run: RunConfig, strategy: str, nproc: int) -> None:
    """Refuse, before any process starts, what cannot run on ``nproc`` ranks."""
    from torch_impl.distributed import check_strategy

    check_strategy(strategy)
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise ConfigError(f"--nproc must be an integer >= 1, got {nproc!r}")
    if run.impl != "torch":
        raise ConfigError(f"distributed training runs torch_impl only, not --impl {run.impl}")
    if run.batch_size % nproc:
        raise ConfigError(f"--batch-size {run.batch_size} must be divisible by --nproc {nproc}: "
                          "every rank trains on an equal share of each global batch")


def _join(rank: int, world: int, port: int) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(rank % torch.cuda.device_count())
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world,
                            timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S))


def _worker(index: int, world: int, port: int, run: dict[str, Any], out: str | None,
            strategy: str, until: int | None) -> None:
    """Rank index + 1: the same loop as rank 0, without output; Ctrl-C is rank 0's to handle."""
    from torch_impl.distributed import run_spawned_rank

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _join(index + 1, world, port)
    run_spawned_rank(lambda: train(RunConfig.from_dict(run), out, until=until,
                                   distributed=strategy))


def train_distributed(run: RunConfig, out: str | Path | None = None, *, strategy: str = "fsdp",
                      nproc: int = 2, until: int | None = None,
                      on_record: Callback | None = None,
                      stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """``training_run.train(run, out, ...)`` on ``nproc`` local ranks; returns its summary."""
    import torch.distributed as dist
    import torch.multiprocessing as mp

    from torch_impl.distributed import free_port

    check_distributed(run, strategy, nproc)
    port = free_port()
    out_arg = str(Path(out).resolve()) if out is not None else None
    workers = mp.start_processes(_worker, args=(nproc, port, run.to_dict(), out_arg, strategy,
                                                until), nprocs=nproc - 1, join=False,
                                 start_method="spawn") if nproc > 1 else None
    try:
        _join(0, nproc, port)
        result = train(run, out_arg, until=until, on_record=on_record, stop=stop,
                       distributed=strategy)
        dist.barrier()
        # Rank 0 hosts the group's store: the workers tear their side down first.
        while workers is not None and not workers.join():
            pass
    except BaseException:
        if workers is not None:
            for p in workers.processes:
                p.terminate()
        raise
    finally:
        if dist.is_initialized():
            gc.collect()  # the run's FSDP/DDP modules release the group before it goes
            dist.destroy_process_group()
    return result
