"""Generators of the docs site (docs/gen_pages.py and docs/hooks/ use them).

Pure functions from the spec (formal_transformers.spec), the source code and the report files
to Markdown/HTML strings, so that each piece is unit-tested without running mkdocs
(tests/docs/test_sitegen.py). Math is emitted in pymdownx.arithmatex's generic form
(``<span class="arithmatex">\\(...\\)</span>``) and rendered to HTML at build time by KaTeX
(docs/sitegen/katex.py), so the site needs no JavaScript for math.
"""
