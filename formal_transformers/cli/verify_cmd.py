"""`formal-transformers verify`: run the conformance suite against an implementation."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from formal_transformers import render
from formal_transformers.atomic import write_json
from formal_transformers.errors import ConfigError

EXIT_STATUS = """exit status:
  0    at least one check ran and none failed
  1    a check failed, raised an error or timed out
  2    usage error, or the adapter could not be imported, constructed or validated
       (a one-line typed message on stderr, no traceback)
  3    nothing was checked (no declared algorithm applies; the report says why)
  130  interrupted by Ctrl-C (the table so far is printed, the JSON has "interrupted": true)
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify", help="run the conformance suite against an implementation",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXIT_STATUS,
        description="Check the properties of spec/properties.md against an implementation "
                    "through its adapter (see conformance/adapter.py) and print a table "
                    "algorithm x property. Each failure writes a runnable repro script.")
    p.add_argument("--impl", default=None, metavar="module:Object",
                   help="the adapter: 'torch' (default, the bundled torch_impl), 'reference' "
                        "(reference_numpy), hf:DIR (a Llama/Mistral/Qwen2/Gemma2 model saved "
                        "with save_pretrained) or module:Object (a class or an instance)")
    p.add_argument("--map", default=None, metavar="FILE.toml",
                   help="a mapping file that puts your nn.Module of the modern decoder (its "
                        "factory key, or --impl module:Factory) behind the suite without an "
                        "adapter class")
    p.add_argument("--profile", choices=("quick", "ci", "thorough"), default="ci",
                   help="examples per check: quick (about a minute), ci (default), thorough")
    p.add_argument("--seed", type=int, default=0, help="seed of the example search (default 0)")
    p.add_argument("--only", nargs="+", metavar="ID",
                   help="property ids (mask.no_influence), families (mask) or algorithm ids "
                        "(attention) to run; the others are left out")
    p.add_argument("--json", type=Path, metavar="PATH",
                   help="write the report as JSON to PATH (checked before the run starts)")
    p.add_argument("--no-shrink", action="store_true",
                   help="report the first failing example without shrinking it (faster)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="time limit of each check, shrinking included (default 120 s, 600 s "
                        "with --profile thorough; 0: none); past it the status is 'timed out'")
    p.add_argument("--show-uncovered", action="store_true",
                   help="list every not-covered check with its reason (default: one summary "
                        "line per algorithm)")
    p.add_argument("--repro-dir", type=Path, metavar="DIR",
                   help="where failures write their repro scripts <algorithm>__<property>.py "
                        "(default: repro/ next to --json, else ./reports/repro)")
    p.set_defaults(func=run)


def writable(path: Path, what: str, directory: bool = False) -> None:
    """Raise ConfigError unless ``path`` can be written as a file (a folder, with
    ``directory``), the folders above it created as needed."""
    if directory:
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{what} {path}: is a file, expected a directory")
        path = path / "repro.py"
    if path.exists() and path.is_dir():
        raise ConfigError(f"{what} {path}: is a directory, expected a file path")
    parent = path.parent if str(path.parent) else Path(".")
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{what} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path}: directory {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{what} {path}: file is not writable")


def run(args: argparse.Namespace) -> int:
    from conformance import report, runner
    from conformance.adapter import declared_variants, load_adapter
    from formal_transformers.atomic import check_json_destination
    from formal_transformers.user_cache import use_hypothesis_cache

    if args.timeout is not None and args.timeout < 0:
        raise ConfigError(f"--timeout must be >= 0 seconds, got {args.timeout:g}")
    check_json_destination(args.json)  # before the run: a bad PATH must not cost the report
    use_hypothesis_cache()  # Hypothesis's storage in the user cache, not ./.hypothesis
    repro_dir = args.repro_dir or (args.json.parent / "repro" if args.json is not None
                                   else Path("reports") / "repro")
    writable(repro_dir, "--repro-dir", directory=True)
    adapter = load_adapter(args.impl, args.map)
    label = report.adapter_label(adapter)
    variants = declared_variants(adapter)
    out = render.console()
    out.print(f"Verifying [bold]{label}[/bold] (profile {args.profile}, seed {args.seed})",
              highlight=False)
    out.print("Declared variants: " + ", ".join(f"{k}={v!r}" for k, v in variants.items()),
              markup=False, highlight=False)
    start = time.perf_counter()
    with render.progress(transient=True) as bar:
        task = bar.add_task("checks", total=None, info="")

        def tick(result: runner.Result, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total,
                       info=f"{result.algorithm} / {result.property}: {result.status}")

        results = runner.run(adapter, args.profile, args.seed, args.only,
                             shrink=not args.no_shrink, progress=tick, timeout=args.timeout)
    seconds = time.perf_counter() - start
    render.table(f"formal-transformers verify: {label}", report.COLUMNS,
                 report.table_rows(results, args.show_uncovered),
                 keep_whole=("algorithm", "property", "dtype"))
    for line in report.note_lines(results):
        out.print(f"note: {line}", markup=False, highlight=False)
    if not args.show_uncovered:
        for line in report.uncovered_lines(results):
            out.print(f"not covered: {line}", markup=False, highlight=False)
    failing = [r for r in results if r.status in runner.FAILING]
    repros = report.write_repros(results, args.impl or "torch", args.profile, repro_dir) \
        if failing else {}
    index = {id(r): i for i, r in enumerate(results)}
    for r in report.sorted_results(failing):
        path = repros.get(index[id(r)])
        out.print(report.failure_text(r, report.patterns_for(r, results),
                                      str(path) if path else ""), markup=False, highlight=False)
        out.print()
    for line in report.matching_mutants(results):
        out.print(line, markup=False, highlight=False)
    out.print(f"{report.summary_line(results)} in {seconds:.1f} s", highlight=False)
    if results.interrupted:
        status = 130
        out.print("interrupted (Ctrl-C): the checks above are those completed", highlight=False)
    elif failing:
        status = 1
    elif runner.nothing_checked(results):
        status = 3
        out.print("nothing was checked: "
                  + report.nothing_checked_reason(results, tuple(adapter.algorithms)),
                  markup=False, highlight=False)
    else:
        status = 0
    if args.json is not None:
        doc = report.to_json(results, label, args.impl or "torch", args.profile, args.seed,
                             seconds, interrupted=results.interrupted, timeout=args.timeout,
                             exit_status=status)
        if status == 3:
            doc["nothing_checked"] = report.nothing_checked_reason(results,
                                                                   tuple(adapter.algorithms))
        doc["variants"] = variants  # spec: "Declared variant" sections of Algorithms 1, 7-13
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, doc)
        out.print(f"JSON report written to {args.json}", highlight=False)
    return status
