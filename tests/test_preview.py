"""The static preview written without Quarto (helpers.book.preview): a small fake book folder,
and the real smoke build."""
import base64
import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from helpers.book.chapters import cell_options
from helpers.book.preview import parse_bib, preview_site

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake").decode()
BIB = """@inproceedings{lin2024fine,
  title     = {Fine-tuned network relies on generic representation},
  author    = {Lin, Dongyan},
  booktitle = {ICML 2024 Workshop},
  year      = {2024},
  eprint    = {2406.18926},
  archivePrefix = {arXiv}
}
@article{mante2013context,
  title   = "Context-dependent computation by recurrent dynamics in prefrontal cortex",
  author  = {Mante, Valerio and Sussillo, David and Shenoy, Krishna V. and Newsome, William T.},
  journal = {Nature}, volume = {503}, pages = {78--84}, year = 2013
}
@comment{not an entry}
@article{uncited2020,
  title = {Never cited}, author = {M{\\"u}ller, Anna}, year = {2020}, journal = {X}
}
"""
CONFIG = """project:
  type: book
book:
  title: "A Small Book"
  subtitle: "Its subtitle"
  chapters:
    - index.qmd
    - chapters/01_first.ipynb
    - chapters/02_second.ipynb
    - notes.qmd
  appendices:
    - references.qmd
bibliography: references.bib
format:
  html:
    code-fold: true
    code-summary: "Code"
"""
INDEX = """---
title: "Ignored when there is a heading"
---
# Preface {.unnumbered}

This book replicates [@lin2024fine] and compares with @mante2013context; see @fig-curve and
@sec-second, and [@lin2024fine; @mante2013context]. Write to someone@mante2013context.org.
Unknown: @fig-nowhere. Code is left alone: `@fig-curve costs $5` and

```python
x = "$a$ @fig-curve {#sec-x}"
```

{{< pagebreak >}}
"""
NOTES = """# Notes {#sec-notes}

## Math {#sec-math}

The mean is $\\mu = \\frac{1}{n}\\sum_i x_i$ and it costs $5 and $6 to compute, or US$7.

$$
\\sigma^2 = \\mathbb{E}[(x - \\mu)^2]
$$ {#eq-var}

By @eq-var and @sec-math, ~~no~~ see @tbl-numbers.

::: {.callout-warning}
## Careful
Callout **body** with @fig-pair.
:::

::: {.callout-note title="A titled note"}
Plain note.
:::

::: {.column-margin}
Margin text kept.
:::

## Unlisted {.unnumbered .unlisted}

A wide table:

| a | b |
|---|---|
| 1 | 2 |
"""
REFS = """# References {.unnumbered}

::: {#refs}
:::
"""


def _display(data, metadata=None):
    return new_output("display_data", data=data, metadata=metadata or {})


def _notebook(cells):
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.fixture
def book(tmp_path):
    (tmp_path / "_quarto.yml").write_text(CONFIG)
    (tmp_path / "references.bib").write_text(BIB)
    (tmp_path / "index.qmd").write_text(INDEX)
    (tmp_path / "notes.qmd").write_text(NOTES)
    (tmp_path / "references.qmd").write_text(REFS)
    (tmp_path / "chapters").mkdir()
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "table.csv").write_text("a,b\n1,2\n")
    params = new_code_cell('profile = "quick"\nn = 3', metadata={"tags": ["parameters"]})
    injected = new_code_cell('# Parameters\nprofile = "smoke"\nn = 7\n',
                             metadata={"tags": ["injected-parameters"]})
    first = _notebook([
        new_markdown_cell("# First chapter {#sec-first}\n\nIntro citing @lin2024fine. See @fig-pair."),
        params, injected,
        new_code_cell("#| echo: false\nsecret_hidden_code = 1",
                      outputs=[_display({"text/markdown": "Run card: see @sec-second.",
                                         "text/plain": "<Markdown>"})]),
        new_code_cell("#| include: false\nnothing_at_all = 2",
                      outputs=[new_output("stream", name="stdout", text="invisible output")]),
        new_markdown_cell("## Results {#sec-results}\n\nText."),
        new_code_cell('#| label: fig-curve\n#| fig-cap: "The learning curve (see @sec-notes)."\nplot_curve()',
                      outputs=[_display({"image/png": PNG, "text/plain": "<Figure>"},
                                        {"image/png": {"width": 320, "height": 200}})]),
        new_code_cell("#| output: false\nquiet_code = 3",
                      outputs=[new_output("stream", name="stdout", text="suppressed output")]),
        new_code_cell("visible_code = 4",
                      outputs=[new_output("stream", name="stdout", text="printed \x1b[31mline\x1b[0m"),
                               new_output("execute_result", execution_count=1,
                                          data={"text/html": "<table class='dataframe'><tr><td>cell</td></tr></table>",
                                                "text/plain": "df"})]),
    ])
    second = _notebook([
        new_markdown_cell("# Second chapter {#sec-second}\n\n## Setup {#sec-setup}\n\nSee @fig-curve."),
        new_code_cell('#| label: fig-pair\n#| fig-cap: "Two panels."\n#| fig-subcap: ["left", "right"]\ntwo()',
                      outputs=[_display({"image/png": PNG}), _display({"image/svg+xml": "<svg></svg>"})]),
        new_code_cell('#| label: tbl-numbers\n#| tbl-cap: "Some numbers."\ntable()',
                      outputs=[_display({"text/html": "<table><tr><td>42</td></tr></table>"})]),
        new_code_cell("explorer",
                      outputs=[_display({"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                                         "text/plain": "WIDGET REPR"})]),
        new_code_cell("#| echo: false\nsave_tables()",
                      outputs=[_display({"text/markdown": "**Downloads:** [executed notebook](../downloads/notebooks/02_second.ipynb)"
                                                          " · [table.csv](../downloads/table.csv) · [the notes](../notes.qmd#sec-x)"
                                                          " · [first](01_first.ipynb) · [paper](https://arxiv.org/abs/2406.18926)"})]),
        new_code_cell("raise ValueError", outputs=[new_output(
            "error", ename="ValueError", evalue="boom", traceback=["\x1b[31mValueError\x1b[0m: boom"])]),
    ])
    nbformat.write(first, tmp_path / "chapters" / "01_first.ipynb")
    nbformat.write(second, tmp_path / "chapters" / "02_second.ipynb")
    site = preview_site(tmp_path)
    pages = {p.name: p.read_text() for p in site.glob("*.html")}
    return site, pages


def _text(page: str) -> str:
    """A page's visible text (tags dropped, whitespace collapsed)."""
    page = re.sub(r"<(style|title)>.*?</\1>", " ", page, flags=re.S).replace("&nbsp;", " ")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    return re.sub(r"\s+([);,.:])", r"\1", re.sub(r"\(\s+", "(", text))


EXTERNAL = re.compile(r"<(?:script|img|iframe|source|audio|video|embed)\b[^>]*\bsrc\s*=\s*[\"']?\s*(?:https?:)?//"
                      r"|<link\b[^>]*\bhref\s*=\s*[\"']?\s*(?:https?:)?//|@import|url\(\s*[\"']?\s*(?:https?:)?//",
                      re.I)


def external_resources(page: str) -> list[str]:
    return EXTERNAL.findall(page)


def test_pages_order_and_navigation(book):
    site, pages = book
    assert set(pages) == {"index.html", "01_first.html", "02_second.html", "notes.html", "references.html"}
    assert (site / "downloads" / "table.csv").read_text() == "a,b\n1,2\n"
    for name, page in pages.items():
        assert "A Small Book" in page and "Its subtitle" in page
        for other in pages:                                  # the sidebar lists every page
            assert f'href="{other}"' in page, (name, other)
    first = pages["01_first.html"]
    assert re.search(r'class="prev" href="index.html"', first)
    assert re.search(r'class="next" href="02_second.html"', first)
    assert 'class="prev"' not in pages["index.html"] and 'class="next"' not in pages["references.html"]


def test_numbering_of_chapters_sections_figures_tables(book):
    _, pages = book
    text = {k: _text(v) for k, v in pages.items()}
    assert "1 First chapter" in text["01_first.html"] and "2 Second chapter" in text["02_second.html"]
    assert "3 Notes" in text["notes.html"]
    assert "Preface" in text["index.html"] and "Ignored when" not in text["index.html"]
    assert not re.search(r"\d\s+Preface|\d\s+References", text["index.html"])
    assert "1.1 Results" in text["01_first.html"] and "2.1 Setup" in text["02_second.html"]
    assert "Figure 1.1: The learning curve (see Chapter 3)." in text["01_first.html"]
    assert 'id="fig-curve"' in pages["01_first.html"]
    assert 'width="320" height="200"' in pages["01_first.html"]
    second = text["02_second.html"]
    assert "(a) left" in second and "(b) right" in second and "Figure 2.1: Two panels." in second
    assert second.index("(b) right") < second.index("Figure 2.1: Two panels.")
    assert "Table 2.1: Some numbers." in second and 'id="tbl-numbers"' in pages["02_second.html"]
    assert "Unlisted" in text["notes.html"] and "3.2 Unlisted" not in text["notes.html"]


def test_cross_references_and_citations(book):
    site, pages = book
    index = pages["index.html"]
    assert '<a class="xref" href="01_first.html#fig-curve">Figure 1.1</a>' in index
    assert '<a class="xref" href="02_second.html">Chapter 2</a>' in index
    t = _text(index)
    assert "replicates (Lin 2024)" in t and "compares with Mante et al. (2013)" in t
    assert "(Lin 2024; Mante et al. 2013)" in t
    assert 'href="references.html#ref-lin2024fine"' in index
    assert "someone@mante2013context.org" in t                 # not a citation
    assert "?@fig-nowhere" in t and "fig-nowhere" in " ".join(site.unresolved)
    assert len(site.unresolved) == 1, site.unresolved
    notes = _text(pages["notes.html"])
    assert "Equation 3.1" in notes and "Section 3.1" in notes and "Table 2.1" in notes
    assert "Figure 2.1" in notes and "(3.1)" in notes
    refs = pages["references.html"]
    assert 'id="ref-lin2024fine"' in refs and 'id="ref-mante2013context"' in refs
    assert "uncited2020" not in refs                            # only the cited entries
    assert refs.index("ref-lin2024fine") < refs.index("ref-mante2013context")   # by author
    assert "78\u201384" in refs and "arXiv:2406.18926" in refs
    assert "A References" not in _text(refs)                   # unnumbered appendix


def test_quarto_syntax_is_translated(book):
    _, pages = book
    for name, page in pages.items():
        body = re.sub(r"<(pre|code)\b.*?</\1>", "", page.split('<main', 1)[1], flags=re.S)   # code aside
        assert "{#sec-" not in body and "{.unnumbered" not in body and ":::" not in body, name
        assert "{{<" not in body and "---" not in _text(body)[:30], name
    index = pages["index.html"]
    assert "<code>@fig-curve costs $5</code>" in index           # code spans untouched
    assert 'x = &quot;$a$ @fig-curve {#sec-x}&quot;' in index or 'x = "$a$ @fig-curve {#sec-x}"' in index
    notes = pages["notes.html"]
    assert 'class="callout callout-warning"' in notes and "Careful" in notes and "<strong>body</strong>" in notes
    assert 'class="callout callout-note"' in notes and "A titled note" in notes
    assert 'class="column-margin"' in notes and "Margin text kept." in notes
    assert '<div class="table-wrap"><table>' in notes and "<del>no</del>" in notes


def test_math_is_mathml_without_dollars(book):
    _, pages = book
    notes = pages["notes.html"]
    body = notes.split('<main', 1)[1]
    assert body.count("<math") == 2 and 'display="block"' in body and "<mfrac>" in body
    assert "costs $5 and $6" in _text(body) and "US$7" in _text(body)  # currency is not math
    assert "$\\" not in body and "$$" not in body and "\\frac" not in body


def test_code_cells_and_outputs(book):
    _, pages = book
    first, second = pages["01_first.html"], pages["02_second.html"]
    assert "secret_hidden_code" not in first and "Run card: see" in first      # echo: false
    assert '<a class="xref" href="02_second.html">Chapter 2</a>' in first       # markdown output
    assert "nothing_at_all" not in first and "invisible output" not in first  # include: false
    assert "quiet_code" in first and "suppressed output" not in first         # output: false
    assert re.search(r"<details class=\"code-fold\"><summary>Code</summary><pre[^>]*><code[^>]*>plot_curve\(\)",
                     first)
    assert "#|" not in first.split("<main", 1)[1]
    assert "printed line" in first and "\x1b" not in first
    assert "<table class='dataframe'><tr><td>cell</td></tr></table>" in first   # HTML as is
    assert "<pre class=\"output text\">df" not in first                       # text/plain only as fallback
    assert "Parameters of this build:" in first and 'profile = &quot;smoke&quot;' in first
    assert first.index("Parameters of this build") < first.index("Intro citing")
    assert "# Parameters" not in first
    assert "WIDGET REPR" not in second and "model_id" not in second
    assert 'class="output error"' in second and "ValueError: boom" in second
    assert "data:image/svg+xml;base64," in second and "data:image/png;base64," in second


def test_no_page_loads_anything_from_outside(book):
    _, pages = book
    for name, page in pages.items():
        assert not external_resources(page), name
    assert external_resources('<script src="https://cdn.example/x.js"></script>')
    assert external_resources("<style>@import 'x.css'</style>")
    assert not external_resources('<a href="https://arxiv.org/abs/1">paper</a>')


def test_bib_parser_is_tolerant():
    bib = parse_bib(BIB + "@misc{broken, title = {unterminated\n@book{b, title={T}, author={Org {and} Co}}")
    assert set(bib) >= {"lin2024fine", "mante2013context", "uncited2020", "b"}
    assert bib["mante2013context"]["year"] == "2013" and bib["mante2013context"]["type"] == "article"
    assert bib["mante2013context"]["title"].startswith("Context-dependent")


def testcell_options():
    opts, code = cell_options(strict=False, source='#| label: fig-x\n#| fig-subcap:\n#|   - a\n#|   - b\n#| echo: false\nx = 1\n#| later')
    assert opts == {"label": "fig-x", "fig-subcap": ["a", "b"], "echo": False}
    assert code == "x = 1\n#| later"


@pytest.mark.slow
def test_the_smoke_build_previews_as_a_book(smoke_book):
    _, build, res = smoke_book
    assert res.returncode == 0, res.stderr[-3000:]
    out = build / "smoke"
    site = preview_site(out)
    from helpers.book.chapters import list_chapters
    index = (site / "index.html").read_text()
    for n, ch in enumerate(list_chapters(), start=1):
        page = (site / f"{ch}.html").read_text()
        body = page.split("<main", 1)[1]
        text = _text(body)
        nb = nbformat.read(out / "chapters" / f"{ch}.ipynb", as_version=4)
        labels = [cell_options(c.source, strict=False)[0].get("label", "") for c in nb.cells if c.cell_type == "code"]
        figures = [x for x in labels if str(x).startswith("fig-")]
        for k, label in enumerate(figures, start=1):
            assert f"Figure {n}.{k}:" in text, (ch, label)
            assert f'id="{label}"' in body, (ch, label)
        assert re.search(rf'class="chapter-number">{n}</span>', body), ch
        assert "{#sec-" not in body and not re.search(r"(?<!\?)@(fig|sec|tbl)-", text), ch
        assert "#| " not in body, ch
        assert 'class="prev"' in page and f'href="{ch}.html"' in index, ch
        assert not external_resources(page), ch
    assert not site.unresolved, site.unresolved


def test_without_a_refs_div_the_references_end_the_last_page_and_an_index_is_made(tmp_path):
    (tmp_path / "_quarto.yml").write_text("book:\n  title: T\n  chapters:\n    - a.qmd\n    - b.qmd\n"
                                          "bibliography: refs.bib\n")
    (tmp_path / "refs.bib").write_text(BIB)
    (tmp_path / "a.qmd").write_text("---\ntitle: From the front matter\n---\n\nCites @lin2024fine and "
                                    "[-@mante2013context]; $x$ is math.\n")
    (tmp_path / "b.qmd").write_text("# B {#sec-b}\n\nBack to @sec-b.\n")
    site = preview_site(tmp_path)
    a, b = (site / "a.html").read_text(), (site / "b.html").read_text()
    assert "1 From the front matter" in _text(a) and "2 B" in _text(b)
    assert "Lin (2024)" in _text(a) and "(2013)" in _text(a) and "<math" in a
    assert 'href="b.html#ref-lin2024fine"' in a and 'id="ref-lin2024fine"' in b and "References" in _text(b)
    assert (site / "index.html").exists() and 'href="a.html"' in (site / "index.html").read_text()
    assert not site.unresolved


def test_relative_links_follow_the_source_files_as_in_quarto(book):
    """A chapter's links are relative to its notebook (``chapters/``); the preview's pages all lie in
    one folder, so a link to a file of the build points at its copy there and a link to a page's
    source at that page."""
    site, pages = book
    second = pages["02_second.html"]
    assert 'href="downloads/notebooks/02_second.ipynb"' in second
    assert 'href="downloads/table.csv"' in second and (site / "downloads" / "table.csv").exists()
    assert 'href="notes.html#sec-x"' in second and 'href="01_first.html"' in second
    assert 'href="https://arxiv.org/abs/2406.18926"' in second          # absolute links are left alone
