"""`formal-transformers bench`: torch_impl against baselines timed in the same run.

Every figure is a ratio (baseline time / torch_impl time) measured on this machine in this
run; see torch_impl/bench.py for what each benchmark does. GPU benchmarks run only with
--gpu-train / --gpu-decode and a CUDA device.
"""

from __future__ import annotations

import argparse
import importlib.util
import os

from formal_transformers import render
from formal_transformers.atomic import STDOUT, check_json_destination, write_json
from formal_transformers.cli.flags import check_minimum
from formal_transformers.errors import ConfigError
from formal_transformers.provenance import run_facts

INSTALL_BENCH = "pip install 'formal-transformers[bench]'"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark torch_impl against baselines (ratios)",
                       description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="run only these CPU benchmarks (reference, gpt2_forward, gpt2_decode)")
    p.add_argument("--quick", action="store_true",
                   help="tiny shapes and few repeats: a smoke test, not a measurement")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads for both sides (default: torch's choice)")
    p.add_argument("--json", nargs="?", const=STDOUT, metavar="PATH",
                   help="also write the results as JSON to PATH (no PATH or '-': standard "
                        "output)")
    p.add_argument("--no-cpu", action="store_true",
                   help="skip the CPU benchmarks (with --gpu-train / --gpu-decode)")
    _gpu_flags(p)
    p.set_defaults(func=run)


def _gpu_flags(p: argparse.ArgumentParser) -> None:
    """The GPU benchmarks' flags (torch_impl/bench_gpu.py, bench_gpu_decode.py)."""
    p.add_argument("--gpu-train", action="store_true",
                   help="GPT-2 124M training tokens/s and MFU (bf16 autocast, fused AdamW, "
                        "16 x 1024) of torch_impl, nanoGPT (--nanogpt) and transformers")
    p.add_argument("--gpu-decode", action="store_true",
                   help="batch-1 bf16 greedy decode tokens/s: torch_impl's CUDA-graph "
                        "decoder vs transformers generate, as fractions of the HBM limit")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile every side of --gpu-train (as nanoGPT's train.py)")
    p.add_argument("--nanogpt", metavar="PATH", default=None,
                   help="a checkout of github.com/karpathy/nanoGPT (the directory holding "
                        "model.py), timed as --gpu-train's baseline")
    p.add_argument("--peak-flops", type=float, default=None, metavar="FLOP/S",
                   help="the device's peak dense bf16 FLOP/s for MFU, where its name is not "
                        "in torch_impl/bench_gpu.py's table (e.g. 989.4e12)")
    p.add_argument("--gpu-device", choices=("cuda", "cpu"), default="cuda",
                   help="where the GPU benchmarks run; 'cpu' with --quick is a smoke test")


def run(args: argparse.Namespace) -> int:
    import torch

    from torch_impl import bench

    unknown = sorted(set(args.only or ()) - set(bench.CPU_BENCHMARKS))
    if unknown:
        raise ConfigError(f"--only: unknown benchmark(s) {unknown}; known: "
                          f"{', '.join(bench.CPU_BENCHMARKS)}")
    check_minimum(args, {"--threads": 1})
    check_json_destination(args.json)
    chosen = [] if args.no_cpu else list(args.only or bench.CPU_BENCHMARKS)
    need = [n for n in chosen if n in bench.NEEDS_TRANSFORMERS]
    if need and importlib.util.find_spec("transformers") is None:
        raise ConfigError(f"the benchmarks {need} time Hugging Face transformers as their "
                          f"baseline, which is not installed: {INSTALL_BENCH} (or run "
                          "`formal-transformers bench --only reference`)")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    status = render.console(stderr=True)
    load_before = os.getloadavg()
    results = [] if args.no_cpu else bench.run_all(
        args.only, quick=args.quick, progress=lambda name: status.print(f"running {name} ..."))
    # other processes on the machine change the figures: say how busy it was
    rows = [r.to_json() for r in results]
    if args.quick:  # a smoke test: its tiny shapes say nothing about the targets
        rows = [r | {"met_target": None} for r in rows]
    options = {k: v for k, v in vars(args).items() if k != "func"}  # the command's flags
    report = {"run": run_facts() | {"command": "formal-transformers bench", "options": options},
              "environment": bench.environment(), "quick": args.quick,
              "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
              "results": rows}
    if results:
        _table(results, verdict=not args.quick)
    report["gpu"] = _gpu(args)
    if args.json is not None:
        write_json(args.json, report)
    return 0


def _table(results: list, verdict: bool = True) -> None:
    """The results; ``verdict`` False (--quick) leaves out whether a target is met."""
    status = render.console(stderr=True)
    title = "formal-transformers bench (ratio = baseline time / torch_impl time)"
    if not verdict:
        title += ": --quick smoke test, tiny shapes, no verdict on the targets"
    render.table(title,
                 ["benchmark", "torch_impl s (min-max)", "baseline s (min-max)", "baseline",
                  "ratio", "target"],
                 [(r.name, _span(r.ours), _span(r.theirs), r.baseline, f"{r.ratio:.2f}x",
                   "" if r.target is None else f">= {r.target:.1f}x"
                   + ("" if not verdict else
                      f" {'met' if r.ratio >= r.target else 'NOT met'}")) for r in results])
    for r in results:
        status.print(f"{r.name}: {r.what}; {r.details}", markup=False)
        if "floor_target" in r.details:
            _floor_table(r.details, verdict)


def _floor_table(d: dict, verdict: bool) -> None:
    """Each decoder as a fraction of the weight-reading floor timed in the same run."""
    target = d["floor_target"]
    rows = []
    for who, label in (("ours", f"torch_impl: {d['ours']}"), ("eager", f"torch_impl: {d['eager']}"),
                       ("baseline", "transformers")):
        fraction = d[f"fraction_of_floor_{who}"]
        met = ("" if not verdict or who == "baseline" else
               " met" if fraction >= target else " NOT met")
        rows.append((label, f"{d[f'step_ms_{who}']:.2f}", f"{fraction:.3f}",
                     f"{d[f'fraction_of_floor_per_call_{who}']:.3f}",
                     "" if who == "baseline" else f">= {target}{met}"))
    render.table(f"decode step vs the float32 weight-reading floor "
                 f"({d['floor_ms_per_step']:.2f} ms per step, same run)",
                 ["decoder", "step ms", "fraction of floor (step)", "fraction (whole call)",
                  "target"], rows)


def _span(t) -> str:
    return f"{t.median:.4f} ({t.min:.4f}-{t.max:.4f})"


def _gpu(args: argparse.Namespace) -> dict:
    """The GPU benchmarks of --gpu-train / --gpu-decode, with the run's provenance.

    A part that fails does not cost the other its figures: both run, the JSON (--json) gets
    what was measured and the failure, and then the failure ends the command."""
    if not (args.gpu_train or args.gpu_decode):
        return {}
    import sys

    from torch_impl import bench_gpu

    device = bench_gpu.bench_device(args.gpu_device)
    if args.gpu_train:  # the user's mistakes end the command before any work
        if device.type == "cuda":
            bench_gpu.peak_flops(bench_gpu.device_name(device), args.peak_flops)
        if args.nanogpt is not None:
            from torch_impl.bench_nanogpt import load_nanogpt

            load_nanogpt(args.nanogpt)
    out = {"provenance": bench_gpu.provenance(sys.argv[1:], args.nanogpt),
           "quick": args.quick}
    parts = {"training": _gpu_training, "decode": _gpu_decode}
    wanted = {"training": args.gpu_train, "decode": args.gpu_decode}
    failed = {}
    for name, part in parts.items():
        if wanted[name]:
            try:
                out[name] = part(args, device)
            except Exception as exc:  # reported below, after the other part has run
                failed[name] = exc
                out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    render.print_json(out)
    _gpu_table(out)
    if failed:
        if args.json is not None:
            write_json(args.json, {"gpu": out})
        raise next(iter(failed.values()))
    return out


def _gpu_training(args: argparse.Namespace, device) -> dict:
    from torch_impl import bench_gpu

    quick = args.quick
    config = (bench_gpu.gpt2_training_config(N_V=64, l_max=16, d_e=32, L=2, H=2)
              if quick else bench_gpu.gpt2_training_config())
    compile = ({"backend": "eager"} if quick else True) if args.compile else False
    shape = dict(batch_size=2, l=16, steps=2, warmup=1, rounds=1) if quick else {}
    return bench_gpu.bench_training(config, device, compile=compile, nanogpt=args.nanogpt,
                                    peak=args.peak_flops, **shape)


def _gpu_decode(args: argparse.Namespace, device) -> dict:
    import dataclasses

    from formal_transformers.presets import get_preset
    from torch_impl import bench_gpu_decode

    config = dataclasses.replace(get_preset("gpt2-small"), tied_unembedding=True)
    shape = {}
    if args.quick:
        config = dataclasses.replace(config, N_V=64, l_max=32, d_e=32, d_mlp=128, L=2, H=2)
        shape = dict(l_prompt=4, l_gen=8, repeats=1, copy_bytes=1 << 20)
    return bench_gpu_decode.bench_decode(config, device, **shape)


def _gpu_table(out: dict) -> None:
    """The headline GPU figures (the JSON has them all)."""
    rows = []
    train = out.get("training", {})
    for name, side in train.get("sides", {}).items():
        mfu = "" if side["mfu"] is None else f"MFU {side['mfu']:.3f}"
        rows.append((f"train {name}", f"{side['tokens_per_s']:,.0f} tok/s", mfu))
    for key in ("ratio_torch_impl_vs_nanogpt", "ratio_torch_impl_vs_transformers"):
        if train.get(key) is not None:
            rows.append((f"train {key.removeprefix('ratio_')}", f"{train[key]:.3f}x", ""))
    decode = out.get("decode", {})
    for name, row in decode.get("decoders", {}).items():
        fraction = row["fraction_of_limit_measured_bandwidth"]
        rows.append((f"decode {name}", f"{row['tokens_per_s']:,.0f} tok/s",
                     f"{fraction:.3f} of the weight-read limit (measured bandwidth)"))
    vs = decode.get("ratio_torch_impl_vs_transformers_generate")
    if vs is not None:
        rows.append(("decode torch_impl vs transformers_generate", f"{vs:.2f}x", ""))
    rows += [(f"{name} FAILED", part["error"][:200], "") for name, part in out.items()
             if isinstance(part, dict) and "error" in part]
    render.table("formal-transformers bench: GPU" + (" (--quick smoke test: no verdict)"
                                                     if out["quick"] else ""),
                 ["figure", "value", ""], rows)
