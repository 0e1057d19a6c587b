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


# --- issue 15: prose as prose, tables that fit, pseudocode lines linked to their code ---

PROSE_IN_MATH_JS = r"""() => {
  // Italic single letters side by side outside sub/superscripts: English typeset as math
  // ("canonicalparameters") shows up as a long run of them.
  const runs = [];
  document.querySelectorAll(".md-content .katex-html").forEach((k) => {
    [k, ...k.querySelectorAll("*")].forEach((el) => {
      let run = "";
      const flush = () => { if (run.length >= 4) runs.push(run); run = ""; };
      for (const c of el.children) {
        if (c.matches(".mord.mathnormal") && !c.closest(".msupsub") &&
            /^[A-Za-z]$/.test(c.textContent)) run += c.textContent;
        else flush();
      }
      flush();
    });
  });
  return runs;
}"""

WIDTH_JS = r"""() => {
  const inner = document.querySelector(".md-content__inner");
  const box = inner.getBoundingClientRect();
  const wide = [...inner.querySelectorAll("table")].filter((t) =>
    t.scrollWidth > inner.clientWidth + 1 || t.getBoundingClientRect().right > box.right + 1)
    .map((t) => `${t.scrollWidth}px > ${inner.clientWidth}px: ` +
                t.textContent.trim().slice(0, 50));
  return {wide, page: document.documentElement.scrollWidth, window: window.innerWidth};
}"""

CODE_LINKS_JS = r"""() => {
  const lines = [...document.querySelectorAll(".ft-alg-lines > li")].map((li) => ({
    id: li.id,
    targets: [...li.querySelectorAll("a.ft-to-code")].map((a) => {
      const t = document.getElementById(decodeURIComponent(a.hash.slice(1)));
      return t === null ? "missing" : (t.closest("pre") ? "code" : "not code");
    }),
  }));
  const unlinked = [...document.querySelectorAll(".ft-cl")].filter((l) =>
    /#.*\bAlg \d+ L\d/.test(l.textContent) && !l.querySelector("a.ft-cite"))
    .map((l) => l.id);
  const deadCites = [...document.querySelectorAll("a.ft-cite")].filter((a) =>
    a.getAttribute("href").startsWith("#") &&
    !document.getElementById(a.getAttribute("href").slice(1))).map((a) => a.href);
  return {lines, unlinked, deadCites};
}"""


def algorithm_pages() -> list[str]:
    return [page_of(a.id) for a in load_catalogue()]


@pytest.fixture(scope="module")
def wide_reports(browser, site_url, site) -> dict[str, dict]:
    """Every page at 1400 px, visited once: math, widths and code links (JS reports)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    visit = Visitor(context, site_url)
    out = {}
    try:
        for path in dict.fromkeys(algorithm_pages() + pages_to_browse(site)):
            visit.goto(path)
            out[path] = {"math": visit.page.evaluate(MATH_REPORT_JS),
                         "prose": visit.page.evaluate(PROSE_IN_MATH_JS),
                         "width": visit.page.evaluate(WIDTH_JS),
                         "links": visit.page.evaluate(CODE_LINKS_JS)}
        visit.assert_clean()
    finally:
        context.close()
    return out


def test_no_prose_is_typeset_as_math_on_any_algorithm_page(wide_reports):
    problems = {path: wide_reports[path]["prose"] for path in algorithm_pages()
                if wide_reports[path]["prose"]}
    assert not problems, f"English typeset as math (italic letters run together): {problems}"


def test_no_table_is_wider_than_the_content_column_at_1400px(wide_reports):
    problems = {path: r["width"]["wide"] for path, r in wide_reports.items()
                if r["width"]["wide"] or r["width"]["page"] > r["width"]["window"]}
    assert not problems, problems


def test_no_page_scrolls_sideways_at_400px(browser, site_url, site):
    context = browser.new_context(viewport={"width": 400, "height": 800})
    visit = Visitor(context, site_url)
    problems = {}
    try:
        for path in dict.fromkeys(algorithm_pages() + pages_to_browse(site)):
            visit.goto(path)
            report = visit.page.evaluate(WIDTH_JS)
            if report["page"] > report["window"]:
                problems[path] = f"{report['page']}px wide"
        visit.assert_clean()
    finally:
        context.close()
    assert not problems, f"pages wider than a 400px window: {problems}"


def test_every_pseudocode_line_links_to_code_and_every_citation_links_back(wide_reports):
    problems = {}
    for alg, path in zip(load_catalogue(), algorithm_pages(), strict=True):
        report = wide_reports[path]["links"]
        assert len(report["lines"]) == len(alg.pseudocode), path
        bad = [f"{ln['id']}: {ln['targets']}" for ln in report["lines"]
               if "code" not in ln["targets"] or set(ln["targets"]) - {"code"}]
        if bad or report["unlinked"] or report["deadCites"]:
            problems[path] = {"lines": bad, "comments without links": report["unlinked"][:5],
                              "dead citation links": report["deadCites"][:5]}
    assert not problems, problems


def test_api_reference_nav_entries_are_not_cut_short(visit):
    visit.goto("reference/reference_numpy/architectures_backward/")
    cut = visit.page.evaluate("""() => [...document.querySelectorAll(
        ".md-sidebar--primary a.md-nav__link:not([href^='#']) .md-ellipsis")].filter((e) =>
        e.offsetParent !== null &&
        e.scrollWidth > e.clientWidth + 1).map((e) => e.textContent.trim())""")
    shown = visit.page.locator(".md-sidebar--primary a.md-nav__link--active").inner_text()
    assert shown.strip() == "architectures_backward"
    assert not cut, f"nav entries cut short: {cut}"
    visit.assert_clean()


def test_a_clicked_line_highlights_its_code_in_both_tabs(visit):
    visit.goto(page_of("ed_transformer"))
    page = visit.page
    page.click("#ed_transformer-L13 .ft-lineno")
    highlighted = page.locator(".ft-cl.ft-hl")
    assert highlighted.count() >= 1, "no code line highlighted after clicking line 13"
    assert any(highlighted.nth(i).is_visible() for i in range(highlighted.count()))
    assert "Alg 8 L13" in highlighted.first.inner_text()
    # the PyTorch link opens the PyTorch tab at its code line
    page.locator("#ed_transformer-L13 a.ft-to-code", has_text="PyTorch").click()
    target = page.locator(".ft-cl:target")
    assert target.count() == 1 and target.is_visible(), "the PyTorch code line is not shown"
    assert "torch_impl/" in target.locator("xpath=ancestor::div[contains(@class,"
                                           "'highlight')]").first.inner_text()
    # and a citation in the code leads back to the pseudocode line
    visit.goto(page_of("ed_transformer"))
    page.locator(".ft-code-tabs label", has_text="NumPy reference").click()
    page.locator("a.ft-cite", has_text="L13").first.click()
    assert page.evaluate("location.hash") == "#ed_transformer-L13"
    assert page.evaluate(TARGET_JS)["id"] == "ed_transformer-L13"
    visit.assert_clean()


def test_every_page_renders_its_math_and_stays_on_loopback(wide_reports):
    """Every page visited (the wide_reports fixture refuses and records any request that
    leaves loopback, and any JavaScript error)."""
    assert len(wide_reports) >= len(load_catalogue()) + 8, sorted(wide_reports)
    formulas, problems = 0, {}
    for path, reports in wide_reports.items():
        report = reports["math"]
        formulas += report["count"]
        bad = {k: report[k] for k in ("unrendered", "errors", "raw_tex") if report[k]}
        if bad:
            problems[path] = bad
    assert not problems, f"math not rendered cleanly: {problems}"
    assert formulas > 10 * len(load_catalogue()), f"only {formulas} formulas on the whole site"
