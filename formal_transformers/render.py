"""All terminal rendering lives here: tables, pseudocode, JSON and progress bars (rich).

Library functions return data; CLI commands pass that data to these functions.
"""

from __future__ import annotations

import json
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
    """Print data as indented JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def progress(transient: bool = False) -> Progress:
    """A progress bar on stderr (description, bar, n/total, elapsed, remaining)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                    console=console(stderr=True), transient=transient)


def algorithm(alg: Any) -> None:
    """Print an algorithm's signature and numbered pseudocode (spec: spec/algorithms)."""
    out = console()
    out.print(f"[bold]Algorithm {alg.number}: {alg.title}[/bold]  ({alg.origin})")
    out.print(f"  {alg.signature}", markup=False)
    out.print(f"  {alg.summary}", markup=False)
    for label, items in (("Input", alg.inputs), ("Output", alg.outputs),
                         ("Parameters", alg.parameters), ("Hyperparameters", alg.hyperparameters)):
        if items:
            out.print(f"[bold]{label}:[/bold]")
            for s in items:
                out.print(f"    {s.symbol} ∈ {s.type}  — {s.meaning}", markup=False)
    width = len(str(len(alg.pseudocode)))
    for line in alg.pseudocode:
        out.print(f"  {line.number:>{width}}: {'  ' * line.depth}{line.text}", markup=False)
    out.print(f"[bold]Properties:[/bold] {', '.join(alg.properties)}")
