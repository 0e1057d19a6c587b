"""Losses, the spec's gradient descent, AdamW and gradient accumulation (spec: Algs 11-13).

Loss normalisation, stated once: the spec's loss of ONE sequence is a SUM over its positions
(``-sum_t log P[target_t, t]``). ``*_losses`` return that per-sequence loss for every row of a
batch, shape (B,). The batch objective of ``train_step`` is their MEAN over the sequences of
the (global) batch, so that
- a batch of one sequence is exactly the spec's loss and update (Algorithms 11-13);
- gradient accumulation over micro-batches weights each micro-batch by its share of B;
- DDP, which averages gradients over W equal shards, gives the gradient of the global mean,
  i.e. the same update as one process on the full batch (torch_impl/distributed.py).
With the declared variant ``loss_reduction = "mean"`` (config field; spec: Algorithms 11-13,
variants) a sequence's loss is that sum divided by its number of predicted tokens,
max(|T|, 1); the batch objective is still the mean over sequences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from formal_transformers.errors import ConfigError
from formal_transformers.validation import check_token_id, check_tokens
from torch_impl.models import DTransformer, EDTransformer, ETransformer

Batch = Sequence[torch.Tensor]  # tensors sharing the batch axis 0, e.g. (x,) or (z, x)
LossFn = Callable[[nn.Module, Batch], torch.Tensor]  # -> per-sequence losses (B,)


def token_log_loss(logits: torch.Tensor, targets: torch.Tensor,
                   weights: torch.Tensor | None = None, reduction: str = "sum") -> torch.Tensor:
    """-sum_t w_t log softmax(logits[:, t])[targets[:, t]] per sequence: (B, T, N_V) -> (B,).

    ``reduction="mean"`` divides each sequence's sum by its number of predicted tokens
    max(sum_t w_t, 1) (T when no weights). The log-softmax and its gradient are computed in
    at least float32 (bf16 logits upcast).
    """
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    if not targets.dtype.is_floating_point:  # int8/int16/uint8 ids, as the reference takes
        targets = targets.long()
    nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (B, T)
    if weights is not None:
        nll = nll * weights.to(nll.dtype)
    total = nll.sum(dim=1)
    if reduction == "sum":
        return total
    count = (weights.to(nll.dtype).sum(dim=1) if weights is not None
             else torch.full_like(total, nll.shape[1]))
    return total / count.clamp(min=1)


def _reduction(model: nn.Module) -> str:
    """The config's loss_reduction (through a DDP wrapper's ``module``)."""
    return getattr(getattr(model, "module", model).config, "loss_reduction", "sum")


def d_losses(model: DTransformer, batch: Batch) -> torch.Tensor:
    """-sum_{t=0}^{l-2} log P[x[t+1], t] for each x of (B, l) (spec: Algorithm 13, L5).

    batch = (x,) or, for a padded batch, (x, real) with real (B, l) bool (spec: 13, "Padded
    batches"): only the pairs (t, t+1) of two real tokens are predicted."""
    x, *rest = batch
    if not rest:
        return token_log_loss(model(x)[:, :-1], x[:, 1:], reduction=_reduction(model))
    real = rest[0]
    pairs = real[:, :-1] & real[:, 1:]  # target t + 1 follows a real token t
    return token_log_loss(model(x, attention_mask=real)[:, :-1], x[:, 1:], pairs,
                          _reduction(model))


def ed_losses(model: EDTransformer, batch: Batch) -> torch.Tensor:
    """-sum_{t=0}^{l_x-2} log P[x[t+1], t] with P = EDTransformer(z, x) (spec: Alg 11, L5).

    batch = (z, x) or, for a padded batch, (z, x, z_real, x_real) with the real-token masks
    (B, l_z), (B, l_x) (spec: 11, "Padded batches"): only pairs of two real tokens of x are
    predicted, and padding is never attended to."""
    z, x, *rest = batch
    if not rest:
        return token_log_loss(model(z, x)[:, :-1], x[:, 1:], reduction=_reduction(model))
    z_real, x_real = rest
    pairs = x_real[:, :-1] & x_real[:, 1:]
    return token_log_loss(model(z, x, x_real, z_real)[:, :-1], x[:, 1:], pairs,
                          _reduction(model))


def e_losses(model: ETransformer, batch: Batch, mask_token: int) -> torch.Tensor:
    """-sum_{t masked} log P[x[t], t] with P = ETransformer(x_tilde) (spec: Alg 12, L4-7).

    batch = (x (B, l), masked (B, l) bool); x_tilde replaces the masked positions by mask_token.
    A padded batch appends real (B, l) bool (spec: 12, "Padded batches"): only real masked
    positions are predicted, and padding is never attended to.
    """
    x, masked, *rest = batch
    x_tilde = torch.where(masked, torch.full_like(x, mask_token), x)  # Alg 12 L4
    if not rest:
        return token_log_loss(model(x_tilde), x, masked,
                              _reduction(model))  # Alg 12 L6-7
    real = rest[0]
    return token_log_loss(model(x_tilde, attention_mask=real), x, masked & real,
                          _reduction(model))


def vit_losses(model: nn.Module, batch: Batch) -> torch.Tensor:
    """-log p[y] per image, p = ViTClassifier(I) (spec: Algorithm 77), batch = (I (B, C, h, w),
    y (B,) labels): the per-example loss whose batch mean train_step minimises."""
    images, labels = batch
    return -torch.log_softmax(model(images), dim=-1).gather(1, labels[:, None])[:, 0]


def draw_masked(x: torch.Tensor, p_mask: float, rng: np.random.Generator) -> torch.Tensor:
    """Masking coin flips m_t ~ Bernoulli(p_mask), one per token of x (spec: Alg 12, L4).

    Drawn from a NumPy generator exactly as reference_numpy.training does, one sequence after
    the other, so that the same seed masks the same positions in both implementations.
    """
    if isinstance(p_mask, bool) or not isinstance(p_mask, (int, float)) or not 0 < p_mask < 1:
        raise ConfigError(f"p_mask must lie in (0, 1), got {p_mask!r}")
    rows = [rng.random(x.shape[1]) < p_mask for _ in range(x.shape[0])]
    return torch.as_tensor(np.stack(rows), device=x.device)  # (B, l) bool


@torch.no_grad()
def gradient_descent_step(model: nn.Module, eta: float) -> None:
    """theta <- theta - eta * grad loss(theta) (spec: Algorithms 11-13, the update line)."""
    for p in model.parameters():
        if p.grad is not None:
            p.add_(p.grad, alpha=-eta)


def make_adamw(model: nn.Module, lr: float = 3e-4, weight_decay: float = 0.1,
               betas: tuple[float, float] = (0.9, 0.95), fused: bool | None = None
               ) -> torch.optim.AdamW:
    """AdamW beside the spec's plain gradient descent; fused kernel on CUDA by default.

    Weight decay applies to matrices only (not to biases, gamma, beta), as in GPT-2 practice.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    if fused is None:
        fused = all(p.is_cuda for p in params)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused,
                             foreach=None if fused else True)


def _gradient_sync(model: nn.Module, last: bool):
    """Skip the gradient reduction of data-parallel wrappers on all but the last micro-batch:
    DDP's ``no_sync`` context, FSDP2's ``set_requires_gradient_sync`` switch."""
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2 (fully_shard)
        model.set_requires_gradient_sync(last)
        return nullcontext()
    if last or not hasattr(model, "no_sync"):
        return nullcontext()
    return model.no_sync()


def accumulate_gradients(model: nn.Module, loss_fn: LossFn, batch: Batch,
                         micro_batch_size: int | None = None,
                         autocast_dtype: torch.dtype | None = None) -> float:
    """Backpropagate the batch mean of the per-sequence losses, one micro-batch at a time.

    Each micro-batch contributes sum(losses) / B, so the accumulated gradient equals the
    full batch's. Under DDP and FSDP2 the gradient reduction runs only on the last micro-batch.
    Returns the batch objective (a float).
    """
    B = batch[0].shape[0]
    m = micro_batch_size or B
    if m < 1:
        raise ConfigError(f"micro_batch_size must be >= 1, got {m}")
    starts = list(range(0, B, m))
    total = 0.0
    device_type = batch[0].device.type
    for i, s in enumerate(starts):
        micro = [t[s:s + m] for t in batch]
        last = i == len(starts) - 1
        sync = _gradient_sync(model, last)
        autocast = (torch.autocast(device_type, dtype=autocast_dtype)
                    if autocast_dtype is not None else nullcontext())
        with sync:
            with autocast:
                loss = loss_fn(model, micro).sum() / B
            loss.backward()
        total += float(loss.detach())
    return total


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer | float, loss_fn: LossFn,
               batch: Batch, micro_batch_size: int | None = None,
               autocast_dtype: torch.dtype | None = None) -> float:
    """One update on the batch mean of the spec's per-sequence loss; returns that mean.

    ``optimizer`` is a torch optimizer (e.g. ``make_adamw``) or a float learning rate eta for
    the spec's plain gradient descent.
    """
    model.zero_grad(set_to_none=True)
    loss = accumulate_gradients(model, loss_fn, batch, micro_batch_size, autocast_dtype)
    if isinstance(optimizer, torch.optim.Optimizer):
        optimizer.step()
    else:
        gradient_descent_step(model, float(optimizer))
    return loss


# -- the spec's training algorithms: one gradient-descent step per sequence ----------------

def _check_schedule(N_epochs: int, eta: float) -> None:
    if not isinstance(N_epochs, int) or isinstance(N_epochs, bool) or N_epochs < 1:
        raise ConfigError(f"N_epochs must be an integer >= 1, got {N_epochs!r}")
    if not isinstance(eta, (int, float)) or isinstance(eta, bool) or not (
            np.isfinite(eta) and eta > 0):
        raise ConfigError(f"eta (learning rate) must be a finite number > 0, got {eta!r}")


def _row(name: str, x: object, device: torch.device, N_V: int) -> torch.Tensor:
    """One sequence of token ids as a (1, l) long tensor; float or out-of-range ids are the
    reference's typed errors (never truncated: 1.7 is not token 1)."""
    arr = np.asarray(x)
    check_tokens(name, arr, N_V)
    return torch.as_tensor(arr, dtype=torch.long, device=device)[None]  # (1, l)


def d_training(data: Sequence[object], params: dict, config, eta: float, N_epochs: int,
               dtype: torch.dtype | None = None) -> dict[str, np.ndarray]:
    """Train a D transformer by the spec's gradient descent (spec: Algorithm 13).

    data: sequences of token ids; params: canonical (not modified). Returns new canonical
    parameters. One update per sequence, in order, N_epochs times. The argument order is
    reference_numpy.training's.
    """
    _check_schedule(N_epochs, eta)
    model = DTransformer.from_canonical(config, params, dtype)
    device = model.lm_head.weight.device
    for _ in range(N_epochs):  # Alg 13 L1
        for n, x in enumerate(data):  # Alg 13 L2-6
            train_step(model, eta, d_losses, (_row(f"data[{n}]", x, device, config.N_V),))
    return model.to_canonical()  # Alg 13 L7


def ed_training(data: Sequence[tuple[object, object]], params: dict, config, eta: float,
                N_epochs: int, dtype: torch.dtype | None = None) -> dict[str, np.ndarray]:
    """Train an ED transformer on (z, x) pairs by the spec's gradient descent (spec: Alg 11)."""
    _check_schedule(N_epochs, eta)
    model = EDTransformer.from_canonical(config, params, dtype)
    device = model.lm_head.weight.device
    for _ in range(N_epochs):  # Alg 11 L1
        for n, (z, x) in enumerate(data):  # Alg 11 L2-6
            batch = (_row(f"data[{n}].z", z, device, config.N_V),
                     _row(f"data[{n}].x", x, device, config.N_V))
            train_step(model, eta, ed_losses, batch)
    return model.to_canonical()  # Alg 11 L7


def e_training(data: Sequence[object], params: dict, config, eta: float, N_epochs: int,
               p_mask: float, mask_token: int, rng: np.random.Generator,
               dtype: torch.dtype | None = None) -> dict[str, np.ndarray]:
    """Train an E transformer by masked language modelling (spec: Algorithm 12).

    The coin flips come from the NumPy generator ``rng`` (see ``draw_masked``), so a seed
    reproduces the reference's run.
    """
    _check_schedule(N_epochs, eta)
    check_token_id("mask_token", mask_token, config.N_V)
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator (e.g. "
                          f"numpy.random.default_rng(seed)), got {type(rng).__name__}")
    model = ETransformer.from_canonical(config, params, dtype)
    device = model.lm_head.weight.device

    def loss_fn(m: nn.Module, batch: Batch) -> torch.Tensor:
        return e_losses(m, batch, mask_token)

    for _ in range(N_epochs):  # Alg 12 L1
        for n, x in enumerate(data):  # Alg 12 L2-8
            row = _row(f"data[{n}]", x, device, config.N_V)
            train_step(model, eta, loss_fn, (row, draw_masked(row, p_mask, rng)))
    return model.to_canonical()  # Alg 12 L9
