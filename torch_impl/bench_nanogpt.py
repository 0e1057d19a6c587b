"""nanoGPT's ``model.py`` as a baseline of the GPU training benchmark (torch_impl/bench_gpu.py).

nanoGPT (Karpathy, MIT licence) is not part of this project and is not vendored: the user
passes a checkout of github.com/karpathy/nanoGPT (``--nanogpt PATH``; the directory holding
``model.py``), and its ``model.py`` is imported from there under a private module name. What
is used is nanoGPT's own API: ``GPT(GPTConfig(...))``, ``forward(idx, targets) -> (logits,
loss)`` and ``configure_optimizers(weight_decay, learning_rate, betas, device_type)`` (fused
AdamW on CUDA), exactly as nanoGPT's train.py calls them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

import torch

from formal_transformers.errors import ConfigError
from formal_transformers.hyperparameters import DTransformerConfig
from torch_impl.bench_gpu import TrainingSide

NANOGPT_URL = "https://github.com/karpathy/nanoGPT"


def load_nanogpt(path: str | Path) -> ModuleType:
    """nanoGPT's model module from a checkout at ``path`` (a directory with model.py)."""
    root = Path(path)
    source = root / "model.py"
    if not source.is_file():
        raise ConfigError(f"--nanogpt {str(path)!r}: expected a checkout of {NANOGPT_URL} "
                          f"holding model.py, but {str(source)!r} does not exist (clone it "
                          f"there, e.g. `git clone {NANOGPT_URL} third_party/nanoGPT`)")
    spec = importlib.util.spec_from_file_location("_nanogpt_model", source)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # torch.compile looks the module of GPT.forward up there
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a broken or unrelated model.py: say which file
        del sys.modules[spec.name]
        raise ConfigError(f"--nanogpt {str(path)!r}: importing {str(source)!r} failed: "
                          f"{type(exc).__name__}: {exc}") from exc
    missing = [name for name in ("GPT", "GPTConfig") if not hasattr(module, name)]
    if missing:
        raise ConfigError(f"--nanogpt {str(path)!r}: {str(source)!r} defines no "
                          f"{' or '.join(missing)}; expected nanoGPT's model.py "
                          f"({NANOGPT_URL})")
    return module


def nanogpt_model(module: ModuleType, config: DTransformerConfig) -> torch.nn.Module:
    """nanoGPT's GPT of the benchmark's shape (biases, no dropout; nanoGPT always ties)."""
    nano_config = module.GPTConfig(block_size=config.l_max, vocab_size=config.N_V,
                                   n_layer=config.L, n_head=config.H, n_embd=config.d_e,
                                   dropout=0.0, bias=config.bias)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its parameter count
        return module.GPT(nano_config)


def nanogpt_side(module: ModuleType, config: DTransformerConfig, x: torch.Tensor,
                 y: torch.Tensor) -> TrainingSide:
    """nanoGPT's GPT on inputs x and targets y (B, l), with its own configure_optimizers."""
    torch.manual_seed(0)
    model = nanogpt_model(module, config).to(x.device).train()
    with contextlib.redirect_stdout(io.StringIO()):
        optimizer = model.configure_optimizers(weight_decay=0.1, learning_rate=6e-4,
                                               betas=(0.9, 0.95), device_type=x.device.type)
    return TrainingSide("nanoGPT", model, optimizer, lambda: model(x, y)[1])
