"""`formal-transformers memory`: predicted (and optionally measured) memory of a model.

Thin layer over formal_transformers.memory: parse a preset or hyperparameters, call the
predictor for both attention paths (or the reference), render the breakdown; ``--measure``
runs a real training step and a decode and prints measured beside predicted.
"""

from __future__ import annotations

import argparse
import dataclasses

from formal_transformers import render
from formal_transformers.atomic import STDOUT, check_json_destination, write_json
from formal_transformers.cli.flags import check_finite_positive, check_minimum
from formal_transformers.errors import ConfigError
from formal_transformers.hyperparameters import (
    ACTIVATIONS,
    ATTENTION_BIASES,
    CONFIG_CLASSES,
    GATED_ACTIVATIONS,
    MLPS,
    NORMS,
    POSITIONS,
    QK_NORMS,
    Config,
)
from formal_transformers.memory import compare
from formal_transformers.memory.counts import parameter_counts, tied_parameter_count
from formal_transformers.memory.predict import (
    DTYPE_BYTES,
    OPTIMIZERS,
    inference_memory,
    training_memory,
)
from formal_transformers.presets import PRESETS, get_preset
from formal_transformers.rope import LAYOUTS as ROPE_LAYOUTS
from formal_transformers.rope import Rope

_HYPER = (("N_V", int), ("l_max", int), ("d_e", int), ("d_mlp", int), ("L", int), ("H", int),
          ("L_enc", int), ("L_dec", int), ("activation", str), ("layer_norm_eps", float),
          ("G", int), ("d_head", int), ("norm_eps", float), ("attn_softcap", float),
          ("final_softcap", float))
# the modern decoder's selections (Algorithm 65): --flag -> (field, choices)
_MODERN_CHOICES = {"--norm": ("norm", NORMS), "--positions": ("positions", POSITIONS),
                   "--mlp": ("mlp", MLPS), "--qk-norm": ("qk_norm", QK_NORMS),
                   "--attention-bias": ("attention_bias", ATTENTION_BIASES)}
_MODERN_SWITCHES = {"--norm-offset": "norm_offset", "--post-norms": "post_norms",
                    "--mlp-bias": "mlp_bias", "--tie-embeddings": "tie_embeddings",
                    "--embedding-scale": "embedding_scale"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "memory", help="predict (and measure) the memory of training and inference",
        description="Exact memory accounting of spec/memory.md: parameters, gradients, "
                    "optimizer state, the activations kept for the backward pass (naive and "
                    "sdpa attention, or the NumPy reference), working memory, and inference "
                    "with a KV cache. --measure runs a real step and compares.")
    p.add_argument("--preset", choices=list(PRESETS), help="named hyperparameters")
    p.add_argument("--arch", choices=list(CONFIG_CLASSES), help="architecture (without --preset)")
    for name, kind in _HYPER:
        flags = [f"--{name}"] + (["--kv-heads"] if name == "G" else [])
        p.add_argument(*flags, dest=name, type=kind,
                       help="hyperparameter (overrides the preset)",
                       **({"choices": sorted(set(ACTIVATIONS) | set(GATED_ACTIVATIONS))}
                          if name == "activation" else {}))
    for flag, (name, choices) in _MODERN_CHOICES.items():
        p.add_argument(flag, dest=name, choices=choices, help="modern decoder: selection")
    for flag, name in _MODERN_SWITCHES.items():
        p.add_argument(flag, dest=name, action="store_true", default=None,
                       help="modern decoder: switch the selection on")
    p.add_argument("--rope-layout", choices=ROPE_LAYOUTS,
                   help="modern decoder: which features RoPE pairs (its cos / sin tables)")
    p.add_argument("--rope-fraction", type=float,
                   help="modern decoder: the fraction of each head's features RoPE rotates")
    p.add_argument("--window", type=int,
                   help="modern decoder: a sliding window of W keys on every layer")
    p.add_argument("--windows", help="modern decoder: one window per layer, comma-separated, "
                                     "'none' for full attention (e.g. 4096,none)")
    p.add_argument("--embedding-layer-norm", action="store_true", default=None,
                   help="E transformer: BERT's layer norm after the embedding")
    p.add_argument("--batch", type=int, default=1, help="sequences per step, B (default 1)")
    p.add_argument("--seq", type=int, help="sequence length T = l_x (default l_max)")
    p.add_argument("--src-seq", type=int, help="encoder-decoder: context length l_z (default T)")
    p.add_argument("--new-tokens", type=int,
                   help="inference: tokens generated (default T // 2; the cache holds T)")
    p.add_argument("--dtype", choices=list(DTYPE_BYTES), default="float32")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw")
    p.add_argument("--reference", action="store_true",
                   help="account for reference_numpy (one sequence, float64, gradient descent)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--measure", action="store_true",
                   help="run a training step and a decode and print measured beside predicted")
    p.add_argument("--max-measure-bytes", type=float, default=2**30,
                   help="refuse to measure when a prediction exceeds this (default 1 GiB)")
    p.add_argument("--json", nargs="?", const=STDOUT, metavar="PATH",
                   help="also write the results as JSON to PATH (no PATH or '-': standard "
                        "output, instead of the tables)")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> Config:
    """The preset (with overrides) or the config built from --arch and hyperparameters."""
    names = [n for n, _ in _HYPER] + [n for n, _ in _MODERN_CHOICES.values()] + list(
        _MODERN_SWITCHES.values())
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if args.embedding_layer_norm is not None:
        given["embedding_layer_norm"] = True
    given |= _windows(args, given) | _rope(args)
    if args.preset:
        base = get_preset(args.preset)
        fields = {f.name for f in dataclasses.fields(base)}
        unknown = sorted(set(given) - fields)
        if unknown:
            raise ConfigError(f"preset {args.preset!r} ({base.arch}) has no hyperparameter "
                              f"{unknown[0]!r}")
        return dataclasses.replace(base, **given)
    if not args.arch:
        raise ConfigError("give --preset NAME or --arch with its hyperparameters "
                          f"(presets: {', '.join(PRESETS)})")
    cls = CONFIG_CLASSES[args.arch]
    fields = {f.name for f in dataclasses.fields(cls)}
    missing = sorted(f.name for f in dataclasses.fields(cls)
                     if f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING and f.name not in given)
    if missing:
        raise ConfigError(f"--arch {args.arch} needs --{missing[0]}"
                          + (f" (and {', '.join('--' + m for m in missing[1:])})"
                             if len(missing) > 1 else ""))
    return cls(**{k: v for k, v in given.items() if k in fields})


def _windows(args: argparse.Namespace, given: dict) -> dict:
    """--window W (every layer) or --windows W0,W1,... ('none': full) as the config's field;
    the layer count is checked by the config itself."""
    if args.window is not None and args.windows is not None:
        raise ConfigError("give --window (every layer) or --windows (one per layer), not both")
    if args.window is not None:
        if args.window < 1:
            raise ConfigError(f"--window must be a positive integer, got {args.window}")
        L = given.get("L", getattr(get_preset(args.preset), "L", 1) if args.preset else 1)
        return {"windows": (args.window,) * L}
    if args.windows is None:
        return {}
    windows = []
    for item in args.windows.split(","):
        item = item.strip().lower()
        if item == "none":
            windows.append(None)
        elif item.isdigit() and int(item) > 0:
            windows.append(int(item))
        else:
            raise ConfigError(f"--windows takes positive integers or 'none' separated by "
                              f"commas, got {item!r} in {args.windows!r}")
    return {"windows": tuple(windows)}


def _rope(args: argparse.Namespace) -> dict:
    """--rope-layout / --rope-fraction over the preset's RoPE (theta and scaling kept); the
    Rope dataclass checks them."""
    changes = {k: v for k, v in (("layout", args.rope_layout), ("fraction", args.rope_fraction))
               if v is not None}
    if not changes:
        return {}
    base = getattr(get_preset(args.preset), "rope", None) if args.preset else None
    return {"rope": dataclasses.replace(base or Rope(), **changes)}


def human(n: int | float) -> str:
    """Bytes in binary units, e.g. 1.50 GiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


MINIMUMS = {"--batch": 1, "--seq": 1, "--src-seq": 1, "--new-tokens": 1,
            **{f"--{name}": 1 for name, kind in _HYPER if kind is int},
            "--layer_norm_eps": 0}


def check_args(args: argparse.Namespace) -> None:
    """Every flag in its domain and every output possible, before any work (ConfigError,
    OutputPathError)."""
    check_minimum(args, MINIMUMS)
    check_finite_positive(args, ("--max-measure-bytes",))
    check_json_destination(args.json)
    if args.measure and args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--measure --device cuda needs a CUDA device, and torch "
                              f"{torch.__version__} sees none here; measure on the CPU "
                              "(--device cpu) or predict only (leave out --measure)")


def run(args: argparse.Namespace) -> int:
    check_args(args)
    config = config_from_args(args)
    if config.arch == "vit":  # N patches and the class token per image: nothing to choose
        if args.seq is not None and args.seq != config.n_patches + 1:
            raise ConfigError(f"--seq: a ViT of {config.height} x {config.width} images and "
                              f"patch size {config.patch_size} reads N + 1 = "
                              f"{config.n_patches + 1} tokens per image, not {args.seq}")
        args.seq = config.n_patches + 1
    seq = config.l_max if args.seq is None else args.seq
    paths = ("reference",) if args.reference else ("naive", "sdpa")
    if args.reference:
        args.batch, args.dtype, args.optimizer = 1, "float64", "sgd"
    estimates = {p: training_memory(config, args.batch, seq, args.dtype, args.optimizer, p,
                                    args.src_seq, args.device) for p in paths}
    inference = None  # the KV cache is torch_impl's; the reference recomputes every prefix
    if config.arch not in ("encoder", "vit") and not args.reference:
        new = max(1, seq // 2) if args.new_tokens is None else args.new_tokens
        prompt = (seq - new + 1) if config.arch in ("decoder", "modern-decoder") else (
            seq if args.src_seq is None else args.src_seq)
        if prompt < 1:
            raise ConfigError(f"--new-tokens {new} leaves no prompt within --seq {seq}")
        inference = inference_memory(config, args.batch, prompt, new, args.dtype)
    quiet = args.json == STDOUT  # the JSON on stdout replaces the tables
    if not quiet:
        _print_prediction(config, args, seq, estimates, inference)
    result = {"config": config.to_dict(), "parameters": parameter_counts(config),
              "tied_parameters": tied_parameter_count(config),
              "training": {p: e.to_dict() for p, e in estimates.items()},
              "inference": inference.to_dict() if inference else None}
    ok = True
    if args.measure:
        checks = compare.measure_all(estimates, inference, args.device, args.max_measure_bytes)
        ok = all(c.ok for c in checks)
        if not quiet:
            render.table("Measured beside predicted", ["quantity", "predicted", "measured",
                                                    "error", "tolerance", "within"],
                         [(c.name, human(c.predicted), human(c.measured),
                           f"{c.error:+.2%}", f"{c.tolerance:.0%}", "yes" if c.ok else "NO")
                          for c in checks])
            _print_comparison([c for c in checks if c.baselines])
        result["measured"] = [c.to_dict() for c in checks]
    if args.json is not None:
        write_json(args.json, result)
    return 0 if ok else 1


def _print_prediction(config, args, seq, estimates, inference) -> None:
    counts = parameter_counts(config)
    render.table(f"Parameters ({config.arch})", ["component", "count", f"bytes ({args.dtype})"],
                 [(k, f"{v:,}", human(v * DTYPE_BYTES[args.dtype])) for k, v in counts.items()]
                 + ([("total, W_u tied to W_e", f"{tied_parameter_count(config):,}", "")]
                    if config.arch != "vit" else []))
    paths = list(estimates)
    first = estimates[paths[0]]
    rows = []
    for component, _, formula in first.rows:
        rows.append([component] + [human(estimates[p].row(component)) for p in paths]
                    + [formula])
        if component == "activations":
            for g in sorted({t.group for t in first.activations}):
                rows.append([f"  {g}"] + [human(sum(
                    t.bytes for t in estimates[p].activations if t.group == g))
                    for p in paths] + [""])
    rows.append(["peak"] + [human(estimates[p].peak) for p in paths] + ["(M28) / (M29)"])
    l_z = seq if args.src_seq is None else args.src_seq
    src = f", l_z {l_z}" if config.arch == "encoder-decoder" else ""
    render.table(f"Training step: batch {args.batch}, seq {seq}{src}, {args.dtype}, "
                 f"{args.optimizer}", ["component", *paths, "formula"], rows)
    if inference is not None:
        s = inference.settings
        render.table(f"Inference: batch {s['batch']}, prompt {s['prompt']}, "
                     f"{s['new_tokens']} new tokens, cache of {s['cache_positions']} positions",
                     ["component", "bytes", "formula"],
                     [(c, human(b), f) for c, b, f in inference.rows if b]
                     + [("peak", human(inference.peak), "(M31) / (M32)")])


ESTIMATE_TITLES = {"ours": "ours (spec/memory.md)", "static": "weights+grads+optimizer",
                   "korthikanti": "Korthikanti et al. 2022"}


def _print_comparison(checks) -> None:
    """Each measured peak beside the three estimates of spec/memory.md section 12, with
    their relative errors (predicted - measured) / measured."""
    if not checks:
        return
    names = list(checks[0].estimates())
    render.table("Three estimates of the measured peak (error = (estimate - measured) / "
                 "measured)", ["peak", "measured",
                               *[ESTIMATE_TITLES[n] for n in names], "closest"],
                 [(c.name.removesuffix(": peak"), human(c.measured),
                   *[f"{human(c.estimates()[n])} ({c.error_of(n):+.1%})" for n in names],
                   ESTIMATE_TITLES[min(names, key=lambda n: abs(c.error_of(n)))])
                  for c in checks])
