"""Real training steps and decodes, measured (spec/memory.md section 8).

Each function builds a model of ``config`` from seeded canonical parameters, runs what the
predictor of formal_transformers.memory.predict describes, and returns a ``Measurement``:
the peak (and the activations kept for the backward pass) in bytes, counted the way the
prediction counts them -- parameters, gradients and optimizer state included.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from formal_transformers.canonical import init_parameters
from formal_transformers.hyperparameters import (
    Config,
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
    ModernDTransformerConfig,
    ViTConfig,
)
from formal_transformers.memory import measure
from formal_transformers.memory.predict import dtype_bytes

ETA = 1e-3  # learning rate of the measured gradient-descent step; memory does not depend on it


@dataclass(frozen=True)
class Measurement:
    """Measured bytes: ``peak`` of the whole step, ``activations`` kept for backward (None
    where not measured), and how (``method``)."""

    peak: int
    activations: int | None
    method: str


def _tokens(config: Config, batch: int, seq: int, src_seq: int | None, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, config.N_V, size=(batch, seq))
    z = rng.integers(0, config.N_V, size=(batch, src_seq or seq))
    masked = rng.random((batch, seq)) < 0.15
    masked[:, 0] = True  # at least one target per sequence
    return x, z, masked


def mask_token(config: Config) -> int:
    """The id the measured E transformer steps use for masked positions: N_V - 1."""
    return config.N_V - 1


def measure_reference_training(config: Config, seq: int, src_seq: int | None = None,
                               seed: int = 0, peak: bool = True) -> Measurement:
    """One gradient-descent step of reference_numpy on one sequence, by tracemalloc.

    peak = bytes of the parameter arrays + tracemalloc's peak during the step (which
    includes the Python objects of the reference's caches); 0 when ``peak`` is False.
    activations = NumPy array data the forward pass keeps in its cache.
    """
    from reference_numpy import architectures as arch
    from reference_numpy import training as tr

    params = init_parameters(config, np.random.default_rng(seed))
    x, z, masked = (a[0] for a in _tokens(config, 1, seq, src_seq, seed))
    if isinstance(config, DTransformerConfig):
        def step(): return tr.d_training_step(x, params, config, ETA)
        def forward(cache): arch.d_transformer(x, params, config, cache)
    elif isinstance(config, ETransformerConfig):
        x_tilde = tr.mask_sequence(x, masked, mask_token(config))

        def step(): return tr.e_training_step(x, masked, params, config, ETA,
                                               mask_token(config))
        def forward(cache): arch.e_transformer(x_tilde, params, config, cache)
    else:
        def step(): return tr.ed_training_step(z, x, params, config, ETA)
        def forward(cache): arch.ed_transformer(z, x, params, config, cache)
    step_peak = measure.traced_peak(step)[1] if peak else 0
    cache: dict = {}
    _, kept = measure.numpy_kept_bytes(lambda: forward(cache))
    param_bytes = sum(a.nbytes for a in params.values())
    return Measurement(param_bytes + step_peak if peak else 0, kept, "tracemalloc")


def _torch_setup(config: Config, batch: int, seq: int, src_seq: int | None, dtype: str,
                 device: str, seed: int):
    import torch

    from torch_impl.models import model_from_canonical
    from torch_impl.training import d_losses, e_losses, ed_losses, vit_losses

    torch_dtype = {"float64": torch.float64, "float32": torch.float32,
                   "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    dtype_bytes(dtype)
    model = model_from_canonical(config, init_parameters(config, np.random.default_rng(seed)),
                                 dtype=torch_dtype, device=device)
    if isinstance(config, ViTConfig):  # images (B, C, h, w) and labels; seq is unused
        rng = np.random.default_rng(seed)
        images = torch.as_tensor(rng.standard_normal(
            (batch, config.C, config.height, config.width)), dtype=torch_dtype, device=device)
        labels = torch.as_tensor(rng.integers(0, config.n_classes, batch), device=device)
        return model, vit_losses, (images, labels)
    x, z, masked = (torch.as_tensor(a, device=device)
                    for a in _tokens(config, batch, seq, src_seq, seed))
    if isinstance(config, (DTransformerConfig, ModernDTransformerConfig)):
        return model, d_losses, (x,)
    if isinstance(config, ETransformerConfig):
        return model, (lambda m, b: e_losses(m, b, mask_token(config))), (x, masked)
    return model, ed_losses, (z, x)


def _kernel(path: str):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.MATH) if path == "naive" else nullcontext()


def measure_torch_training(config: Config, batch: int, seq: int, dtype: str = "float32",
                           optimizer: str = "adamw", path: str = "sdpa",
                           src_seq: int | None = None, device: str = "cpu", seed: int = 0,
                           peak: bool = True, activations: bool = True) -> Measurement:
    """A steady-state training step of torch_impl (torch_impl.training.train_step).

    One step runs first, unmeasured, so that AdamW's moments exist as in every later step.
    On CPU the second step runs under a TorchMemoryTracker that starts from the parameters,
    the optimizer state and the batch; on CUDA the allocator's peak is read. ``path``
    'naive' forces PyTorch's math attention kernel; 'sdpa' lets it choose (flash on CPU).
    With ``peak`` False only the saved tensors of a forward pass are measured (peak 0);
    with ``activations`` False only the peak (activations None).
    """
    from torch_impl.training import make_adamw

    model, loss_fn, batch_tensors = _torch_setup(config, batch, seq, src_seq, dtype, device,
                                                 seed)
    opt = make_adamw(model) if optimizer == "adamw" else ETA
    with _kernel(path):
        result, method = 0, "autograd saved tensors"
        if peak:
            result, method = _steady_state_peak(model, opt, loss_fn, batch_tensors, device)
        kept = None
        if activations:
            _, kept = measure.saved_tensor_bytes(lambda: loss_fn(model, batch_tensors),
                                                 exclude=[*model.parameters(), *batch_tensors])
    return Measurement(result, kept, method)


def _steady_state_peak(model, opt, loss_fn, batch_tensors, device: str) -> tuple[int, str]:
    from torch_impl.training import train_step

    train_step(model, opt, loss_fn, batch_tensors)  # creates AdamW's moments

    def step(): return train_step(model, opt, loss_fn, batch_tensors)
    if device == "cuda":
        return measure.cuda_peak(step)[1], "torch.cuda.max_memory_allocated"
    tracker = measure.torch_memory_tracker()
    state = [t for s in getattr(opt, "state", {}).values() for t in s.values()
             if hasattr(t, "untyped_storage")]
    tracker.add_existing([*model.parameters(), *state, *batch_tensors])
    with tracker:
        step()
    return tracker.peak, "TorchDispatchMode live-storage tracker"


def measure_torch_inference(config: Config, batch: int, prompt: int, new_tokens: int,
                            dtype: str = "float32", device: str = "cpu", seed: int = 0
                            ) -> Measurement:
    """Sampling with torch_impl's static KV cache (d_inference / ed_inference), measured
    like a training step: its peak counts the parameters, the cache and every buffer."""
    import torch

    from torch_impl.inference import d_inference, ed_inference

    model, _, _ = _torch_setup(config, batch, 2, None, dtype, device, seed)
    ids = torch.as_tensor(_tokens(config, batch, prompt, None, seed)[0], device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    if isinstance(config, EDTransformerConfig):
        def run(): return ed_inference(model, ids, 1.0, generator, 0, 1, new_tokens)
    else:
        def run(): return d_inference(model, ids, new_tokens, 1.0, generator)
    if device == "cuda":
        _, peak = measure.cuda_peak(run)
        return Measurement(peak, None, "torch.cuda.max_memory_allocated")
    tracker = measure.torch_memory_tracker()
    tracker.add_existing([*model.parameters(), ids])
    with tracker:
        run()
    return Measurement(tracker.peak, None, "TorchDispatchMode live-storage tracker")
