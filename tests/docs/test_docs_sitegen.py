"""The docs generators (docs/sitegen/) without mkdocs: HTML of pseudocode, tables, reports,
citations, sources and the build-time math pass (spec: ARCHITECTURE.md, docs/)."""

from __future__ import annotations

import re
import shutil
import sys
import textwrap
import types
from pathlib import Path

import pytest
import yaml
from docs_support import ROOT, require
from sitegen import citation, reports, tutorial
from sitegen import html as h
from sitegen.algorithm_page import algorithm_page, line_anchor, page_path, pseudocode_html
from sitegen.catalogue_pages import properties_page, short_origin
from sitegen.katex import KatexError, KatexRenderer, render_math
from sitegen.sources import function_source, registry_sources

from formal_transformers.spec import find_algorithm, load_catalogue, load_properties


def test_inline_escapes_html_and_wraps_math_and_code():
    out = h.inline("a <b> & $x < y$ and `W_q`")
    assert out == ('a &lt;b&gt; &amp; <span class="arithmatex">\\(x &lt; y\\)</span> and '
                   "<code>W_q</code>")


def test_inline_leaves_unbalanced_dollars_as_text():
    assert h.inline("costs $5") == "costs $5"


def test_pseudocode_keywords_are_bold_outside_math_and_comments_set_apart():
    out = h.pseudocode_line(r"for $t \in [\ell]$: return $x$ /* for the $t$-th */")
    assert out.startswith('<strong class="ft-kw">for</strong> <span class="arithmatex">')
    assert '<strong class="ft-kw">return</strong>' in out
    comment = re.search(r'<span class="ft-comment">(.*)</span>$', out).group(1)
    assert "ft-kw" not in comment and "\\(t\\)" in comment
    assert "\\in" in out and "ft-kw\">in" not in out  # \in inside math is not a keyword


@pytest.mark.parametrize("alg", load_catalogue(), ids=lambda a: a.id)
def test_every_pseudocode_line_gets_its_stable_anchor_and_depth(alg):
    box = pseudocode_html(alg)
    ids = re.findall(r'<li id="([^"]+)" style="--depth: (\d+)">', box)
    assert ids == [(line_anchor(alg.id, ln.number), str(ln.depth)) for ln in alg.pseudocode]
    assert line_anchor("attention", 3) == "attention-L3"
    numbers = re.findall(r'class="ft-lineno"[^>]*>(\d+)</a>', box)
    assert numbers == [str(n) for n in range(1, len(alg.pseudocode) + 1)]


def test_algorithm_page_has_signature_code_prose_and_linked_properties():
    alg = find_algorithm("attention")
    pages = {a.id: a.path.name for a in load_catalogue()}
    numpy = function_source(lambda X: X, ROOT)
    text = algorithm_page(alg, pages, load_properties(), numpy, None)
    assert page_path(alg) == "algorithms/04-attention.md"
    assert text.startswith("# Algorithm 4: Attention\n")
    for s in alg.inputs + alg.outputs + alg.parameters + alg.hyperparameters:
        assert f"<code>{s.name}</code>" in text
    assert '=== "NumPy reference"' in text and f'linenums="{numpy.first_line}"' in text
    assert "No function is registered for `attention` in `torch_impl.REGISTRY` yet." in text
    assert alg.body.strip() in text
    for pid in alg.properties:
        assert f"[`{pid}`](../properties.md#{pid})" in text


def test_property_catalogue_anchors_are_the_property_ids():
    props = load_properties()
    text = properties_page("intro", props, load_catalogue())
    for pid, prop in props.items():
        assert f'## {prop.title} {{ id="{pid}" }}' in text


def test_function_source_keeps_true_line_numbers_and_unwraps_decorators():
    import functools

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*a):
            return fn(*a)
        return wrapper

    @deco
    def target(x):
        return x + 1

    src = function_source(target, ROOT)
    lines = Path(__file__).read_text().splitlines()
    assert src.text.splitlines()[0] == "@deco"
    assert lines[src.first_line - 1].strip() == "@deco"
    assert src.path == "tests/docs/test_docs_sitegen.py"


def test_registry_sources_reports_broken_registries(monkeypatch):
    module = types.ModuleType("ft_fake_registry")
    module.REGISTRY = {"attention": textwrap.dedent, "broken": print}
    monkeypatch.setitem(sys.modules, "ft_fake_registry", module)
    sources, problems = registry_sources("ft_fake_registry", ROOT)
    assert sources["attention"].qualname == "textwrap.dedent"
    assert len(problems) == 1
    assert problems[0].startswith("ft_fake_registry.REGISTRY['broken']: source not readable")
    _, problems = registry_sources("ft_no_such_module_xyz", ROOT)
    assert problems and problems[0].startswith("cannot import ft_no_such_module_xyz.REGISTRY")


def test_verification_page_says_plainly_when_no_report_exists():
    text = reports.verification_page(None, None, {})
    assert "Not yet produced" in text and "formal-transformers verify --json" in text
    assert "<table>" not in text


def test_verification_page_tabulates_results_with_links():
    data = {"implementation": "torch_impl", "profile": "ci", "seed": 0,
            "summary": {"passed": 1, "failed": 1},
            "results": [
                {"algorithm": "attention", "property": "mask.no_influence", "status": "passed",
                 "examples": 50, "max_error": 1.25e-16},
                {"algorithm": "nonexistent", "property": "batch.independence",
                 "status": "failed", "examples": 3, "max_error": None}]}
    text = reports.verification_page(data, None, {"attention": "04-attention.md"})
    assert '<a href="../algorithms/04-attention/">attention</a>' in text
    assert '<a href="../properties/#mask.no_influence">' in text
    assert '<span class="ft-status ft-status-passed">passed</span>' in text
    assert '<span class="ft-status ft-status-failed">failed</span>' in text and "1.25e-16" in text
    assert "<td>nonexistent</td>" in text and "torch_impl" in text


def test_verification_failures_link_the_spec_line_at_stake():
    failed = {"algorithm": "attention", "property": "mask.no_influence", "dtype": "float32",
              "status": "failed", "examples": 3, "max_error": 0.5,
              "reason": "a masked context column changed the output",
              "spec_line": "Algorithm 4 (Attention), 04-attention.md L6: if ...",
              "counterexample": "X=[[1.0]]"}
    text = reports.verification_page({"results": [failed]}, None,
                                     {"attention": "04-attention.md"})
    assert "## Failures" in text and "### attention · mask.no_influence (float32)" in text
    assert '<a href="../algorithms/04-attention/#attention-L6">attention L6</a>' in text
    assert "```text\nX=[[1.0]]\n```" in text and "<td>float32</td>" in text
    passed = dict(failed, status="passed")
    assert "## Failures" not in reports.verification_page({"results": [passed]}, None, {})


def test_index_origin_is_short():
    assert short_origin("Phuong & Hutter 2022, Algorithm 12") == "P&amp;H Alg.&nbsp;12"
    assert short_origin("extension: the MLP the paper writes inline") == "extension"


def test_unreadable_report_is_shown_as_a_failure(tmp_path):
    bad = tmp_path / "verify.json"
    bad.write_text("{not json")
    data, problem = reports.load_json(bad)
    assert data is None and "verify.json could not be read" in problem
    assert "Unreadable report" in reports.verification_page(data, problem, {})
    assert reports.load_json(tmp_path / "absent.json") == (None, None)


def test_generic_report_renders_scalars_and_record_lists():
    text = reports.generic_report({"device": "cpu", "runs": [{"name": "fwd", "ratio": 1.5},
                                                             {"name": "decode", "tok_s": 61.0}]})
    assert "<td>device</td><td>cpu</td>" in text
    assert "<th>name</th><th>ratio</th><th>tok_s</th>" in text
    assert "<td>decode</td><td>—</td><td>61</td>" in text
    flat = reports.generic_report({"versions": {"python": "3.11", "torch": "2.13"}})
    assert "<td>versions</td><td>python 3.11, torch 2.13</td>" in flat and "###" not in flat


CFF = yaml.safe_load((ROOT / "CITATION.cff").read_text())


def test_citation_version_matches_the_package():
    version = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert str(CFF["version"]) == version.group(1)


def test_bibtex_of_the_software_keeps_the_entity_author_whole():
    bib = citation.bibtex(CFF)
    assert bib.startswith("@software{formaltransformerscontributors2026formal,\n")
    assert "  author = {{formal-transformers contributors}}" in bib
    assert f"  version = {{{CFF['version']}}}" in bib and bib.endswith("\n}")


def test_citations_of_the_paper_in_bibtex_and_apa():
    paper = CFF["references"][0]
    assert citation.bibtex(paper, "article") == textwrap.dedent("""\
        @article{phuong2022formal,
          title = {{Formal Algorithms for Transformers}},
          author = {Phuong, Mary and Hutter, Marcus},
          journal = {arXiv preprint arXiv:2207.09238},
          doi = {10.48550/arXiv.2207.09238},
          url = {https://arxiv.org/abs/2207.09238},
          year = {2022}
        }""")
    assert citation.apa(paper) == (
        "Phuong, M., & Hutter, M. (2022). Formal Algorithms for Transformers. "
        "*arXiv preprint arXiv:2207.09238*. https://doi.org/10.48550/arXiv.2207.09238")


def test_cite_page_has_bibtex_apa_and_cff_tabs():
    text = citation.cite_page(CFF, "cff-version: 1.2.0")
    for tab in ('=== "BibTeX"', '=== "APA"', '=== "CFF"', "@software{", "@article{"):
        assert tab in text


def test_tutorial_is_the_examples_walk_through_with_the_adapters_in_full(tmp_path):
    assert "Not yet produced" in tutorial.tutorial_page(tmp_path)
    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "README.md").write_text("# Test your implementation\n\nWrite an adapter.\n")
    (examples / "a_layer.py").write_text("layer = 1\n")
    (examples / "mha.py").write_text("import torch\nm = torch.nn.MultiheadAttention\n")
    (examples / "__init__.py").write_text("")
    text = tutorial.tutorial_page(tmp_path)
    assert text.startswith("# Test your implementation\n\nWrite an adapter.\n")
    assert text.index('=== "mha.py"') < text.index('=== "a_layer.py"')  # the featured first
    assert 'title="examples/mha.py"' in text and "    m = torch.nn.MultiheadAttention" in text
    assert "__init__.py" not in text


def test_render_math_replaces_tex_and_reports_failures():
    page = ('<p><span class="arithmatex">\\(a &lt; b\\)</span></p>'
            '<div class="arithmatex">\\[\\bad\\]</div>')
    errors = []

    def fake(tex, display):
        if tex == "\\bad":
            raise KatexError("Undefined control sequence")
        return f"<span class='katex'>{tex}|{display}</span>"

    out = render_math(page, fake, lambda tex, msg: errors.append((tex, msg)))
    assert "<span class='katex'>a < b|False</span>" in out
    assert errors == [("\\bad", "Undefined control sequence")]
    assert '<span class="katex-error" title="Undefined control sequence">\\bad</span>' in out


def test_katex_renders_valid_tex_and_rejects_invalid_tex():
    require(shutil.which("node") is not None, "`node` is not on PATH")
    katex_dir = ROOT / "node_modules" / "katex"
    require((katex_dir / "dist" / "katex.min.css").is_file(), "KaTeX missing: run `npm ci`")
    with KatexRenderer(katex_dir) as katex:
        assert 'class="katex-display"' in katex.render(r"\sqrt{d_{attn}}", display=True)
        with pytest.raises(KatexError, match="Undefined control sequence"):
            katex.render(r"\notacommand x")
        with pytest.raises(KatexError, match="parse error"):
            katex.render(r"\frac{")
