"""Predicted and measured memory against sequence length, both attention paths (spec/memory.md
sections 7-8), for the docs: writes reports/memory_vs_length.png and reports/memory.json.

    python benchmarks/memory_plot.py [--out-dir reports] [--quick]

Left panel: the activations one causal attention layer keeps (H = 16, d_e = 64), naive and
sdpa, l = 64 ... 1024 -- predicted lines, measured markers, fitted exponents. Right panel: the
peak of a whole training step (a 2-layer decoder, batch 2, AdamW) over the same lengths. The
JSON also holds the predictions for the published presets, the memory laws' measurements and
the three estimates of spec/memory.md section 12 beside measured peaks (``three_estimates``).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from formal_transformers.atomic import atomic_write, check_output_dir, check_output_file, write_json
from formal_transformers.memory import compare, growth, properties
from formal_transformers.memory.activations import self_attention_terms, total_bytes
from formal_transformers.memory.predict import inference_memory, training_memory
from formal_transformers.presets import PRESETS, get_preset
from formal_transformers.provenance import run_facts

ROOT = Path(__file__).resolve().parent.parent
STEP_CONFIG = dataclasses.replace(get_preset("tiny-decoder"), l_max=1024)
STEP_BATCH = 2


def attention_sweep(lengths: list[int]) -> list[dict]:
    """One row per (path, l): predicted and measured bytes one attention layer keeps."""
    rows = []
    for path in ("naive", "sdpa"):
        for l in lengths:
            predicted = total_bytes(self_attention_terms(growth.GROWTH_H, growth.GROWTH_D_E,
                                                         1, l, 4, path))
            rows.append({"path": path, "l": l, "predicted_bytes": predicted,
                         "measured_bytes": growth.measured_attention_bytes(l, path)})
    return rows


def step_sweep(lengths: list[int]) -> list[dict]:
    """One row per (path, l): predicted and measured peak of a training step of STEP_CONFIG."""
    rows = []
    for path in ("naive", "sdpa"):
        for l in lengths:
            e = training_memory(STEP_CONFIG, STEP_BATCH, l, "float32", "adamw", path)
            peak, acts = compare.training_checks(e)
            rows.append({"path": path, "l": l, "predicted_peak_bytes": peak.predicted,
                         "measured_peak_bytes": peak.measured, "peak_error": peak.error,
                         "predicted_activation_bytes": acts.predicted,
                         "measured_activation_bytes": acts.measured})
    return rows


def preset_table() -> list[dict]:
    """Predictions for every preset at its context size, batch 1, bfloat16, AdamW."""
    rows = []
    for name, c in PRESETS.items():
        seq = c.n_patches + 1 if c.arch == "vit" else c.l_max  # a ViT reads N + 1 tokens
        naive = training_memory(c, 1, seq, "bfloat16", "adamw", "naive")
        sdpa = training_memory(c, 1, seq, "bfloat16", "adamw", "sdpa")
        row = {"preset": name, "arch": c.arch, "parameters": naive.parameters,
               "tied_parameters": naive.to_dict()["tied_parameters"], "seq": seq,
               "peak_naive_bf16_bytes": naive.peak, "peak_sdpa_bf16_bytes": sdpa.peak}
        if c.arch not in ("encoder", "vit"):
            decoder = c.arch in ("decoder", "modern-decoder")
            inf = inference_memory(c, 1, c.l_max // 2 if decoder else c.l_max,
                                   c.l_max // 2 if decoder else c.l_max, "bfloat16")
            row["kv_cache_bf16_bytes"] = inf.row("KV cache")
        rows.append(row)
    return rows


def plot(attn: list[dict], step: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    colours = {"naive": "tab:red", "sdpa": "tab:blue"}
    for ax, rows, pred, meas, title in (
            (axes[0], attn, "predicted_bytes", "measured_bytes",
             f"one attention layer (H={growth.GROWTH_H}, d_e={growth.GROWTH_D_E}): kept"),
            (axes[1], step, "predicted_peak_bytes", "measured_peak_bytes",
             f"training step, 2-layer decoder, B={STEP_BATCH}, AdamW: peak")):
        for path in ("naive", "sdpa"):
            r = [x for x in rows if x["path"] == path]
            ls = [x["l"] for x in r]
            k = growth.fit_exponent(ls, [x[meas] for x in r])
            ax.plot(ls, [x[pred] / 2**20 for x in r], "-", color=colours[path],
                    label=f"{path}: predicted")
            ax.plot(ls, [x[meas] / 2**20 for x in r], "o", color=colours[path],
                    label=f"{path}: measured (fit l^{k:.2f})")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length l")
        ax.set_ylabel("MiB")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Memory against sequence length: naive attention keeps H l^2 weights, "
                 "a flash kernel (sdpa) O(l)", fontsize=11)
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "reports")
    parser.add_argument("--quick", action="store_true", help="lengths up to 256 only")
    args = parser.parse_args(argv)
    check_output_dir(args.out_dir, "--out-dir")  # before the sweeps, not after them
    for name in ("memory_vs_length.png", "memory.json"):
        check_output_file(args.out_dir / name, "--out-dir")
    lengths = [64, 128, 256] if args.quick else [64, 128, 256, 512, 1024]
    torch.manual_seed(0)
    attn, step = attention_sweep(lengths), step_sweep(lengths)
    laws = properties.run_laws()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    plot(attn, step, args.out_dir / "memory_vs_length.png")
    report = {"generated_by": "python benchmarks/memory_plot.py",
              "torch": torch.__version__, "numpy": np.__version__,
              "python": platform.python_version(), "machine": platform.machine(),
              "laws": [{"property": r.id, "passed": r.passed, "max_error": r.max_error}
                       for r in laws],
              "law_cases": [{"property": r.id, "case": line} for r in laws for line in r.lines],
              "presets": preset_table(), "attention_vs_length": attn,
              "three_estimates": [row for name in compare.COMPARISON_PRESETS
                                  for row in compare.estimate_comparison(name,
                                                                         get_preset(name))],
              "training_step_vs_length": step, **run_facts()}
    write_json(args.out_dir / "memory.json", report)
    print(f"wrote {args.out_dir / 'memory_vs_length.png'} and {args.out_dir / 'memory.json'}")
    return 0 if all(r.passed for r in laws) else 1


if __name__ == "__main__":
    sys.exit(main())
