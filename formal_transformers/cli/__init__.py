"""The `formal-transformers` command line: a thin layer over library functions.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds a parser
whose ``func`` default takes the parsed arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from formal_transformers import __version__
from formal_transformers.errors import FormalTransformersError

COMMAND_MODULES = ("spec_cmd", "verify_cmd", "train_cmd", "sample_cmd", "classify_cmd",
                   "memory_cmd", "bench_cmd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="formal-transformers",
        description="Formal transformer algorithms: the spec, a NumPy reference, a fast PyTorch "
                    "implementation and a conformance suite.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"formal_transformers.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FormalTransformersError as exc:
        print(f"formal-transformers {args.command}: error: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
