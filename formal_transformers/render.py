"""All terminal rendering lives here: tables, pseudocode, JSON and progress bars (rich).

Library functions return data; CLI commands pass that data to these functions.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table


def console(stderr: bool = False) -> Console:
    """A console on stdout (or stderr for progress), soft-wrapped so pipes stay readable.

    Off a terminal (a pipe, a CI log) it is 160 columns wide, so that tables keep their
    columns whole instead of squeezing them to the 80 columns rich assumes there.
    """
    file = sys.stderr if stderr else sys.stdout
    width = None if file.isatty() else 160
    return Console(file=file, soft_wrap=True, highlight=False, width=width)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
          keep_whole: Sequence[str] = ()) -> None:
    """Print a table with a header row; cells are converted with str().

    Cells of the columns named in ``keep_whole`` (identifiers) are never wrapped or cut with an
    ellipsis on a narrow terminal; the other columns wrap instead.
    """
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    t = Table(title=title, header_style="bold")
    for i, c in enumerate(columns):
        if c in keep_whole:
            t.add_column(c, no_wrap=True, min_width=max([len(c)] + [len(r[i]) for r in cells]))
        else:
            t.add_column(c)
    for row in cells:
        t.add_row(*row)
    console().print(t)


def print_json(data: Any) -> None:
    """Print data as indented, strict JSON on stdout (no bare NaN: formal_transformers.atomic)."""
    from formal_transformers.atomic import json_text

    sys.stdout.write(json_text(data))


def progress(transient: bool = False) -> Progress:
    """A progress bar on stderr (description, bar, n/total, elapsed, remaining)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                    console=console(stderr=True), transient=transient)


def algorithm(alg: Any) -> None:
    """Print an algorithm's signature and numbered pseudocode (spec: spec/algorithms), the
    math as readable Unicode (formal_transformers.unimath; ``spec --json`` keeps LaTeX)."""
    from formal_transformers.unimath import to_unicode as u

    out = console()
    out.print(f"[bold]Algorithm {alg.number}: {u(alg.title)}[/bold]  ({alg.origin})")
    out.print(f"  {u(alg.signature)}", markup=False)
    out.print(f"  {u(alg.summary)}", markup=False)
    for label, items in (("Input", alg.inputs), ("Output", alg.outputs),
                         ("Parameters", alg.parameters), ("Hyperparameters", alg.hyperparameters)):
        if items:
            out.print(f"[bold]{label}:[/bold]")
            for s in items:
                out.print(f"    {u(s.symbol)} ∈ {u(s.type)}  — {u(s.meaning)}", markup=False)
    width = len(str(len(alg.pseudocode)))
    for line in alg.pseudocode:
        out.print(f"  {line.number:>{width}}: {'  ' * line.depth}{u(line.text)}", markup=False)
    out.print(f"[bold]Properties:[/bold] {', '.join(alg.properties)}")


def loss_curve(path: str, history: Sequence[dict[str, Any]], limits: Sequence[Any],
               title: str) -> str:
    """Write a PNG of the training and validation curves with each known limit drawn.

    history: records with ``step`` and any of ``train_loss``/``val_loss``/``val_accuracy``/
    ``val_exact_match``; limits: objects with ``metric``, ``value``, ``label``
    (formal_transformers.sources.Limit). Loss and score metrics get separate panels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("loss (nats/token)", ("train_loss", "val_loss")),
              ("score", ("val_accuracy", "val_exact_match"))]
    shown = [(ylabel, [m for m in keys if any(m in r for r in history)])
             for ylabel, keys in panels]
    shown = [(y, keys) for y, keys in shown if keys] or [panels[0]]
    fig, axes = plt.subplots(1, len(shown), figsize=(6 * len(shown), 4), squeeze=False)
    for ax, (ylabel, keys) in zip(axes[0], shown, strict=True):
        for key in keys:
            pts = [(r["step"], r[key]) for r in history if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=key, marker="." if len(pts) < 50 else None)
        for lim in limits:
            if lim.metric in keys:
                ax.axhline(lim.value, color="k", linestyle="--", linewidth=1,
                           label=f"{lim.label} = {lim.value:.4f}")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
    return path


def vit_attention_figure(path: str, image, patch_size: int, attention, true: int,
                         predicted: int, bayes: int, template_at: tuple[int, int]) -> str:
    """A PNG of one image (C, h, w; channel 0 shown) with its patch grid drawn, beside the class
    token's attention over the patches (an n_h x n_w array), titled with the true, predicted
    and Bayes classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 4))
    a.imshow(image[0], cmap="gray")
    h, w = image.shape[1:]
    for r in range(0, h + 1, patch_size):
        a.axhline(r - 0.5, color="tab:orange", linewidth=1)
    for c in range(0, w + 1, patch_size):
        a.axvline(c - 0.5, color="tab:orange", linewidth=1)
    a.set_title(f"class {true}, template at patch {tuple(template_at)}\n"
                f"its {h // patch_size} x {w // patch_size} patches")
    shown = b.imshow(attention, cmap="viridis", vmin=0)
    b.set_title(f"class token's attention, last layer\npredicted {predicted}, Bayes {bayes}")
    for ax in (a, b):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=b, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
    return path
