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
    p.add_argument("--gpu-train", action="store_true",
                   help="CUDA: GPT-2 small training tokens/s and MFU (bf16, fused AdamW)")
    p.add_argument("--gpu-decode", action="store_true", help="CUDA: decode tokens/s")
    p.add_argument("--compile", action="store_true", help="torch.compile for --gpu-train")
    p.set_defaults(func=run)


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
    if not (args.gpu_train or args.gpu_decode):
        return {}
    from formal_transformers.presets import get_preset
    from torch_impl import bench_gpu

    config = get_preset("gpt2-small")
    out = {}
    if args.gpu_train:
        out["training"] = bench_gpu.bench_gpu_training(config, compile=args.compile)
    if args.gpu_decode:
        out["decode"] = bench_gpu.bench_gpu_decode(config)
    render.print_json(out)
    return out
