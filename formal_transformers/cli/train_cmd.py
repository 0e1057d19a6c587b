"""`formal-transformers train`: train an architecture on a built-in source or a text file.

Thin layer over formal_transformers.training_run (spec: Algorithms 11-13): writes a checkpoint,
metrics.json and loss_curve.png to --out, and resumes when --out already holds a run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import signal
from typing import Any

from formal_transformers import render
from formal_transformers.atomic import check_json_destination, check_output_dir, write_json
from formal_transformers.checkpoint import is_run_dir
from formal_transformers.cli.flags import check_finite_positive, check_minimum
from formal_transformers.errors import ConfigError
from formal_transformers.sources import SOURCE_ARCH, resolve_arch
from formal_transformers.training_run import Interrupt, plan_resume, plan_run, train

RUN_FLAGS = ("impl", "steps", "optimizer", "lr", "batch_size", "seed", "dtype", "eval_every",
             "checkpoint_every", "warmup", "weight_decay")
MODEL_FLAGS = {"d_e": "d_e", "heads": "H", "layers": "L", "d_mlp": "d_mlp"}
MINIMUMS = {"--steps": 1, "--batch-size": 1, "--warmup": 0, "--weight-decay": 0, "--seed": 0,
            "--d-e": 1, "--heads": 1, "--layers": 1, "--d-mlp": 1, "--length": 1,
            "--eval-every": 0, "--checkpoint-every": 1}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a transformer on a synthetic source with a known limit",
        description="Train the decoder on `markov`, the encoder on `masked-markov` or the "
                    "encoder-decoder on `reverse`/`copy` (or a model on --text FILE). Shows a "
                    "progress bar; writes a checkpoint, metrics.json and loss_curve.png (with "
                    "the source's exact limit) to --out; resumes when --out holds a run.")
    p.add_argument("--arch", choices=("decoder", "encoder", "encoder-decoder", "modern-decoder"),
                   help="architecture (default: the one the source trains)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--source", choices=sorted(SOURCE_ARCH), help="built-in synthetic source")
    src.add_argument("--text", metavar="FILE", help="a UTF-8 text file, character level")
    p.add_argument("--impl", choices=("torch", "reference"), help="implementation (torch)")
    p.add_argument("--steps", type=int, help="total optimisation steps")
    p.add_argument("--optimizer", choices=("adamw", "sgd"),
                   help="AdamW, or the spec's plain gradient descent (sgd)")
    p.add_argument("--lr", type=float, help="peak learning rate (eta)")
    p.add_argument("--batch-size", type=int, dest="batch_size", help="sequences per step")
    p.add_argument("--warmup", type=int, help="linear warm-up steps")
    p.add_argument("--weight-decay", type=float, dest="weight_decay", help="AdamW decay")
    p.add_argument("--seed", type=int, help="seed of the initial parameters and the data")
    p.add_argument("--dtype", choices=("float32", "float64"), help="parameter dtype")
    p.add_argument("--d-e", type=int, dest="d_e", help="embedding size d_e")
    p.add_argument("--heads", type=int, help="attention heads H")
    p.add_argument("--layers", type=int, help="layers L (L_enc = L_dec for encoder-decoder)")
    p.add_argument("--d-mlp", type=int, dest="d_mlp", help="MLP width d_mlp")
    p.add_argument("--length", type=int,
                   help="sequence length (reverse/copy: the longest string, default 16)")
    p.add_argument("--eval-every", type=int, dest="eval_every", help="steps between evaluations")
    p.add_argument("--checkpoint-every", type=int, dest="checkpoint_every",
                   help="steps between checkpoints")
    p.add_argument("--distributed", choices=("ddp", "fsdp"),
                   help="data-parallel training on --nproc local processes (torch_impl): DDP "
                        "replicas or FSDP2 shards; each step is still one global batch")
    p.add_argument("--nproc", type=int, default=None,
                   help="processes for --distributed (default 2); --batch-size must divide")
    p.add_argument("--out", help="run directory (default: runs/<source>-<arch>)")
    p.add_argument("--json", nargs="?", const="-", metavar="PATH",
                   help="write the summary as JSON to PATH (no PATH or '-': standard output, "
                        "instead of the table)")
    p.set_defaults(func=run)


def _model_overrides(args: argparse.Namespace, arch: str | None) -> dict[str, Any]:
    model = {MODEL_FLAGS[k]: getattr(args, k) for k in MODEL_FLAGS
             if getattr(args, k) is not None}
    if "L" in model and arch == "encoder-decoder":
        model["L_enc"] = model["L_dec"] = model.pop("L")
    return model


def plan(args: argparse.Namespace):
    """The RunConfig the arguments ask for, and the run directory (both checked: nothing has
    been written yet)."""
    check_minimum(args, MINIMUMS)
    check_finite_positive(args, ("--lr",))
    check_json_destination(args.json)
    settings = {k: getattr(args, k) for k in RUN_FLAGS if getattr(args, k) is not None}
    out = args.out
    if out is not None and is_run_dir(out):
        check_output_dir(out)
        stored_arch = args.arch
        if args.length is not None and stored_arch is None:
            from formal_transformers.checkpoint import load_checkpoint

            stored_arch = load_checkpoint(out).run["arch"]
        options = ({} if args.length is None else
                   {"max_len" if stored_arch == "encoder-decoder" else "length": args.length})
        return plan_resume(out, arch=args.arch, source=args.source, text=args.text,
                           model=_model_overrides(args, args.arch) or None,
                           source_options=options, **settings), out
    source = args.source if args.text is None else None
    arch = resolve_arch(source, args.text, args.arch)
    # --length: the sequence length, or for reversal/copying the longest context z
    length_key = "max_len" if arch == "encoder-decoder" else "length"
    options = {length_key: args.length} if args.length is not None else {}
    run_config = plan_run(source, text=args.text, arch=arch,
                          model=_model_overrides(args, arch), source_options=options, **settings)
    if out is None:
        name = source or "text"
        out = f"runs/{name}-{arch}"
    check_output_dir(out)
    return run_config, out


@contextlib.contextmanager
def graceful_interrupt():
    """Ctrl-C during training (the protocol of training_run.Interrupt): the first asks the
    run to stop after the current step, then evaluate and checkpoint; the second skips the
    evaluation (outside a step it interrupts at once, and the last completed step is
    checkpointed); only a third abandons a running step, keeping the last checkpoint."""
    state = Interrupt()

    def handler(signum, frame):
        state.hits += 1
        if state.hits >= 3 or (state.hits == 2 and not state.stepping):
            raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave Ctrl-C alone
        yield state
        return
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


def _trainer(args: argparse.Namespace, run_config):
    """training_run.train, or (--distributed) its form on --nproc ranks, checked before any
    process starts or any file is written."""
    if args.distributed is None:
        if args.nproc is not None:
            raise ConfigError("--nproc needs --distributed ddp or --distributed fsdp")
        return train
    from formal_transformers.distributed_run import check_distributed, train_distributed

    nproc = 2 if args.nproc is None else args.nproc
    check_distributed(run_config, args.distributed, nproc)
    return functools.partial(train_distributed, strategy=args.distributed, nproc=nproc)


def run(args: argparse.Namespace) -> int:
    run_config, out = plan(args)
    trainer = _trainer(args, run_config)
    title = f"train {run_config.arch} on {run_config.source['name']}"
    status = render.console(stderr=True)
    with render.progress() as bar:
        task = bar.add_task(title, total=run_config.steps, info="")

        def show(state, record):
            info = (f"loss {record['train_loss']:.4f}"
                    if record.get("train_loss") is not None else "")
            if "val_loss" in record:
                info += f"  val {record['val_loss']:.4f}"
            bar.update(task, completed=state.step, info=info)

        with graceful_interrupt() as interrupted:
            try:
                result = trainer(run_config, out, on_record=show, stop=interrupted)
            except KeyboardInterrupt:
                result = None
    if result is None:
        saved = interrupted.saved_step
        status.print("interrupted: " + (f"the checkpoint of step {saved} is in {out}"
                                        if saved is not None else "no checkpoint was written")
                     + "; run the same command again to resume", markup=False)
        return 130
    if interrupted():
        status.print(f"interrupted at step {result['step']}: checkpoint written to {out}; run "
                     "the same command again to resume", markup=False)
    if args.json is not None:
        write_json(args.json, result)
        if args.json == "-":
            return 0
    limits = {lim["metric"]: lim for lim in result["limits"]}
    rows = [(k, f"{v:.5g}" if isinstance(v, float) else v,
             f"{limits[k]['value']:.5g} ({limits[k]['label']})" if k in limits else "")
            for k, v in result["final"].items()]
    render.table(f"{title}: step {result['step']}/{result['steps']}, "
                 f"{result['train_seconds']:.1f} s training", ["metric", "value", "limit"], rows)
    render.console().print(f"run directory: {out} (checkpoint/, metrics.json, loss_curve.png)"
                           + (f"; summary JSON: {args.json}" if args.json else ""), markup=False)
    return 0
