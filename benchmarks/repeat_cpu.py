"""Run the CPU benchmarks of ``formal-transformers bench`` several times, each in a fresh
process, and report the spread of every ratio (median, min, max over the runs).

    python benchmarks/repeat_cpu.py --runs 5 --threads 2 --out reports/bench_runs.json

On a machine shared with other work, one run can land in a burst of load; the spread over
fresh processes is the honest figure. Each run interleaves torch_impl and its baseline
(torch_impl/bench.py), so both sides see the same load within a run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from formal_transformers.atomic import check_json_destination, write_json


def one_run(threads: int | None, only: list[str] | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        cmd = [sys.executable, "-m", "formal_transformers", "bench", "--json", str(out)]
        cmd += ["--threads", str(threads)] if threads is not None else []
        cmd += ["--only", *only] if only else []
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--only", nargs="+", default=None)
    p.add_argument("--out", default=None, help="write all runs and the summary as JSON")
    a = p.parse_args()
    check_json_destination(a.out, "--out")  # before the runs, not after them
    runs = [one_run(a.threads, a.only) for _ in range(a.runs)]
    summary = {}
    for name in [r["name"] for r in runs[0]["results"]]:
        ratios = [next(r for r in run["results"] if r["name"] == name)["ratio"] for run in runs]
        summary[name] = {"median": statistics.median(ratios), "min": min(ratios),
                         "max": max(ratios), "ratios": ratios}
        print(f"{name:14s} ratio median {summary[name]['median']:.2f}x "
              f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x over {len(ratios)} runs)")
    if a.out:
        write_json(a.out, {"summary": summary, "runs": runs})


if __name__ == "__main__":
    main()
