"""`formal-transformers vectors`: write the golden vectors, or check an implementation on them."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from formal_transformers import render
from formal_transformers.atomic import write_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "vectors", help="write the reference's known-answer vectors, or check an adapter on them",
        description="--out DIR writes, for every algorithm the reference implements, "
                    "known-answer cases of the float64 reference (safetensors tensors plus "
                    "index.json, schema spec/vectors.schema.json); the same versions write "
                    "byte-identical files (exit status 1 if some algorithm's cases could not "
                    "be built). --check DIR runs an adapter over them (exit status 0 when at "
                    "least one case ran and none failed, 1 when one failed, 3 when nothing "
                    "was checked, like verify's).")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--out", type=Path, metavar="DIR", help="write the vectors into DIR")
    what.add_argument("--check", type=Path, metavar="DIR", help="check --impl on DIR's vectors")
    p.add_argument("--impl", default=None, metavar="module:Object",
                   help="with --check: the adapter ('torch' default, 'reference', module:Object)")
    p.add_argument("--only", nargs="+", metavar="ID", help="with --out: these algorithm ids only")
    p.add_argument("--json", type=Path, metavar="PATH", help="with --check: the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from conformance import vectors

    out = render.console()
    if args.out is not None:
        with render.progress(transient=True) as bar:
            task = bar.add_task("vectors", total=None, info="")
            index = vectors.write(args.out, args.only,
                                  progress=lambda alg: bar.update(task, info=alg))
        cases = sum(len(a["cases"]) for a in index["algorithms"])
        out.print(f"{cases} cases of {len(index['algorithms'])} algorithms written to "
                  f"{args.out} (spec {index['spec_version']['version']})")
        for entry in index["not_written"]:
            out.print(f"  not written: {entry['algorithm']}: {entry['reason']}", markup=False)
        return 1 if any(e["reason"].startswith("error:") for e in index["not_written"]) else 0
    return _check(args, vectors, out)


def _check(args: argparse.Namespace, vectors, out) -> int:
    from conformance import report, runner
    from conformance.adapter import load_adapter

    adapter = load_adapter(args.impl)
    start = time.perf_counter()
    results = vectors.check(args.check, adapter)
    seconds = time.perf_counter() - start
    render.table(f"formal-transformers vectors --check: {adapter.name}",
                 [c if c != "examples" else "cases" for c in report.COLUMNS],
                 report.table_rows(results, show_uncovered=True),
                 keep_whole=("algorithm", "property", "dtype"))
    for r in report.sorted_results(results):
        if r.status in runner.FAILING:
            out.print(report.failure_text(r), markup=False, highlight=False)
            out.print()
    out.print(f"{report.summary_line(results)} in {seconds:.1f} s")
    if args.json is not None:
        write_json(args.json, report.to_json(results, adapter.name, args.impl or "torch",
                                             "vectors", 0, seconds))
        out.print(f"JSON report written to {args.json}")
    if any(r.status in runner.FAILING for r in results):
        return 1
    if runner.nothing_checked(results):
        out.print("nothing was checked: the adapter declares none of the vectors' algorithms "
                  "(an empty run is not a pass)")
        return 3
    return 0
