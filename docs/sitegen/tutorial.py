"""tutorial.md: "Test your implementation", a walk-through built around the example adapter.

The example is the adapter for ``torch.nn.MultiheadAttention`` under examples/ (code this
project did not write); its source is shown as it stands in the file. Without it the page
says that the example has not been written yet.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from sitegen.reports import not_produced


def find_example(root: Path, needle: str = "MultiheadAttention") -> Path | None:
    """The first examples/**/*.py that mentions ``needle``, in sorted order."""
    for path in sorted((root / "examples").rglob("*.py")):
        if needle in path.read_text(encoding="utf-8"):
            return path
    return None


def _module_name(root: Path, path: Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts)


def tutorial_page(root: Path) -> str:
    """The walk-through; its example section is the real adapter file, when it exists."""
    parts = [
        "# Test your implementation",
        "The conformance suite checks any implementation against the spec's "
        "[properties](properties.md). You describe your implementation to it with a small "
        "**adapter**: a class that declares a name, the dtypes it supports and the "
        "algorithms it implements, and exposes them as functions on NumPy arrays in "
        "`(batch, length, features)` layout with the canonical parameter names. What the "
        "adapter does not declare is reported as *not covered*, never as passed.",
        "## 1. Write the adapter",
    ]
    example = find_example(root)
    if example is None:
        parts.append(not_produced("example adapter for `torch.nn.MultiheadAttention`",
                                  "the conformance issue's examples/ work"))
        impl = "your_module:YourAdapter"
    else:
        rel = example.relative_to(root).as_posix()
        impl = f"{_module_name(root, example)}:<AdapterClass>"
        source = textwrap.indent(example.read_text(encoding="utf-8").rstrip("\n"), "")
        parts += [f"The example adapter wraps `torch.nn.MultiheadAttention`, code this "
                  f"project did not write. It lives in `{rel}`:",
                  f'```python linenums="1" title="{rel}"\n{source}\n```']
    parts += [
        "## 2. Run the suite on it",
        "From the command line (a table of algorithm × property, a JSON report with "
        "`--json`, and exit status 0 only when nothing failed):",
        f"```bash\nformal-transformers verify --impl {impl} --profile quick\n"
        f"formal-transformers verify --impl {impl} --json reports/verify.json\n```",
        "or as a pytest plugin, inside your own test run:",
        f"```bash\npytest --pyargs conformance --impl {impl}\n```",
        "## 3. Read the result",
        "A failure shows the shrunk counterexample that hypothesis found, the statement of the "
        "property at stake, the spec line it concerns, and the expected and observed values. "
        "The [verification report](verification.md) shows the same table for the bundled "
        "PyTorch implementation; the [API reference](reference/conformance/index.md) documents "
        "the adapter protocol.",
    ]
    return "\n\n".join(parts) + "\n"
