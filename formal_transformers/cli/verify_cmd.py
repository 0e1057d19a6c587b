"""`formal-transformers verify`: run the conformance suite against an implementation."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from formal_transformers import render
from formal_transformers.atomic import write_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify", help="run the conformance suite against an implementation",
        description="Check the properties of spec/properties.md against an implementation "
                    "through its adapter (see conformance/adapter.py) and print a table "
                    "algorithm x property. Exit status 0 only when no check failed.")
    p.add_argument("--impl", default=None, metavar="module:Object",
                   help="the adapter: 'torch' (default, the bundled torch_impl), 'reference' "
                        "(reference_numpy), hf:DIR (a Llama/Mistral/Qwen2/Gemma2 model saved "
                        "with save_pretrained) or module:Object (a class or an instance)")
    p.add_argument("--map", default=None, metavar="FILE.toml",
                   help="a mapping file that puts --impl module:Factory (your nn.Module of the "
                        "modern decoder) behind the suite without an adapter class")
    p.add_argument("--profile", choices=("quick", "ci", "thorough"), default="ci",
                   help="examples per check: quick (about a minute), ci (default), thorough")
    p.add_argument("--seed", type=int, default=0, help="seed of the example search (default 0)")
    p.add_argument("--only", nargs="+", metavar="ID",
                   help="property ids (mask.no_influence), families (mask) or algorithm ids "
                        "(attention) to run; the others are left out")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the report as JSON to PATH")
    p.add_argument("--no-shrink", action="store_true",
                   help="report the first failing example without shrinking it (faster)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from conformance import report, runner
    from conformance.adapter import load_adapter

    adapter = load_adapter(args.impl, args.map)
    out = render.console()
    out.print(f"Verifying [bold]{adapter.name}[/bold] (profile {args.profile}, seed {args.seed})")
    start = time.perf_counter()
    with render.progress(transient=True) as bar:
        task = bar.add_task("checks", total=None, info="")

        def tick(result: runner.Result, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total,
                       info=f"{result.algorithm} / {result.property}: {result.status}")

        results = runner.run(adapter, args.profile, args.seed, args.only,
                             shrink=not args.no_shrink, progress=tick)
    seconds = time.perf_counter() - start
    render.table(f"formal-transformers verify: {adapter.name}",
                 ["algorithm", "property", "dtype", "status", "examples", "max error"],
                 report.table_rows(results), keep_whole=("algorithm", "property", "dtype"))
    for r in report.sorted_results(results):
        if r.status in ("failed", "error"):
            out.print(report.failure_text(r), markup=False, highlight=False)
            out.print()
    out.print(f"{report.summary_line(results)} in {seconds:.1f} s")
    if args.json is not None:
        doc = report.to_json(results, adapter.name, args.impl or "torch", args.profile,
                             args.seed, seconds)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, doc)
        out.print(f"JSON report written to {args.json}")
    counts = runner.summary(results)
    return 1 if counts["failed"] or counts["error"] else 0
