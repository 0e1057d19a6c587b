"""The built site in a real browser (issue 7): Debian's headless Chromium via Playwright.

The site is served on 127.0.0.1; every request to any other host is recorded and refused, so
a page that needs the network shows up as a failure here. The Attention page's screenshot is
kept under reports/docs/ (or $FT_DOCS_ARTEFACTS) and its path printed.
"""

from __future__ import annotations

import pytest

from formal_transformers.spec import find_algorithm, load_catalogue

MATH_REPORT_JS = r"""() => {
  const arith = [...document.querySelectorAll(".arithmatex")];
  const clone = document.body.cloneNode(true);
  clone.querySelectorAll(".katex, pre, code, script, style").forEach((e) => e.remove());
  return {
    count: arith.length,
    unrendered: arith.filter((e) => !e.querySelector(".katex"))
      .map((e) => e.textContent.slice(0, 80)),
    errors: [...document.querySelectorAll(".katex-error")].map((e) => e.textContent.slice(0, 80)),
    raw_tex: clone.textContent.match(/\\[a-zA-Z]+|\\\(|\\\[|\$[^$\n]+\$/g) || [],
  };
}"""

TARGET_JS = """() => {
  const t = document.querySelector(":target");
  if (!t) return null;
  const r = t.getBoundingClientRect();
  return {id: t.id, top: r.top, bottom: r.bottom, height: window.innerHeight,
          scrolled: window.scrollY, number: t.querySelector(".ft-lineno").textContent.trim(),
          math: t.querySelectorAll(".katex").length};
}"""


class Visitor:
    """A browser tab that records JS errors and refuses (and records) non-loopback requests."""

    def __init__(self, context, base: str):
        self.base, self.external, self.js_errors = base, [], []
        context.route("**/*", self._route)
        self.page = context.new_page()
        self.page.on("pageerror", lambda exc: self.js_errors.append(str(exc)))

    def _route(self, route):
        url = route.request.url
        if url.startswith(self.base):
            route.continue_()
        else:
            self.external.append(url)
            route.abort()

    def goto(self, path: str) -> None:
        self.page.goto(self.base + path, wait_until="domcontentloaded")
        self.page.evaluate("document.fonts.ready.then(() => true)")

    def assert_clean(self) -> None:
        assert not self.external, f"requests left loopback: {sorted(set(self.external))}"
        assert not self.js_errors, f"JavaScript errors: {self.js_errors}"


@pytest.fixture
def visit(browser, site_url):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    visitor = Visitor(context, site_url)
    yield visitor
    context.close()


def page_of(alg_id: str) -> str:
    return f"algorithms/{find_algorithm(alg_id).path.stem}/"


def pages_to_browse(site) -> list[str]:
    """Every page but the API reference's, plus those API pages that hold math.

    The API pages are many and math-free as a rule; the build test checks their HTML too.
    """
    pages = []
    for path in sorted(site.rglob("index.html")):
        rel = path.parent.relative_to(site).as_posix()
        if rel.startswith("assets"):
            continue
        if rel.startswith("reference") and "arithmatex" not in path.read_text(encoding="utf-8"):
            continue
        pages.append("" if rel == "." else rel + "/")
    return pages


def test_every_page_renders_its_math_and_stays_on_loopback(visit, site):
    pages = pages_to_browse(site)
    assert len(pages) >= len(load_catalogue()) + 8, pages
    formulas, problems = 0, {}
    for path in pages:
        visit.goto(path)
        report = visit.page.evaluate(MATH_REPORT_JS)
        formulas += report["count"]
        bad = {k: report[k] for k in ("unrendered", "errors", "raw_tex") if report[k]}
        if bad:
            problems[path] = bad
    assert not problems, f"math not rendered cleanly: {problems}"
    assert formulas > 10 * len(load_catalogue()), f"only {formulas} formulas on the whole site"
    visit.assert_clean()


def test_katex_fonts_are_served_by_the_site(visit):
    visit.goto(page_of("attention"))
    loaded = visit.page.evaluate(
        "[...document.fonts].filter(f => f.family.includes('KaTeX') && f.status === 'loaded')"
        ".map(f => f.family)")
    assert "KaTeX_Main" in loaded, f"KaTeX fonts loaded: {loaded}"
    visit.assert_clean()


def test_pseudocode_line_anchor_navigates_to_its_line(browser, site_url):
    alg = find_algorithm("attention")
    last = len(alg.pseudocode)
    context = browser.new_context(viewport={"width": 1280, "height": 500})
    visit = Visitor(context, site_url)
    try:
        visit.goto(f"{page_of('attention')}#attention-L{last}")
        target = visit.page.evaluate(TARGET_JS)
        assert target is not None, "no element matches :target"
        assert target["id"] == f"attention-L{last}" and target["number"] == str(last)
        assert target["math"] >= 1, "the target line shows no rendered math"
        assert target["scrolled"] > 0 and 0 <= target["top"] < target["bottom"] <= \
            target["height"], f"line {last} is not scrolled into view: {target}"
        visit.page.click("#attention-L2 .ft-lineno")
        assert visit.page.evaluate("location.hash") == "#attention-L2"
        assert visit.page.evaluate(TARGET_JS)["id"] == "attention-L2"
        visit.assert_clean()
    finally:
        context.close()


def test_code_tabs_switch_between_numpy_and_pytorch(visit):
    visit.goto(page_of("attention"))
    tabs = visit.page.locator(".tabbed-set").first
    blocks = tabs.locator(".tabbed-block")
    assert tabs.locator(".tabbed-labels label").all_inner_texts() == ["NumPy reference", "PyTorch"]
    assert blocks.nth(0).is_visible() and not blocks.nth(1).is_visible()
    assert "reference_numpy/" in blocks.nth(0).inner_text()
    tabs.locator(".tabbed-labels label", has_text="PyTorch").click()
    assert blocks.nth(1).is_visible() and not blocks.nth(0).is_visible()
    assert "torch_impl/" in blocks.nth(1).inner_text()
    assert "def " in blocks.nth(1).locator("code").inner_text()
    tabs.locator(".tabbed-labels label", has_text="NumPy reference").click()
    assert blocks.nth(0).is_visible() and not blocks.nth(1).is_visible()
    visit.assert_clean()


def test_attention_page_screenshot_shows_rendered_math_and_numbered_pseudocode(visit,
                                                                            artefact_dir):
    alg = find_algorithm("attention")
    visit.goto(page_of("attention"))
    box = visit.page.locator("#attention-algorithm")
    numbers = box.locator(".ft-lineno").all_inner_texts()
    assert numbers == [str(n) for n in range(1, len(alg.pseudocode) + 1)]
    assert box.locator(".katex").count() >= len(alg.pseudocode)
    out = artefact_dir
    visit.page.screenshot(path=str(out / "attention.png"), full_page=True)
    box.screenshot(path=str(out / "attention-algorithm.png"))
    for name in ("attention.png", "attention-algorithm.png"):
        assert (out / name).stat().st_size > 10_000, f"{out / name} is suspiciously small"
    print(f"\nscreenshots of the Attention page: {out / 'attention.png'}, "
          f"{out / 'attention-algorithm.png'}")
    visit.assert_clean()
