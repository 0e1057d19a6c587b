"""The docs site builds with ``mkdocs build --strict`` and its HTML keeps its promises (issue 7):
a page per algorithm with linkable lines, math rendered at build time, links that resolve,
nothing loaded from another host, and the strict build failing on bad math or a dead anchor."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from docs_support import ROOT, require_build_tools
from sitegen.reports import reports_dir

from formal_transformers.spec import load_catalogue, load_properties

ASSET_TAGS = {"script": "src", "img": "src", "iframe": "src", "source": "src", "audio": "src",
              "video": "src", "embed": "src", "object": "data"}


class _Refs(HTMLParser):
    """Collects ids, links, and the URLs a browser would load without a click."""

    def __init__(self):
        super().__init__()
        self.ids, self.links, self.assets = set(), [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag in ASSET_TAGS and a.get(ASSET_TAGS[tag]):
            self.assets.append(a[ASSET_TAGS[tag]])
        if tag == "link" and a.get("href") and a.get("rel") not in ("canonical", "alternate"):
            self.assets.append(a["href"])


class _VisibleText(HTMLParser):
    """Text outside rendered math, code, scripts and styles: where raw TeX must not appear."""

    SKIP = {"code", "pre", "script", "style", "textarea", "title"}

    def __init__(self):
        super().__init__()
        self.chunks, self._skip, self._depth = [], None, 0

    def handle_starttag(self, tag, attrs):
        if self._skip is not None:
            self._depth += tag == self._skip
        elif tag in self.SKIP or "katex" in (dict(attrs).get("class") or "").split():
            self._skip, self._depth = tag, 1

    def handle_endtag(self, tag):
        if self._skip == tag:
            self._depth -= 1
            if self._depth == 0:
                self._skip = None

    def handle_data(self, data):
        if self._skip is None:
            self.chunks.append(data)


RAW_TEX = re.compile(r"\\[a-zA-Z]{2,}|\\[()\[\]]")


def raw_tex(page: Path) -> list[str]:
    parser = _VisibleText()
    parser.feed(page.read_text(encoding="utf-8"))
    return RAW_TEX.findall("".join(parser.chunks))


def parse(path: Path) -> _Refs:
    refs = _Refs()
    refs.feed(path.read_text(encoding="utf-8"))
    return refs


def html_pages(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*.html") if "assets" not in p.relative_to(site).parts)


def is_external(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.scheme and parts.scheme not in ("data", "blob")) or url.startswith("//")


def test_strict_build_passes(built_site):
    assert built_site.returncode == 0, f"mkdocs build --strict failed:\n{built_site.log[-6000:]}"
    assert "WARNING" not in built_site.log


def test_strict_build_needs_no_network(built_site):
    if not built_site.offline:
        pytest.skip("`unshare -n` is not permitted here, so the build ran with the network")
    assert built_site.returncode == 0, f"offline build failed:\n{built_site.log[-6000:]}"


def test_every_algorithm_has_a_page_with_every_line_linkable(site):
    for alg in load_catalogue():
        page = site / "algorithms" / alg.path.stem / "index.html"
        assert page.is_file(), f"no page for {alg.id} ({page})"
        ids = parse(page).ids
        lines = {f"{alg.id}-L{n}" for n in range(1, len(alg.pseudocode) + 1)}
        assert lines <= ids, f"{page}: missing line anchors {sorted(lines - ids)}"
        assert f"{alg.id}-L{len(alg.pseudocode) + 1}" not in ids


def test_property_catalogue_has_an_anchor_per_property_id(site):
    ids = parse(site / "properties" / "index.html").ids
    missing = set(load_properties()) - ids
    assert not missing, f"properties page lacks anchors {sorted(missing)}"


def test_math_is_rendered_at_build_time_on_every_page(site):
    bad = {}
    for page in html_pages(site):
        text = page.read_text(encoding="utf-8")
        blocks = re.findall(r'<(?:span|div) class="arithmatex">(.{0,300})', text, re.S)
        unrendered = [b[:60] for b in blocks if not b.lstrip().startswith('<span class="katex')]
        if unrendered or "katex-error" in text:
            bad[page.relative_to(site).as_posix()] = unrendered or ["katex-error"]
    assert not bad, f"math left unrendered: {bad}"


def test_no_raw_tex_is_left_in_the_text_of_any_page(site):
    """TeX written outside $...$ in the spec or a docstring shows up here, by page."""
    bad = {page.relative_to(site).as_posix(): found for page in html_pages(site)
           if (found := raw_tex(page))}
    assert not bad, f"raw TeX outside math: {bad}"


def test_no_page_loads_anything_from_another_host(site):
    external = {}
    for page in html_pages(site):
        urls = [u for u in parse(page).assets if is_external(u)]
        if urls:
            external[page.relative_to(site).as_posix()] = urls
    for css in site.rglob("*.css"):
        urls = [u for u in re.findall(r"url\(\s*['\"]?([^'\")]+)", css.read_text(errors="replace"))
                if is_external(u)]
        urls += re.findall(r"@import\s+['\"]?(https?:[^'\";]+)", css.read_text(errors="replace"))
        if urls:
            external[css.relative_to(site).as_posix()] = urls
    assert not external, f"external assets: {external}"


def test_katex_stylesheet_and_every_font_it_names_are_in_the_site(site):
    css = site / "assets" / "vendor" / "katex" / "katex.min.css"
    fonts = set(re.findall(r"url\((fonts/[^)]+)\)", css.read_text()))
    assert fonts, "katex.min.css names no fonts"
    missing = [f for f in fonts if not (css.parent / f).is_file()]
    assert not missing, f"fonts missing from the site: {missing}"


def test_every_internal_link_and_anchor_resolves(site):
    parsed: dict[Path, _Refs] = {}

    def refs(path: Path) -> _Refs:
        if path not in parsed:
            parsed[path] = parse(path)
        return parsed[path]

    broken = []
    for page in html_pages(site):
        if page.name == "404.html":  # its links are absolute, from site_url: served anywhere
            continue
        for href in refs(page).links:
            if is_external(href) or href.startswith(("mailto:", "javascript:")):
                continue
            parts = urlsplit(href)
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{page.relative_to(site)}: {href}")
                continue
            frag = unquote(parts.fragment)
            if frag and target.suffix == ".html" and frag not in refs(target).ids:
                broken.append(f"{page.relative_to(site)}: {href} (no id {frag!r})")
    assert not broken, "broken links:\n" + "\n".join(broken[:40])


def test_cite_page_offers_bibtex_for_the_software_and_the_paper(site):
    text = html.unescape(re.sub(r"<[^>]+>", "", (site / "cite" / "index.html").read_text()))
    assert "@software{formaltransformerscontributors" in text
    assert "@article{phuong2022formal" in text and "Phuong, M., & Hutter, M. (2022)" in text


def test_the_vision_page_shows_the_class_token_attention_picture(site):
    """Issue 17: a generated image, its patch grid and the class token's attention as a
    picture (a PNG the page embeds and the site holds), with the command that makes it."""
    page = (site / "vision" / "index.html").read_text(encoding="utf-8")
    src = re.search(r'<img[^>]+src="([^"]+vit_attention\.png)"', page)
    assert src, "the vision page embeds no vit_attention.png"
    image = (site / "vision" / src.group(1)).resolve()
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert "classify --checkpoint" in text and "Bayes" in text


def test_report_pages_match_the_report_files(site):
    text = (site / "verification" / "index.html").read_text()
    if (reports_dir(ROOT) / "verify.json").is_file():
        assert "Not yet produced" not in text and "<table>" in text
    else:
        assert "Not yet produced" in text and "formal-transformers verify --json" in text


def _mini_project(tmp_path: Path, page_b: str) -> subprocess.CompletedProcess:
    """A two-page site using the real hooks: page a has pseudocode-style ids and math."""
    docs = tmp_path / "docs"
    docs.mkdir(parents=True)
    (docs / "a.md").write_text(textwrap.dedent("""\
        # A

        Inline $x^2$ math.

        <ol><li id="alg-L1">line 1</li></ol>
        """))
    (docs / "b.md").write_text(page_b)
    (tmp_path / "node_modules").symlink_to(ROOT / "node_modules")
    (tmp_path / "mkdocs.yml").write_text(textwrap.dedent(f"""\
        site_name: mini
        strict: true
        validation: {{anchors: warn}}
        markdown_extensions: [md_in_html, pymdownx.arithmatex: {{generic: true}}]
        hooks: [{ROOT / "docs" / "hooks" / "site_hooks.py"}]
        """))
    env = dict(os.environ, DISABLE_MKDOCS_2_WARNING="true", NO_MKDOCS_2_WARNING="1")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)


def test_strict_build_fails_on_bad_math_and_on_a_dead_line_anchor(tmp_path):
    require_build_tools()
    good = _mini_project(tmp_path / "good", "# B\n\nSee [line 1](a.md#alg-L1), $\\sqrt{2}$.\n")
    assert good.returncode == 0, good.stdout + good.stderr
    assert 'class="katex"' in (tmp_path / "good" / "site" / "a" / "index.html").read_text()
    bad_math = _mini_project(tmp_path / "math", "# B\n\n$\\frac{1}{$ and $\\nosuchmacro$\n")
    assert bad_math.returncode != 0
    assert "KaTeX cannot render" in bad_math.stderr and "nosuchmacro" in bad_math.stderr
    dead = _mini_project(tmp_path / "anchor", "# B\n\nSee [line 9](a.md#alg-L9).\n")
    assert dead.returncode != 0 and "alg-L9" in dead.stderr


API_PACKAGES = ("formal_transformers", "reference_numpy", "torch_impl", "conformance")


def test_api_package_pages_list_their_modules_and_nav_titles_are_short(site):
    for package in API_PACKAGES:
        page = site / "reference" / package / "index.html"
        text = page.read_text(encoding="utf-8")
        modules = sorted(p.stem for p in (ROOT / package).glob("*.py")
                         if not p.name.startswith("_"))
        listed = re.findall(r'<a href="([^"]+)/" title="' + package + r'\.[^"]+"><code>', text)
        assert modules and set(modules) <= set(listed), f"{page}: lists {listed}"
    nav = re.findall(r'<span class="md-ellipsis">\s*([^<]*?)\s*</span>',
                     (site / "reference" / "reference_numpy" / "index.html").read_text())
    assert "architectures_backward" in nav
    assert not [t for t in nav if t.startswith(API_PACKAGES) and "." in t], "dotted nav titles"


def test_docstring_cross_references_and_algorithm_pages_link_the_api(site):
    text = (site / "reference" / "torch_impl" / "training" / "index.html").read_text()
    assert 'class="autorefs autorefs-internal"' in text
    page = (site / "algorithms" / "10-d-transformer" / "index.html").read_text()
    assert ('href="../../reference/reference_numpy/architectures/'
            '#reference_numpy.architectures.d_transformer"') in page
