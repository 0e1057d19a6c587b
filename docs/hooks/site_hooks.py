"""MkDocs hooks of the docs site (mkdocs.yml ``hooks:``).

- on_files: keep the generated SUMMARY.md (the navigation) from becoming a page; serve
  KaTeX's stylesheet and fonts from the site itself, taken from the npm package that
  ``npm ci`` installs (package.json pins it); no CDN, nothing vendored in git.
- on_page_content: make the ids of raw-HTML elements (pseudocode lines, property headings)
  known to MkDocs' anchor validation, so links to ``attention.md#attention-L3`` are checked;
  on API pages, link the docstrings' cross-references (sitegen/crossrefs.py).
- on_post_page: render every formula with KaTeX at build time; a formula KaTeX rejects is
  logged as a warning, which fails ``mkdocs build --strict``.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, InclusionLevel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sitegen.crossrefs import known_objects, link_docstrings  # noqa: E402
from sitegen.katex import KatexError, KatexRenderer, render_math  # noqa: E402

log = logging.getLogger("mkdocs.plugins.ft_docs")
VENDOR = "assets/vendor/katex"
_ID = re.compile(r'\sid="([^"]+)"')
_state: dict = {}
API_PACKAGES = ("formal_transformers", "reference_numpy", "torch_impl", "conformance")


def katex_dir(config) -> Path:
    return Path(config.config_file_path).resolve().parent / "node_modules" / "katex"


def on_config(config):
    dist = katex_dir(config) / "dist"
    if not (dist / "katex.min.css").is_file():
        raise PluginError(f"KaTeX is missing ({dist}): run `npm ci` in the repository root "
                          "(package.json pins the katex package the site serves)")
    return config


def on_files(files, config):
    nav_file = files.get_file_from_path("SUMMARY.md")
    if nav_file is not None:  # generated for mkdocs-literate-nav; not a page of its own
        nav_file.inclusion = InclusionLevel.EXCLUDED
    dist = katex_dir(config) / "dist"
    assets = [dist / "katex.min.css", *sorted((dist / "fonts").iterdir())]
    for path in assets:
        dest = f"{VENDOR}/{path.relative_to(dist).as_posix()}"
        files.append(File.generated(config, dest, abs_src_path=str(path)))
    return files


def _api_context(config) -> tuple[set[str], dict[int, str]]:
    if "api" not in _state:
        from formal_transformers.spec import load_catalogue

        root = Path(config.config_file_path).resolve().parent
        _state["api"] = (known_objects(root, API_PACKAGES),
                         {a.number: f"algorithms/{a.path.stem}/" for a in load_catalogue()})
    return _state["api"]


def on_page_content(html, page, config, files):
    if page.file.src_uri.startswith("reference/"):
        parts = page.file.src_uri.removeprefix("reference/").removesuffix(".md").split("/")
        module = ".".join(parts[:-1] if parts[-1] == "index" else parts)
        known, algorithms = _api_context(config)
        to_root = "../" * page.url.rstrip("/").count("/") + ("../" if page.url else "")
        html = link_docstrings(html, module, known, algorithms, to_root)
    if page.present_anchor_ids is not None:
        page.present_anchor_ids.update(_ID.findall(html))
    return html


def _renderer(config) -> KatexRenderer:
    if "katex" not in _state:
        try:
            _state["katex"] = KatexRenderer(katex_dir(config))
        except KatexError as exc:
            raise PluginError(str(exc)) from None
    return _state["katex"]


def on_post_page(output, page, config):
    def on_error(tex: str, message: str) -> None:
        log.warning("KaTeX cannot render %r on page %s: %s", tex, page.file.src_uri, message)

    return render_math(output, _renderer(config).render, on_error)


def on_post_build(config):
    _state.pop("api", None)
    renderer = _state.pop("katex", None)
    if renderer is not None:
        renderer.close()


def on_build_error(error):
    on_post_build(None)
