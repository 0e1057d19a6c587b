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
from sitegen import citation, crossrefs, measurements, reports, tutorial
from sitegen import html as h
from sitegen.algorithm_page import (
    algorithm_page,
    code_name,
    line_anchor,
    page_path,
    pseudocode_html,
    signature_table_html,
)
from sitegen.catalogue_pages import properties_page, short_origin
from sitegen.code_listing import Implementation, code_line_id, implementations, tabs_html
from sitegen.fields import field, is_prose
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


def _impls(alg, torch: bool = True):
    import reference_numpy
    import torch_impl

    registries = {"reference_numpy": reference_numpy.REGISTRY,
                  "torch_impl": torch_impl.REGISTRY if torch else {}}
    return implementations(alg, registries, ROOT)


NUMBERS = {a.number: (a.id, a.path.stem) for a in load_catalogue()}


def test_algorithm_page_has_signature_code_prose_and_linked_properties():
    alg = find_algorithm("attention")
    pages = {a.id: a.path.name for a in load_catalogue()}
    impls = [_impls(alg)[0], Implementation("PyTorch", (), "No function is registered.")]
    text = algorithm_page(alg, pages, load_properties(), impls, NUMBERS)
    assert page_path(alg) == "algorithms/04-attention.md"
    assert text.startswith("# Algorithm 4: Attention\n")
    for s in alg.inputs + alg.outputs + alg.parameters + alg.hyperparameters:
        assert f"<code>{code_name(s.name).removeprefix('<code>')}" in text
    assert '<label for="numpy-reference">NumPy reference</label>' in text
    assert "No function is registered." in text
    assert ('<autoref identifier="reference_numpy.attention.attention" optional>'
            "<code>attention</code></autoref>") in text
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
    text = reports.verification_page(data, None, {"attention": "04-attention.md"},
                                     {"attention": (4, "Attention")})
    assert "### Algorithm 4: Attention\n\n[`attention`](algorithms/04-attention.md) · 1 passed" \
        in text
    assert '<a href="../properties/#mask.no_influence"><code>mask.<wbr>no_<wbr>influence</code>' \
        in text
    assert '<span class="ft-status ft-status-passed">passed</span>' in text
    assert '<span class="ft-status ft-status-failed">failed</span>' in text and "1.25e-16" in text
    assert text.index("### Algorithm 4: Attention") < text.index("### nonexistent")
    assert "torch_impl" in text and "<strong>ci</strong>: up to 25 examples per check" in text
    assert "not recorded in the report" in text  # an old report has no date or commit


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
    assert "```text\nX=[[1.0]]\n```" in text and '<td data-label="dtype">float32</td>' in text
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
    plain = re.sub(r' data-label="[^"]*"', "", text)
    assert "<td>device</td><td>cpu</td>" in plain
    assert "<th>name</th><th>ratio</th><th>tok_s</th>" in plain
    assert "<td>decode</td><td>—</td><td>61</td>" in plain
    flat = re.sub(r' data-label="[^"]*"', "", reports.generic_report(
        {"versions": {"python": "3.11", "torch": "2.13"}}))
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


PROSE_TYPES = {
    "canonical parameters of DTransformer (Algorithm 10)":
        "canonical parameters of DTransformer (Algorithm 10)",
    "positive integers, with H dividing d_e": "positive integers, with ",
    "MHAttention parameters, Algorithm 5, with H heads, d_attn = d_mid = d_e / H":
        "MHAttention parameters, Algorithm 5, with ",
    "one tuple per head h in [H]": "one tuple per head ",
    "[0, 1] (default 0, off)": " (default ",
    "\\{per\\_head, projection\\}": "<code>per_head</code>, projection",
}


@pytest.mark.parametrize("value", sorted(PROSE_TYPES))
def test_prose_fields_render_as_prose_with_only_their_math_as_math(value):
    out = field(value)
    assert PROSE_TYPES[value] in out, out
    for tex in re.findall(r'class="arithmatex">\\\((.*?)\\\)</span>', out):
        assert not is_prose(tex) and not re.search(r"[A-Za-z]{3,} [A-Za-z]{2,}", tex), tex


def test_tex_fields_are_math_split_at_top_level_commas_and_code_names_are_code():
    assert field(r"\mathbb{R}^{d_e}, \mathbb{R}^{d_e}").count('class="arithmatex"') == 2
    assert field(r"(0, 1)^{N_V \times \ell_x}").count('class="arithmatex"') == 1
    assert field("numpy.random.Generator") == "<code>numpy.random.Generator</code>"
    assert field("DTransformerConfig") == "<code>DTransformerConfig</code>"
    assert field(r"\{\mathrm{GELU}, \mathrm{ReLU}\}").count('class="arithmatex"') == 1


def test_no_field_of_any_spec_file_typesets_english_as_math():
    """Every symbol and type of every algorithm (today's and tomorrow's spec files)."""
    bad = []
    for alg in load_catalogue():
        for s in alg.inputs + alg.outputs + alg.parameters + alg.hyperparameters:
            for value in (s.symbol, s.type):
                for tex in re.findall(r'class="arithmatex">\\\((.*?)\\\)</span>', field(value)):
                    if is_prose(tex):
                        bad.append(f"{alg.path.name}: {value!r} -> math {tex!r}")
    assert not bad, "\n".join(bad)


def test_signature_table_groups_rows_by_role_and_names_break_only_at_dots():
    alg = find_algorithm("d_transformer")
    table = signature_table_html(alg)
    assert [r for r in re.findall(r'<tr class="ft-role"><th colspan="4">(\w+)</th>', table)] == \
        ["Input", "Output", "Parameters", "Hyperparameters"]
    assert "<code>layers.<wbr>l.<wbr>mha</code>" in table
    assert 'data-label="meaning"' in table and "<th>role</th>" not in table


@pytest.mark.parametrize("alg", load_catalogue(), ids=lambda a: a.id)
def test_every_pseudocode_line_links_to_code_lines_that_exist(alg):
    impls = _impls(alg)
    box = pseudocode_html(alg, impls)
    tabs = tabs_html(impls, alg.number, NUMBERS)
    code_ids = set(re.findall(r'<span class="ft-cl" id="([^"]+)"', tabs))
    for line in alg.pseudocode:
        li = re.search(rf'<li id="{alg.id}-L{line.number}".*?</li>', box, re.S).group(0)
        targets = re.findall(r'class="ft-to-code" href="#([^"]+)"', li)
        assert len(targets) == 2, f"line {line.number}: links {targets}"
        assert set(targets) <= code_ids, f"line {line.number}: {targets} not in the code"
    numpy_ids = {t for t in re.findall(r'data-cites="([^"]+)"', tabs)}
    assert numpy_ids, "no code line cites the algorithm"


def test_architecture_page_shows_the_functions_holding_every_line():
    """ED transformer: encode and decode hold most lines; every line has a citing code line."""
    alg = find_algorithm("ed_transformer")
    numpy = _impls(alg)[0]
    names = [u.qualname for u in numpy.units]
    assert names[0] == "reference_numpy.architectures.ed_transformer"
    assert {"reference_numpy.architectures.encode", "reference_numpy.architectures.decode"} <= \
        set(names)
    assert all(numpy.line_level(alg.number, ln.number) for ln in alg.pseudocode)


def test_citations_in_the_code_link_back_to_their_lines():
    alg = find_algorithm("d_transformer")
    tabs = tabs_html(_impls(alg), alg.number, NUMBERS)
    assert '<a class="ft-cite" href="#d_transformer-L6" title="Algorithm 10, line 6">L6</a>' in tabs
    comments = re.findall(r'<span class="c1">([^<]*(?:<a [^>]*>[^<]*</a>[^<]*)*)</span>', tabs)
    unlinked = [c for c in comments if re.search(r"\bAlg \d+ L\d", c)]
    assert not unlinked, unlinked[:5]
    assert code_line_id("reference_numpy/architectures.py", 7) == \
        "code-reference_numpy-architectures-py-7"


RUN = {"implementation": "torch_impl", "impl": "torch", "profile": "quick", "seed": 0,
       "date": "2026-12-01T21:39:44+00:00", "commit": "62ba6e2", "seconds": 6.1,
       "machine": {"architecture": "x86_64", "cpu_count": 2},
       "summary": {"passed": 1, "failed": 0, "total": 1},
       "results": [{"algorithm": "layer_norm", "property": "reference.forward_agreement",
                    "status": "passed", "examples": 4, "max_error": 1e-16}],
       "spec_coverage": {"measured_on": "reference_numpy", "lines": 3, "executed": 2,
                         "fraction": 0.6667, "algorithms": {"layer_norm": {
                             "number": 6, "lines": 3, "executed": [1, 2],
                             "not_executed": [3]}}}}


def test_verification_page_states_profile_date_commit_machine_and_spec_line_coverage():
    text = reports.verification_page(RUN, None, {"layer_norm": "06-layer-norm.md"},
                                     {"layer_norm": (6, "Layer normalisation")})
    assert '!!! note "Quick profile"' in text and "<strong>quick</strong>: up to 4" in text
    assert "2026-12-01T21:39:44+00:00" in text and "<code>62ba6e2</code>" in text
    assert "architecture x86_64, cpu count 2" in text
    assert "<strong>2 of 3 pseudocode lines (66.7 %)</strong>" in text
    assert ('<a href="../algorithms/06-layer-norm/#layer_norm-L3"><span class="ft-cov '
            'ft-cov-not-run" title="line 3: not executed">3</span></a>') in text
    assert 'title="line 1: executed">1</span>' in text and "2 / 3" in text
    no_cov = reports.verification_page(dict(RUN, spec_coverage=None), None, {})
    assert "holds no spec-line coverage" in no_cov


BENCH = {"environment": {"torch": "2.13.0", "transformers": "5.24.0", "threads": 1,
                         "cpu_count": 2, "processor": "x86_64", "python": "3.11.7"},
         "quick": False, "load_average_1_5_15min": {"before": [1.0, 1.0, 1.0],
                                                    "after": [2.0, 2.0, 2.0]},
         "date": "2026-12-01T22:00:00+00:00", "commit": "abc1234",
         "results": [{"name": "gpt2_decode", "what": "greedy decoding", "baseline": "hf",
                      "ours": {"median": 0.02, "min": 0.018, "max": 0.025},
                      "theirs": {"median": 0.06, "min": 0.05, "max": 0.07},
                      "target": 2.0, "details": {"tokens_per_s": 300.0}, "ratio": 3.0,
                      "met_target": True}], "gpu": {}}


def test_benchmark_page_has_units_ratio_spread_plot_and_run_facts():
    text = measurements.bench_page(BENCH, None)
    results = text.split("## Results")[1].split("## Decode")[0]
    assert re.findall(r"<th>(.*?)</th>", results) == [
        "benchmark", "torch_impl", "baseline", "ratio", "target"]
    assert "Tokens per s: 300" in results and "tokens_per_s" not in results
    assert "20 ms" in text and "60 ms" in text and "3×" in text
    assert "2× – 3.89×" in text  # 0.05 / 0.025 .. 0.07 / 0.018
    assert '<span class="ft-status ft-status-met">met</span>' in text
    assert "<svg" in text and "gpt2_decode: 3×" in text
    assert "2026-12-01T22:00:00+00:00" in text and "<code>abc1234</code>" in text
    assert "<strong>full</strong>" in text
    quick = measurements.bench_page(dict(BENCH, quick=True), None)
    assert "ft-status-met" not in quick and "no verdict" in quick


def test_benchmark_page_shows_each_decoder_against_the_floor_of_the_same_run():
    details = {"ours": "StaticDecoder", "eager": "d_inference", "floor_target": 0.95,
               "floor_ms_per_step": 36.8}
    for who, ms in (("ours", 37.5), ("eager", 43.0), ("baseline", 44.0)):
        details |= {f"step_ms_{who}": ms, f"fraction_of_floor_{who}": 36.8 / ms,
                    f"fraction_of_floor_per_call_{who}": 0.9}
    data = dict(BENCH, results=[dict(BENCH["results"][0], details=details)],
                run={"date": "2026-12-02T02:00:00+00:00", "commit": "def5678"})
    text = measurements.bench_page(data, None)
    floor = text.split("## Decode against the weight-reading floor")[1]
    rows = re.findall(r"<tr>(.*?)</tr>", floor, re.S)[1:]
    assert [re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)[0] for r in rows] == [
        "StaticDecoder", "d_inference", "hf"]
    assert "0.981" in rows[0] and "ft-status-met" in rows[0]  # 36.8 / 37.5
    assert "0.856" in rows[1] and "not met" in rows[1]
    assert "ft-status" not in rows[2]  # the baseline has no target
    assert "<code>def5678</code>" in text and "Other fields" not in text  # the run's facts


def test_memory_data_shows_bytes_in_binary_units_and_predicted_against_measured():
    data = {"generated_by": "python benchmarks/memory_plot.py", "torch": "2.13",
            "machine": "x86_64",
            "attention_vs_length": [
                {"path": p, "l": n, "predicted_bytes": n * n * 4096.0,
                 "measured_bytes": n * n * 4000.0} for p in ("naive", "sdpa") for n in (64, 128)],
            "presets": [{"preset": "gpt2-small", "arch": "decoder", "parameters": 124_439_808,
                         "tied_parameters": 85_000_000, "seq": 1024,
                         "peak_naive_bf16_bytes": 3 * 2**30, "peak_sdpa_bf16_bytes": 2**30}]}
    text = measurements.memory_data(data, None, "python benchmarks/memory_plot.py")
    assert "16 MiB" in text and "+2.4 %" in text  # 64*64*4096 bytes; (4096-4000)/4000
    assert "124 M (85 M)" in text and "3 GiB" in text
    assert "<svg" in text and "naive: predicted" in text and "sdpa: measured" in text
    assert "predicted_bytes" not in text and "architecture x86_64" in text


def test_memory_data_shows_the_three_estimates_with_the_closest_in_bold():
    row = {"model": "tiny-llama", "run": "training step, sdpa", "measured_bytes": 2**20,
           "estimates": {"ours": {"predicted_bytes": 2**20 * 0.9,
                                  "relative_error_vs_measured": -0.02},
                         "static": {"predicted_bytes": 2**19,
                                    "relative_error_vs_measured": -0.5},
                         "korthikanti": {"predicted_bytes": 2**20 * 1.1,
                                         "relative_error_vs_measured": 0.1}}}
    text = measurements.memory_data({"three_estimates": [row]}, None, "memory_plot")
    assert "### Three estimates beside the measured peak" in text
    assert "<strong>922 KiB (-2.0 %)</strong>" in text
    assert "512 KiB (-50.0 %)" in text and "+10.0 %" in text
    assert "Korthikanti et al. 2022" in text and "three_estimates" not in text


def test_docstring_cross_references_become_links_outside_code_blocks():
    known = {"reference_numpy.attention", "reference_numpy.attention.attention",
             "reference_numpy.attention.mh_attention", "formal_transformers.spec.load_catalogue"}
    page = ("<p>Calls <code>mh_attention</code> and <code>formal_transformers.spec.load_catalogue"
            "</code> (spec: Algorithms 4-5, <code>spec/algorithms/04-attention.md</code>); "
            "<code>unknown_name</code> stays.</p>"
            "<pre><code>mh_attention</code> Algorithm 4</pre><h2>Algorithm 4</h2>")
    out = crossrefs.link_docstrings(page, "reference_numpy.attention", known,
                                    {4: "algorithms/04-attention/"}, "../../../")
    assert ('<autoref identifier="reference_numpy.attention.mh_attention" optional>'
            "<code>mh_attention</code></autoref>") in out
    assert 'identifier="formal_transformers.spec.load_catalogue"' in out
    assert '<a href="../../../algorithms/04-attention/">Algorithms 4-5</a>' in out
    assert ('<a href="../../../algorithms/04-attention/"><code>spec/algorithms/04-attention.md'
            "</code></a>") in out
    assert "<code>unknown_name</code> stays" in out
    assert out.endswith("<pre><code>mh_attention</code> Algorithm 4</pre><h2>Algorithm 4</h2>")


def test_known_objects_are_the_public_api():
    known = crossrefs.known_objects(ROOT, ["reference_numpy"])
    assert {"reference_numpy", "reference_numpy.attention.mh_attention"} <= known
    assert not any(part.startswith("_") for k in known for part in k.split("."))
