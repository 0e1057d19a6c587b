"""`formal-transformers sample`: generate from a trained checkpoint with the KV cache.

Thin layer over formal_transformers.sampling (spec: Algorithms 14-15).
"""

from __future__ import annotations

import argparse

from formal_transformers import render
from formal_transformers.atomic import STDOUT, check_json_destination, write_json
from formal_transformers.sampling import sample


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample", help="sample from a checkpoint written by `train`",
        description="Decoder: continue --prompt. Encoder-decoder: map --prompt (the context z) "
                    "to its target, e.g. reverse it. Encoder: fill the '_' characters of "
                    "--prompt ('_' is always the encoder's mask token). Without --prompt, a "
                    "prompt is drawn from the training source; an empty --prompt is an error. "
                    "--temperature 0 is greedy decoding.")
    p.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="run directory (or its checkpoint/ directory)")
    p.add_argument("--prompt", help="text in the source's characters (see `train`)")
    p.add_argument("--temperature", type=float, default=1.0, help="tau >= 0 (default 1)")
    p.add_argument("--top-k", type=int, dest="top_k", metavar="K",
                   help="keep the tokens at least as probable as the K-th (ties kept; >= 1)")
    p.add_argument("--top-p", type=float, dest="top_p", metavar="P",
                   help="nucleus: keep tokens while the mass above them is below P, in (0, 1]")
    p.add_argument("--min-p", type=float, dest="min_p", metavar="P",
                   help="keep tokens with probability >= P times the largest, P in [0, 1]")
    p.add_argument("--temperature-order", dest="order", metavar="ORDER",
                   help="temperature_first (transformers, vLLM; the default) or "
                        "truncation_first (llama.cpp): which distribution top-k/top-p/min-p "
                        "measure (spec: Algorithm 60)")
    p.add_argument("--max-new-tokens", type=int, dest="max_new_tokens",
                   help="decoder: tokens to generate (default: fill the context); "
                        "encoder-decoder: at most this many before eos (default and most: "
                        "l_max); not for the encoder")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler (>= 0)")
    p.add_argument("--json", nargs="?", const=STDOUT, metavar="PATH",
                   help="write the result as JSON to PATH (no PATH or '-': standard output, "
                        "instead of the text)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_json_destination(args.json)
    result = sample(args.checkpoint, prompt=args.prompt, temperature=args.temperature,
                    max_new_tokens=args.max_new_tokens, seed=args.seed, top_k=args.top_k,
                    top_p=args.top_p, min_p=args.min_p, order=args.order)
    if args.json is not None:
        write_json(args.json, result)
        if args.json == STDOUT:
            return 0
    out = render.console()
    out.print(f"{result['arch']} trained on {result['source']} ({result['step']} steps)",
              markup=False)
    out.print(f"prompt: {result['prompt']}", markup=False)
    out.print(f"output: {result['text']}", markup=False)
    if "expected" in result:
        verdict = "correct" if result["correct"] else "wrong"
        out.print(f"target: {result['expected']} ({verdict})", markup=False)
    return 0
