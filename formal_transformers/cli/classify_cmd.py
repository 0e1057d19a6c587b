"""`formal-transformers classify`: a trained ViT on generated images, beside the Bayes rule.

Thin layer over formal_transformers.classify (spec: Algorithm 77).
"""

from __future__ import annotations

import argparse

from formal_transformers import render
from formal_transformers.atomic import STDOUT, check_json_destination, check_output_file, write_json
from formal_transformers.classify import classify


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "classify", help="classify generated images with a ViT checkpoint from `train`",
        description="Draw --n fresh images from the checkpoint's source (--source images), "
                    "and print for each the true class, the model's class and probability, "
                    "and the class and probability of the exact Bayes posterior.")
    p.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="run directory (or its checkpoint/ directory)")
    p.add_argument("--n", type=int, default=8, help="images to classify (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated images")
    p.add_argument("--plot", metavar="PNG", help="also draw the first image, its patch grid "
                   "and the class token's attention over the patches")
    p.add_argument("--json", nargs="?", const=STDOUT, metavar="PATH",
                   help="write the result as JSON to PATH (no PATH or '-': standard output, "
                        "instead of the table)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_json_destination(args.json)
    if args.plot is not None:
        check_output_file(args.plot, "--plot")
    result = classify(args.checkpoint, n=args.n, seed=args.seed, plot=args.plot)
    if args.json is not None:
        write_json(args.json, result)
        if args.json == STDOUT:
            return 0
    render.table(f"ViT trained on {result['source']} ({result['step']} steps): "
                 f"{result['correct']}/{result['n']} correct, Bayes "
                 f"{result['bayes_correct']}/{result['n']}, agreeing with Bayes on "
                 f"{result['agree_with_bayes']}",
                 ["image", "true", "template at (row, col)", "predicted (p)", "Bayes (p)"],
                 [(r["image"], r["true"], tuple(r["template_at"]),
                   f"{r['predicted']} ({r['p_predicted']:.3f})",
                   f"{r['bayes']} ({r['p_bayes']:.3f})") for r in result["rows"]])
    return 0
