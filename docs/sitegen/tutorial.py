"""tutorial.md: "Test your implementation", built from examples/.

The walk-through is examples/README.md, written beside the example adapters; the page adds
the adapters' real source (the ``torch.nn.MultiheadAttention`` one first), so the page and the
files cannot drift apart. Without the walk-through the page says plainly that it has not been
written yet.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from sitegen.reports import not_produced

FEATURED = "MultiheadAttention"


def example_files(root: Path) -> list[Path]:
    """The example adapters (conformance/examples/*.py, shipped as conformance.examples, or
    examples/*.py) except __init__.py; those that mention MultiheadAttention first."""
    files = [p for d in ("conformance/examples", "examples")
             for p in sorted((root / d).glob("*.py")) if p.name != "__init__.py"]
    return sorted(files, key=lambda p: FEATURED not in p.read_text(encoding="utf-8"))


def _source_tabs(root: Path, files: list[Path]) -> str:
    tabs = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        code = textwrap.indent(path.read_text(encoding="utf-8").rstrip("\n"), "    ")
        tabs.append(f'=== "{path.name}"\n\n    ```python linenums="1" title="{rel}"\n'
                    f"{code}\n    ```\n")
    return "\n".join(tabs)


def tutorial_page(root: Path) -> str:
    """The walk-through of examples/README.md and the example adapters in full."""
    readme = root / "examples" / "README.md"
    files = example_files(root)
    if not readme.is_file():
        return "\n\n".join([
            "# Test your implementation",
            "The conformance suite checks any implementation against the spec's "
            "[properties](properties.md) through a small adapter.",
            not_produced("walk-through (examples/README.md)", "the conformance work on examples/"),
        ]) + "\n"
    parts = [readme.read_text(encoding="utf-8").strip()]
    if files:
        parts += ["## The example adapters in full",
                  "As they stand in `conformance/examples/` (importable as "
                  "`conformance.examples`); each passes everything it declares.",
                  _source_tabs(root, files)]
    return "\n\n".join(parts) + "\n"
