"""Training checkpoints: canonical parameters, optimizer state and run state, swapped in whole.

A run directory RUN holds

    RUN/checkpoint/params.safetensors   canonical parameters   (canonical.save_parameters)
    RUN/checkpoint/config.json          the architecture's hyperparameters
    RUN/checkpoint/optimizer.safetensors  AdamW moments under canonical names ``m.<name>``,
                                          ``v.<name>`` (absent for plain gradient descent)
    RUN/checkpoint/state.json           step, run settings, metric history, and the sha256
                                        of every file above (written last)
    RUN/metrics.json, RUN/loss_curve.png  outputs for people (rewritten at every checkpoint)

A new checkpoint is written completely into a fresh ``RUN/.checkpoint.tmp-*`` directory and
then swapped in by two renames (the previous one is kept as ``RUN/.checkpoint.old`` until the
swap is done), so an interrupted write never leaves a half-written ``checkpoint``; a run killed
between the two renames is recovered from ``.checkpoint.old``. The temporary directory's name
carries the writer's pid, so the next save removes those of killed runs (``clean_stale``).
The recorded hashes make a truncated or edited file a CheckpointError instead of a silent mix
of two states.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from formal_transformers import atomic
from formal_transformers.atomic import publish, write_json
from formal_transformers.canonical import (
    CONFIG_FILE,
    PARAMS_FILE,
    load_parameters,
    save_parameters,
)
from formal_transformers.errors import CheckpointError, ParameterFileError
from formal_transformers.hyperparameters import Config

FORMAT = "formal-transformers-checkpoint/1"
CHECKPOINT_DIR, OLD_DIR, TMP_PREFIX = "checkpoint", ".checkpoint.old", ".checkpoint.tmp-"
STATE_FILE, OPTIMIZER_FILE = "state.json", "optimizer.safetensors"
METRICS_FILE, PLOT_FILE = "metrics.json", "loss_curve.png"


@dataclass
class Checkpoint:
    """Everything a run needs to continue: parameters, optimizer state, step, history."""

    config: Config
    params: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    state: dict[str, Any]  # step, run, history, ... as stored in state.json

    @property
    def step(self) -> int:
        return int(self.state["step"])

    @property
    def run(self) -> dict[str, Any]:
        return self.state["run"]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(run_dir: str | os.PathLike, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` to RUN/checkpoint, replacing the previous one as a whole."""
    from safetensors.numpy import save_file

    run = Path(run_dir)
    atomic.check_output_dir(run)
    run.mkdir(parents=True, exist_ok=True)
    clean_stale(run)
    tmp = Path(tempfile.mkdtemp(dir=run, prefix=f"{TMP_PREFIX}{os.getpid()}-"))
    try:
        save_parameters(tmp, ckpt.config, ckpt.params)
        files = [PARAMS_FILE, CONFIG_FILE]
        if ckpt.optimizer:
            arrays = {k: np.ascontiguousarray(v) for k, v in ckpt.optimizer.items()}
            save_file(arrays, str(tmp / OPTIMIZER_FILE))
            files.append(OPTIMIZER_FILE)
        state = {**ckpt.state, "format": FORMAT,
                 "files": {name: _sha256(tmp / name) for name in files}}
        write_json(tmp / STATE_FILE, state)
        for f in [tmp, *tmp.iterdir()]:
            publish(f)
        final, old = run / CHECKPOINT_DIR, run / OLD_DIR
        if old.exists():
            shutil.rmtree(old)
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def clean_stale(run_dir: str | os.PathLike) -> list[Path]:
    """Remove what killed runs left in ``run_dir``: ``.checkpoint.tmp-<pid>-*`` directories
    and ``.<file>.<pid>.*.tmp`` files of writers that no longer run."""
    return (atomic.clean_stale(run_dir, TMP_PREFIX)
            + atomic.clean_stale(run_dir, ".", atomic.TMP_SUFFIX))


def checkpoint_dir(path: str | os.PathLike) -> Path | None:
    """The checkpoint directory of a run directory (or of a checkpoint directory itself);
    None when there is none. Recovers a swap that was interrupted between its two renames."""
    p = Path(path)
    if (p / STATE_FILE).is_file():
        return p
    final, old = p / CHECKPOINT_DIR, p / OLD_DIR
    if not final.exists() and (old / STATE_FILE).is_file():
        old.rename(final)
    return final if final.is_dir() else None


def is_run_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a checkpoint (possibly a damaged one) of a training run."""
    p = Path(path)
    return (p / CHECKPOINT_DIR).exists() or (p / OLD_DIR).exists() or (p / STATE_FILE).exists()


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and verify a checkpoint; any defect is a CheckpointError naming the file."""
    d = checkpoint_dir(path)
    if d is None:
        raise CheckpointError(f"{path}: no checkpoint found (expected "
                              f"{Path(path) / CHECKPOINT_DIR / STATE_FILE}); train first with "
                              f"`formal-transformers train --out {path}`")
    state = _read_state(d)
    for name, digest in state["files"].items():
        f = d / name
        if not f.is_file():
            raise CheckpointError(f"{f}: missing (listed in {d / STATE_FILE})")
        if _sha256(f) != digest:
            raise CheckpointError(f"{f}: truncated or modified since it was written "
                                  f"(sha256 differs from the one in {STATE_FILE})")
    try:
        config, params = load_parameters(d)
    except ParameterFileError as exc:
        raise CheckpointError(f"{d}: {exc}") from None
    if config.arch != state["run"].get("arch"):
        raise CheckpointError(f"{d}: config.json is for arch {config.arch!r} but the run "
                              f"state says {state['run'].get('arch')!r}")
    return Checkpoint(config, params, _read_optimizer(d, state), state)


def _read_state(d: Path) -> dict[str, Any]:
    f = d / STATE_FILE
    if not f.is_file():
        raise CheckpointError(f"{f}: missing; {d} is not a complete checkpoint")
    try:
        state = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{f}: truncated or not JSON ({exc})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{f}: not a checkpoint state (a JSON object)")
    missing = [k for k in ("format", "step", "run", "files") if k not in state]
    if missing:
        raise CheckpointError(f"{f}: not a checkpoint state (missing {missing})")
    if state["format"] != FORMAT:
        raise CheckpointError(f"{f}: format {state['format']!r}, expected {FORMAT!r}")
    for key, ok, expected in (
            ("step", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
             "an integer >= 0"),
            ("run", lambda v: isinstance(v, dict) and isinstance(v.get("arch"), str)
             and isinstance(v.get("source"), dict) and isinstance(v.get("model"), dict),
             "an object with arch, source and model"),
            ("files", lambda v: isinstance(v, dict) and all(
                isinstance(k, str) and "/" not in k and isinstance(h, str)
                for k, h in v.items()), "an object {file name: sha256}"),
            ("history", lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v),
             "a list of records"),
            ("train_seconds", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
             "a number"),
            ("last_eval", lambda v: isinstance(v, dict), "an object")):
        if key in state and not ok(state[key]):
            raise CheckpointError(f"{f}: field {key!r} must be {expected}, got "
                                  f"{state[key]!r:.80} (was the file edited by hand?)")
    return state


def _read_optimizer(d: Path, state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    if OPTIMIZER_FILE not in state["files"]:
        return {}
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(str(d / OPTIMIZER_FILE))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{d / OPTIMIZER_FILE}: unreadable ({exc})") from None


def check_output_dir(path: str | os.PathLike) -> None:
    """``--out`` must be new, empty, or a run directory: never someone else's files."""
    p = atomic.check_output_dir(path)
    if p.is_dir() and any(p.iterdir()) and not is_run_dir(p):
        raise CheckpointError(f"--out {p}: not empty and holds no checkpoint; choose a new "
                              "directory or an existing run to resume")
