"""The two implementations a training run can drive: torch_impl and reference_numpy.

Both minimise the same batch objective -- the MEAN over the sequences of a batch of the
spec's per-sequence loss, a SUM over positions (spec: Algorithms 11-13; the normalisation of
torch_impl.training) -- and update with the spec's plain gradient descent
theta <- theta - eta * grad, or with AdamW. Optimizer state travels in canonical names
(``m.<name>``, ``v.<name>``), so a checkpoint does not depend on the implementation.

AdamW, written once per array library: decoupled weight decay on the matrices (canonical
names ``W_*``; biases, gamma and beta are not decayed), bias-corrected moments, and
p <- p - lr * m_hat / (sqrt(v_hat) + eps) -- the update of torch.optim.AdamW.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from formal_transformers.errors import ConfigError
from formal_transformers.hyperparameters import Config
from formal_transformers.sources import Batch

ADAM_EPS = 1e-8


def decayed(name: str) -> bool:
    """Whether AdamW's weight decay applies to a canonical parameter (the matrices W_*)."""
    return name.rsplit(".", 1)[-1].startswith("W_")


def adam_step(state: Mapping[str, np.ndarray]) -> float:
    """AdamW's step count t as stored under ``step`` (shape (1,)); 0 before any step."""
    return float(np.asarray(state["step"]).reshape(-1)[0]) if "step" in state else 0.0


class Backend(Protocol):
    """What the training loop needs from an implementation."""

    def step(self, batch: Batch, lr: float) -> float: ...
    def log_probs(self, batch: Batch) -> np.ndarray: ...
    def parameters(self) -> dict[str, np.ndarray]: ...
    def optimizer_state(self) -> dict[str, np.ndarray]: ...


def make_backend(impl: str, config: Config, params: Mapping[str, np.ndarray],
                 run: Mapping[str, Any], optimizer_state: Mapping[str, np.ndarray],
                 distributed: str | None = None) -> Backend:
    """The backend named ``impl`` ('torch' or 'reference'), loaded with params and state.

    ``distributed`` ('ddp' or 'fsdp'): torch_impl across the ranks of the current process
    group (DistributedTorchBackend); the reference runs in one process only.
    """
    if distributed is not None:
        if impl != "torch":
            raise ConfigError(f"distributed training runs torch_impl only, not --impl {impl}")
        return DistributedTorchBackend(config, params, run, optimizer_state, distributed)
    if impl == "torch":
        return TorchBackend(config, params, run, optimizer_state)
    if impl == "reference":
        return ReferenceBackend(config, params, run, optimizer_state)
    raise ConfigError(f"impl must be 'torch' or 'reference', got {impl!r}")


class TorchBackend:
    """torch_impl models, losses (torch_impl.training) and torch.optim.AdamW."""

    def __init__(self, config: Config, params: Mapping[str, np.ndarray],
                 run: Mapping[str, Any], optimizer_state: Mapping[str, np.ndarray]):
        import torch

        from torch_impl.models import model_from_canonical

        self.torch = torch
        dtype = torch.float64 if run["dtype"] == "float64" else torch.float32
        self.model = model_from_canonical(config, params, dtype=dtype)
        self.model_dtype = dtype
        self.arch, self.mask_token = config.arch, getattr(config, "N_V", 0) - 1
        self.run = run
        self.opt = None
        if run["optimizer"] == "adamw":
            self.opt = self.make_optimizer(self.model)
            if optimizer_state:
                self._load_adam(optimizer_state)

    def make_optimizer(self, model):
        """torch.optim.AdamW with the run's settings over ``model``'s parameters."""
        from torch_impl.training import make_adamw

        run = self.run
        return make_adamw(model, lr=run["lr"], weight_decay=run["weight_decay"],
                          betas=tuple(run["betas"]), fused=False)

    def _loss_fn(self):
        from torch_impl import training

        if self.arch == "encoder":
            return lambda model, b: training.e_losses(model, b, self.mask_token)
        if self.arch == "vit":
            return training.vit_losses
        return training.ed_losses if self.arch == "encoder-decoder" else training.d_losses

    def _tensors(self, batch: Batch) -> tuple:
        t = self.torch.as_tensor
        if self.arch == "encoder":  # e_losses masks the original tokens itself (Alg 12 L4)
            return t(batch.targets), t(batch.masked)
        if self.arch == "vit":
            return t(batch.x).to(self.model_dtype), t(batch.targets)
        return (t(batch.z), t(batch.x)) if self.arch == "encoder-decoder" else (t(batch.x),)

    def step(self, batch: Batch, lr: float) -> float:
        from torch_impl.training import train_step

        self.model.train()
        if self.opt is None:
            return train_step(self.model, lr, self._loss_fn(), self._tensors(batch))
        for group in self.opt.param_groups:
            group["lr"] = lr
        return train_step(self.model, self.opt, self._loss_fn(), self._tensors(batch))

    def log_probs(self, batch: Batch) -> np.ndarray:
        return self.log_probs_of(self.model, batch)

    def log_probs_of(self, model, batch: Batch) -> np.ndarray:
        """log-softmax of ``model``'s logits on ``batch`` (this backend's model, or the same
        architecture behind a data-parallel wrapper), float64 NumPy."""
        torch = self.torch
        model.eval()
        with torch.no_grad():
            if self.arch == "encoder-decoder":
                logits = model(torch.as_tensor(batch.z), torch.as_tensor(batch.x))
            elif self.arch == "vit":
                logits = model(torch.as_tensor(batch.x).to(self.model_dtype))
            else:
                logits = model(torch.as_tensor(batch.x))
            return torch.log_softmax(logits.double(), dim=-1).numpy()

    def parameters(self) -> dict[str, np.ndarray]:
        return self.model.to_canonical()

    def _adam_views(self, key: str) -> dict[str, Any]:
        def moment(p):
            state = self.opt.state[p]
            if not state:  # before the first step: the zero state torch would create
                state["step"] = self.torch.tensor(0.0)
                state["exp_avg"] = self.torch.zeros_like(p)
                state["exp_avg_sq"] = self.torch.zeros_like(p)
            return state[key]
        return self.model.canonical_views(moment)

    def optimizer_state(self) -> dict[str, np.ndarray]:
        if self.opt is None:
            return {}
        out = {f"m.{k}": v.detach().cpu().numpy().copy()
               for k, v in self._adam_views("exp_avg").items()}
        out |= {f"v.{k}": v.detach().cpu().numpy().copy()
                for k, v in self._adam_views("exp_avg_sq").items()}
        steps = {float(s["step"]) for s in self.opt.state.values()}
        out["step"] = np.array([steps.pop() if steps else 0.0])
        return out

    def _load_adam(self, state: Mapping[str, np.ndarray]) -> None:
        with self.torch.no_grad():
            for key, prefix in (("exp_avg", "m."), ("exp_avg_sq", "v.")):
                for name, view in self._adam_views(key).items():
                    view.copy_(self.torch.as_tensor(state[prefix + name]))
            for s in self.opt.state.values():
                s["step"].fill_(adam_step(state))


class DistributedTorchBackend:
    """torch_impl on every rank of the current process group, DDP or FSDP2 (one step = one
    global batch, each rank its contiguous shard; torch_impl/distributed.py).

    It keeps a one-process TorchBackend beside the wrapped copy of its model: the full
    parameters and AdamW moments are moved between the two in canonical form, so checkpoints
    are the same canonical files as in one process, and a run resumes with any number of
    processes. Every method is collective: all ranks call it in the same order.
    """

    def __init__(self, config: Config, params: Mapping[str, np.ndarray],
                 run: Mapping[str, Any], optimizer_state: Mapping[str, np.ndarray],
                 strategy: str):
        import copy

        import torch.distributed as dist

        from torch_impl.distributed import check_strategy, unwrapped, wrap

        self.strategy = check_strategy(strategy)
        if not dist.is_initialized():
            raise ConfigError("distributed training needs a process group: start it with "
                              "`formal-transformers train --distributed ... --nproc N` or "
                              "under torchrun")
        self.dist, self.config = dist, config
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.local = TorchBackend(config, params, run, optimizer_state)
        self.model = wrap(copy.deepcopy(self.local.model), strategy)
        self.inner = unwrapped(self.model)
        self.opt = None
        if self.local.opt is not None:
            self.opt = self.local.make_optimizer(self.model)
            if optimizer_state:
                self._move_optimizer_state(to_wrapped=True)

    def _move_optimizer_state(self, to_wrapped: bool) -> None:
        """AdamW's moments between the one-process copy and the wrapped model (full tensors
        keyed by parameter name; FSDP shards or gathers them)."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_optimizer_state_dict,
            set_optimizer_state_dict,
        )

        full = StateDictOptions(full_state_dict=True)
        (src, src_opt), (dst, dst_opt) = ((self.local.model, self.local.opt),
                                          (self.inner, self.opt))
        if not to_wrapped:
            (src, src_opt), (dst, dst_opt) = (dst, dst_opt), (src, src_opt)
        state = get_optimizer_state_dict(src, src_opt, options=full)
        set_optimizer_state_dict(dst, dst_opt, optim_state_dict=state, options=full)

    def step(self, batch: Batch, lr: float) -> float:
        from torch_impl.distributed import shard
        from torch_impl.training import train_step

        local = shard(list(self.local._tensors(batch)), self.rank, self.world)
        self.model.train()
        if self.opt is None:
            loss = train_step(self.model, lr, self.local._loss_fn(), local)
        else:
            for group in self.opt.param_groups:
                group["lr"] = lr
            loss = train_step(self.model, self.opt, self.local._loss_fn(), local)
        total = self.local.torch.tensor([loss], dtype=self.local.torch.float64)
        self.dist.all_reduce(total)  # equal shards: the mean of the ranks' means
        return float(total) / self.world

    def log_probs(self, batch: Batch) -> np.ndarray:
        return self.local.log_probs_of(self.inner, batch)

    def parameters(self) -> dict[str, np.ndarray]:
        from torch_impl.distributed import full_parameters

        return full_parameters(self.config, self.model)

    def optimizer_state(self) -> dict[str, np.ndarray]:
        if self.opt is None:
            return {}
        self._move_optimizer_state(to_wrapped=False)
        return self.local.optimizer_state()

    def agree(self, flag: bool) -> bool:
        """Rank 0's answer, on every rank (e.g. "stop now": all ranks must stop together)."""
        t = self.local.torch.tensor([1.0 if flag else 0.0])
        self.dist.broadcast(t, src=0)
        return bool(t.item())


class ReferenceBackend:
    """reference_numpy: one sequence at a time, hand-written gradients, float64."""

    def __init__(self, config: Config, params: Mapping[str, np.ndarray],
                 run: Mapping[str, Any], optimizer_state: Mapping[str, np.ndarray]):
        if run["dtype"] != "float64":
            raise ConfigError(f"--impl reference runs in float64 only, got dtype {run['dtype']!r}")
        self.config = config
        self.params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
        self.run = run
        self.adam = None
        if run["optimizer"] == "adamw":
            self.adam = NumpyAdamW(self.params, run["weight_decay"], tuple(run["betas"]),
                                   optimizer_state)

    def _loss_and_grad(self, batch: Batch, b: int):
        from reference_numpy import training as T

        c = self.config
        if c.arch in ("decoder", "modern-decoder"):  # Algorithm 13; Algorithm 66 for the modern
            return T.d_loss_and_grad(batch.x[b], self.params, c)
        if c.arch == "vit":
            return T.vit_loss_and_grad(batch.x[b], int(batch.targets[b]), self.params, c)
        if c.arch == "encoder":
            return T.e_loss_and_grad(batch.targets[b], batch.masked[b], self.params, c,
                                     c.N_V - 1)
        return T.ed_loss_and_grad(batch.z[b], batch.x[b], self.params, c)

    def step(self, batch: Batch, lr: float) -> float:
        B = len(batch)
        total, grads = 0.0, {k: np.zeros_like(v) for k, v in self.params.items()}
        for b in range(B):
            loss, g = self._loss_and_grad(batch, b)
            total += loss / B
            for k in grads:
                grads[k] += g[k] / B
        if self.adam is None:
            for k, g in grads.items():
                self.params[k] -= lr * g  # theta <- theta - eta * grad (Algs 11-13)
        else:
            self.adam.step(self.params, grads, lr)
        return total

    def log_probs(self, batch: Batch) -> np.ndarray:
        from reference_numpy import architectures as A
        from reference_numpy.modern_decoder import modern_d_transformer
        from reference_numpy.vision import vit_classifier

        c, out = self.config, []
        for b in range(len(batch)):
            if c.arch == "decoder":
                P = A.d_transformer(batch.x[b], self.params, c)
            elif c.arch == "modern-decoder":
                P = modern_d_transformer(batch.x[b], self.params, c)
            elif c.arch == "vit":
                out.append(np.log(np.maximum(vit_classifier(batch.x[b], self.params, c),
                                             1e-300)))
                continue
            elif c.arch == "encoder":
                P = A.e_transformer(batch.x[b], self.params, c)
            else:
                P = A.ed_transformer(batch.z[b], batch.x[b], self.params, c)
            out.append(np.log(np.maximum(P.T, 1e-300)))  # (N_V, l) -> (l, N_V)
        return np.stack(out)

    def parameters(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.params.items()}

    def optimizer_state(self) -> dict[str, np.ndarray]:
        return {} if self.adam is None else self.adam.state()


class NumpyAdamW:
    """AdamW on a dict of float64 arrays, the update of torch.optim.AdamW."""

    def __init__(self, params: Mapping[str, np.ndarray], weight_decay: float,
                 betas: tuple[float, float], state: Mapping[str, np.ndarray]):
        self.weight_decay, (self.beta1, self.beta2) = weight_decay, betas
        self.m = {k: np.array(state.get(f"m.{k}", np.zeros_like(v)), dtype=np.float64)
                  for k, v in params.items()}
        self.v = {k: np.array(state.get(f"v.{k}", np.zeros_like(v)), dtype=np.float64)
                  for k, v in params.items()}
        self.t = int(adam_step(state))

    def step(self, params: dict[str, np.ndarray], grads: Mapping[str, np.ndarray],
             lr: float) -> None:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        for k, g in grads.items():
            if decayed(k):
                params[k] *= 1.0 - lr * self.weight_decay
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            denom = np.sqrt(self.v[k]) / np.sqrt(1 - b2**self.t) + ADAM_EPS
            params[k] -= (lr / (1 - b1**self.t)) * self.m[k] / denom

    def state(self) -> dict[str, np.ndarray]:
        return ({f"m.{k}": v for k, v in self.m.items()} | {f"v.{k}": v for k, v in self.v.items()}
                | {"step": np.array([float(self.t)])})
