"""`formal-transformers spec [ID] [--json [PATH]]`: list the catalogue or show one algorithm.

Text output renders the math as Unicode (ℝ, ←, ℓ, subscripts); the JSON keeps the LaTeX.
"""

from __future__ import annotations

import argparse
import sys

from formal_transformers import render
from formal_transformers.atomic import STDOUT, check_json_destination, write_json
from formal_transformers.spec import load_catalogue


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("spec", help="list the algorithms of the spec, or show one",
                       description="Without ID, list every algorithm (number, id, title, origin). "
                                   "With ID (an id, number or name), print its signature and "
                                   "numbered pseudocode, the math as Unicode text (--json "
                                   "keeps the spec's LaTeX).")
    p.add_argument("id", nargs="?", help="algorithm id, number or name (e.g. attention, 4)")
    p.add_argument("--json", nargs="?", const=STDOUT, metavar="PATH",
                   help="JSON (LaTeX math) instead of text, to PATH (no PATH or '-': standard "
                        "output); put it after ID")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_json_destination(args.json)
    catalogue = load_catalogue()
    if args.id is not None:
        key = args.id.lower()
        chosen = [a for a in catalogue if key in (a.id, str(a.number), a.name.lower())]
        if not chosen:
            known = ", ".join(a.id for a in catalogue)
            print(f"formal-transformers spec: no algorithm {args.id!r}; known ids: {known}",
                  file=sys.stderr)
            return 2
        catalogue = chosen
    if args.json is not None:
        write_json(args.json, [a.to_json() for a in catalogue])
    elif args.id is not None:
        render.algorithm(catalogue[0])
    else:
        render.table("formal-transformers spec", ["#", "id", "title", "kind", "origin"],
                     [(a.number, a.id, a.title, a.kind, a.origin) for a in catalogue],
                     keep_whole=("#", "id"))
    return 0
