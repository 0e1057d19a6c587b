"""Generate the site's pages from spec/, the code and the reports (run by mkdocs-gen-files).

Nothing here is copied by hand: each page is rebuilt from its source on every build. A
problem that makes a page wrong (a spec file the loader rejects, a package that does not
import) is logged as a warning, which fails ``mkdocs build --strict``.
"""

from __future__ import annotations

import ast
import html
import logging
import os
import sys
from pathlib import Path

import mkdocs_gen_files
import yaml

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS))

from sitegen import catalogue_pages, citation, measurements, reports, tutorial  # noqa: E402
from sitegen import html as h  # noqa: E402
from sitegen.algorithm_page import algorithm_page, page_path  # noqa: E402
from sitegen.code_listing import TABS, implementations  # noqa: E402
from sitegen.sources import load_registry, registry_sources  # noqa: E402

from formal_transformers.spec import (  # noqa: E402
    load_catalogue,
    load_properties,
    spec_root,
    split_front_matter,
)

log = logging.getLogger("mkdocs.plugins.ft_docs")
REPORTS = reports.reports_dir(ROOT)
API_PACKAGES = ("formal_transformers", "reference_numpy", "torch_impl", "conformance")
IMAGE_SUFFIXES = (".png", ".svg")


def spec_prose(name: str) -> str | None:
    """The Markdown of spec/<name> without its front matter; None if the file is absent."""
    path = spec_root() / name
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    return split_front_matter(path)[1] if text.startswith("---\n") else text


def write(path: str, text: str) -> None:
    with mkdocs_gen_files.open(path, "w") as f:
        f.write(text)


def algorithm_pages(algorithms, properties) -> list[tuple[str, str]]:
    """One page per algorithm; returns the nav entries (title, path)."""
    pages = {a.id: a.path.name for a in algorithms}
    numbers = {a.number: (a.id, a.path.stem) for a in algorithms}
    registries = {}
    for module, _ in TABS:
        registries[module], problems = load_registry(module)
        problems += registry_sources(module, ROOT)[1] if not problems else []
        for problem in problems:
            log.warning("docs: %s", problem)
    nav = []
    for alg in algorithms:
        write(page_path(alg), algorithm_page(
            alg, pages, properties, implementations(alg, registries, ROOT), numbers))
        nav.append((f"{alg.number} · {alg.title}", page_path(alg)))
    write("algorithms/index.md", catalogue_pages.algorithms_index(algorithms))
    return nav


def api_modules() -> list[tuple[str, str, bool]]:
    """(dotted name, page path, is a package) of every documented module, packages first."""
    out = []
    for package in API_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if any(p.startswith("_") and p != "__init__" for p in parts):
                continue
            if not all((ROOT.joinpath(*parts[:i]) / "__init__.py").is_file()
                       for i in range(1, len(parts))):
                continue  # not inside a regular package: griffe cannot collect it
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            doc = "/".join(parts) + ("/index.md" if is_package else ".md")
            out.append((".".join(parts), f"reference/{doc}", is_package))
    return out


def api_pages() -> list[tuple[str, str, bool]]:
    """reference/<package>/<module>.md with a mkdocstrings directive each; a package's page
    also lists its modules and subpackages with the first line of their docstrings."""
    modules = api_modules()
    for ident, path, is_package in modules:
        text = f"# `{ident}`\n\n::: {ident}\n"
        if is_package:
            children = [(i, p) for i, p, _ in modules
                        if i.rpartition(".")[0] == ident]
            if children:
                here = Path(path).parent
                rows = []
                for i, p in children:
                    target = Path(p).parent if p.endswith("index.md") else Path(p).with_suffix("")
                    rows.append([f'<a href="{Path(os.path.relpath(target, here))}/" title="{i}">'
                                 f"<code>{i.rpartition('.')[2]}</code></a>",
                                 html.escape(module_summary(i))])
                text += ("\n## Modules\n\n" + h.table(["module", "what it holds"], rows,
                                                        "ft-modules ft-stack") + "\n")
        write(path, text)
    return modules


def module_summary(ident: str) -> str:
    """The first sentence-line of a module's docstring, read without importing it."""
    base = ROOT.joinpath(*ident.split("."))
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    except (OSError, SyntaxError):
        return ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def copy_images(prefix: str) -> list[str]:
    """Copy <reports>/<prefix>*.png|svg into the site; their paths relative to a root page."""
    shown = []
    for img in sorted(REPORTS.glob(f"{prefix}*")):
        if img.suffix in IMAGE_SUFFIXES:
            with mkdocs_gen_files.open(f"assets/reports/{img.name}", "wb") as f:
                f.write(img.read_bytes())
            shown.append(f"assets/reports/{img.name}")
    return shown


def report_pages(algorithms) -> None:
    pages = {a.id: a.path.name for a in algorithms}
    titles = {a.id: (a.number, a.title) for a in algorithms}
    data, problem = reports.load_json(REPORTS / Path(reports.VERIFY_JSON).name)
    write("verification.md", reports.verification_page(data, problem, pages, titles))
    data, problem = reports.load_json(REPORTS / Path(reports.BENCH_JSON).name)
    write("benchmarks.md", measurements.bench_page(data, problem, copy_images("bench")))
    intro = spec_prose("memory.md") or (
        "Exact parameter, activation and gradient byte counts from the hyperparameters "
        "(`spec/memory.md`, not written yet), and measured figures.")
    data, problem = reports.load_json(REPORTS / Path(reports.MEMORY_JSON).name)
    images = [f"![{Path(img).stem}]({img})" for img in copy_images("memory")]
    write("memory.md", "\n\n".join(
        ["# Memory accounting", intro.strip(), measurements.memory_data(data, problem,
                                                 "python benchmarks/memory_plot.py"),
         *images]) + "\n")


VISION_COMMAND = ("formal-transformers train --source images --steps 1000 --out runs/vit\n"
                  "formal-transformers classify --checkpoint runs/vit --seed 3 "
                  "--plot reports/vit_attention.png")


def vision_page() -> str:
    """vision.md: a generated image, its patch grid and the class token's attention over the
    patches in a trained ViT (Algorithms 75-77), from reports/vit_attention.png when
    ``docs.sh reports`` made one, else the figure kept in docs/assets/vision/."""
    shown = copy_images("vit_attention")
    image = shown[0] if shown else "assets/vision/vit_attention.png"
    return "\n".join([
        "# Vision: patches and the class token", "",
        "An image becomes tokens by being cut into patches "
        "([Algorithm 75](algorithms/75-patch-extraction.md)); each patch is projected, a class "
        "token is put in front ([Algorithm 76](algorithms/76-patch-embedding.md)), and the "
        "class token's final state decides the class "
        "([Algorithm 77](algorithms/77-vit-classifier.md)).", "",
        "The training source `images` pastes one of four class templates (a 3 x 3 patch) at a "
        "random patch of a 9 x 9 image of Gaussian noise, so the Bayes posterior of the class "
        "is exact: a log-sum-exp over the positions of the template correlations. A ViT "
        "trained on it for 1000 steps (one layer, d_e = 32) reached a held-out accuracy of "
        "0.868 against the Bayes classifier's 0.873 on the same 4096 images "
        "(`tests/e2e/test_vit_training.py` asserts at most 1 point).", "",
        f"![A generated image with its patch grid, and the class token's attention over the "
        f"patches]({image})", "",
        "Left: a generated image of class 1 with its 3 x 3 patch grid (the template sits at "
        "patch (0, 2)). Right: the class token's attention weights over the nine patches in "
        "the last layer, averaged over the heads: nearly all of it goes to the patch that "
        "holds the template, which is the Bayes rule's matched filter followed by a soft "
        "maximum over positions. Made by", "", "```bash", VISION_COMMAND, "```", ""])


def summary(alg_nav, api_nav) -> str:
    """SUMMARY.md for mkdocs-literate-nav: the whole navigation.

    The API reference nests modules under their package (whose page is the section's index),
    each entry titled by its own name, not its dotted path, so that no entry is cut short.
    """
    def items(entries, indent="    "):
        return "\n".join(f"{indent}- [{title}]({path})" for title, path in entries)

    def api_items(entries):
        lines = []
        for ident, path, _ in entries:
            depth = ident.count(".")
            lines.append(f"{'    ' * (depth + 1)}- [{ident.rpartition('.')[2]}]({path})")
        return "\n".join(lines)

    return "\n".join([
        "- [Home](index.md)", "- [Notation](notation.md)",
        "- Algorithms", "    - [Overview](algorithms/index.md)", items(alg_nav),
        "- [Properties](properties.md)", "- [Test your implementation](tutorial.md)",
        "- [Verification report](verification.md)", "- [Memory accounting](memory.md)",
        "- [Benchmarks](benchmarks.md)", "- [Vision: patches and the class token](vision.md)",
        "- API reference", api_items(api_nav),
        "- [Cite](cite.md)",
    ]) + "\n"


def main() -> None:
    algorithms = load_catalogue()
    properties = load_properties()
    write("index.md", catalogue_pages.home(algorithms))
    alg_nav = algorithm_pages(algorithms, properties)
    write("notation.md", spec_prose("notation.md"))
    write("properties.md", catalogue_pages.properties_page(
        spec_prose("properties.md"), properties, algorithms))
    write("tutorial.md", tutorial.tutorial_page(ROOT))
    report_pages(algorithms)
    write("vision.md", vision_page())
    cff_text = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    write("cite.md", citation.cite_page(yaml.safe_load(cff_text), cff_text))
    write("SUMMARY.md", summary(alg_nav, api_pages()))


main()
