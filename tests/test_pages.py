"""The generated pages and downloads: the landing page says what the build found and what produced
it, the closing chapter puts every claim beside its verdict, the chapters' tables and notebooks
land in ``downloads/``, widget state is dropped before rendering, and the site's config renders the
book's pages only and loads nothing from the network."""
import json

import nbformat
import pandas as pd
import pytest
import yaml

from helpers.book import downloads, pages, scorecard, site
from helpers.claims.verdict import claims, verdict
from helpers.core.errors import ParameterError
from helpers.core.paths import REPO
from helpers.study import Study

GATE = "the scratch model does not solve the task: 50.0% correct on 16 held-out trials"


def record(build, profile="quick"):
    """Three verdicts of a build: one replicated, one not replicated, one gated."""
    scorecard.record_verdicts(build, "02_training", [
        verdict("lin-sample-efficiency", "fine-tuned vs scratch", 0.11, 0.06, 0.18, "ev", seeds=3)], profile)
    scorecard.record_verdicts(build, "04_attention", [
        verdict("lin-attention-relevance", "scratch", 0.01, -0.02, 0.03, "ev", gate=GATE),
        verdict("lin-attention-numbers", "scratch", -0.2, -0.3, -0.1, "ev")], profile)


def test_the_landing_block_counts_the_verdicts_and_names_the_build(builds):
    build = builds / "quick"
    record(build)
    text = pages.findings_markdown(build)
    assert "Of the 3 verdicts" in text
    assert "**1 replicated**, **1 not replicated** and **1 inconclusive** (1 of them because a model failed a gate)" in text
    assert "gate failed: the scratch model does not solve the task" in text
    # one line per recorded verdict, with the claim's words
    assert text.count("\n- **") == 3
    assert claims()["lin-attention-numbers"].words.split()[0] in text
    # the build's facts: profile, models from the profile, commit, and how to rebuild
    assert "`quick`" in text and "`smollm2-135m`" in text and "`scratch:smollm2-135m`" in text
    assert "python -m helpers book --profile quick" in text
    # chapters that were not executed in this build are named, not cross-referenced (no dead ref)
    assert "@sec-training" not in text and "chapter 02 (not in this build)" in text
    assert "tiny random networks" not in text


def test_a_smoke_build_says_its_verdicts_say_nothing(builds):
    build = builds / "smoke"
    record(build, "smoke")
    assert "tiny random networks" in pages.findings_markdown(build)


def test_a_build_without_verdicts_says_so(builds):
    (builds / "quick").mkdir(parents=True)
    assert "No chapter of this build has recorded a verdict yet" in pages.findings_markdown(builds / "quick")


def test_the_closing_table_lists_every_claim_beside_its_verdict(builds):
    build = builds / "quick"
    record(build)
    table = pages.claims_markdown(build)
    rows = [r for r in table.splitlines()[2:]]
    assert len(rows) == len(claims())
    assert "scratch: **not replicated**; " in table
    assert table.count("not run in this build") == len(claims()) - 3
    for c in claims().values():
        assert " ".join(c.words.split()) in table


def test_the_closing_chapter_says_which_verdicts_depend_on_the_method(builds):
    from helpers.claims.verdict import with_robustness
    build = builds / "quick"
    assert "No verdict of this build" in pages.robustness_markdown(build)
    main = [verdict("lin-ablation-finetuned-late", "fine-tuned", 0.11, 0.06, 0.18, "ev"),
            verdict("lin-ablation-scratch-first", "scratch", 0.2, 0.1, 0.3, "ev")]
    alt = [verdict("lin-ablation-finetuned-late", "fine-tuned", 0.01, -0.05, 0.03, "ev"),
           verdict("lin-ablation-scratch-first", "scratch", 0.2, 0.1, 0.3, "ev")]
    scorecard.record_verdicts(build, "03_ablation", with_robustness(main, {"zero-ablation": alt}), "quick")
    text = pages.robustness_markdown(build)
    assert "Of the 2 judged verdicts" in text and "**1 depend on the method** and 1 hold" in text
    rows = [r for r in text.splitlines() if r.startswith("| `")]
    assert rows[0].startswith("| `lin-ablation-finetuned-late`") and "zero-ablation: not replicated" in rows[0]
    assert rows[1].endswith("| robust |")
    assert "[depends on the method (zero-ablation: not replicated)]" in pages.claims_markdown(build)


def test_write_pages_fills_the_markers_and_the_downloads(builds, tmp_path):
    build = builds / "quick"
    record(build)
    (build / "chapters").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), build / "chapters" / "02_training.ipynb")
    written = pages.write_pages(build)
    assert {p.name for p in written} == {"index.qmd", "conclusion.qmd", "teaching.qmd", "references.qmd"}
    index = (build / "index.qmd").read_text()
    assert pages.FINDINGS_MARKER not in index and "## What this build found" in index
    conclusion = (build / "conclusion.qmd").read_text()
    assert pages.CLAIMS_MARKER not in conclusion and "what this build found" in conclusion
    assert pages.ROBUSTNESS_MARKER not in conclusion and "No verdict of this build" in conclusion
    teaching = (build / "teaching.qmd").read_text()
    assert pages.TEACHING_MARKER not in teaching and "`02-wilson` The Wilson interval" in teaching
    assert "| 02_training |" in teaching and "not run" in teaching        # no timings.json in this build
    assert (build / "downloads" / "notebooks" / "02_training.ipynb").exists()
    assert json.loads((build / "downloads" / "verdicts.json").read_text())["profile"] == "quick"
    # the repository's pages keep their markers (the build gets the filled copies)
    assert pages.FINDINGS_MARKER in (REPO / "index.qmd").read_text()
    assert pages.CLAIMS_MARKER in (REPO / "conclusion.qmd").read_text()
    assert pages.TEACHING_MARKER in (REPO / "teaching.qmd").read_text()


def test_save_tables_writes_csv_and_links_them(builds):
    study = Study.from_profile("smoke")
    concat = pd.concat([pd.DataFrame({"layer": [0]}), pd.DataFrame({"layer": [1]})])     # index 0, 0
    downloads.save_tables(study, "03", {"concat": concat})
    assert (builds / "smoke" / "downloads" / "03_ablation" / "concat.csv").read_text() == "layer\n0\n1\n"
    md = downloads.save_tables(study, "03", {"effects": pd.DataFrame({"layer": [0, 1], "drop": [0.5, 0.25]}),
                                             "per-layer": pd.Series([1.0, 2.0], index=["a", "b"], name="x")})
    folder = builds / "smoke" / "downloads" / "03_ablation"
    assert pd.read_csv(folder / "effects.csv").to_dict("list") == {"layer": [0, 1], "drop": [0.5, 0.25]}
    assert (folder / "per-layer.csv").read_text().splitlines()[1] == "a,1.0"     # a named index is kept
    assert md.data == ("**Downloads:** [executed notebook](../downloads/notebooks/03_ablation.ipynb) · "
                       "[effects.csv](../downloads/03_ablation/effects.csv) · "
                       "[per-layer.csv](../downloads/03_ablation/per-layer.csv)")


@pytest.mark.parametrize("name, table, words", [
    ("Effects table", pd.DataFrame({"a": [1]}), "lower-case letters"),
    ("../x", pd.DataFrame({"a": [1]}), "lower-case letters"),
    ("effects", [1, 2], "is a list"),
])
def test_save_tables_names_a_bad_table(builds, tmp_path, name, table, words):
    with pytest.raises(ParameterError, match=words):
        downloads.write_tables(tmp_path, "03_ablation", {name: table})


def test_strip_widgets_drops_state_and_views_and_keeps_html(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    cell = nbformat.v4.new_code_cell("explorer")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"text/html": "<div>static explorer</div>"}),
        nbformat.v4.new_output("display_data", data={pages.WIDGET_VIEW: {"model_id": "x"}, "text/plain": "VBox()"}),
    ]
    nb.cells = [cell]
    path = tmp_path / "ch.ipynb"
    nbformat.write(nb, path)
    assert pages.strip_widgets(path) is True
    back = nbformat.read(path, as_version=4)
    assert "widgets" not in back.metadata
    assert [list(o["data"]) for o in back.cells[0].outputs] == [["text/html"]]
    assert pages.strip_widgets(path) is False


def test_the_site_config_renders_the_book_pages_only_and_offline():
    config = site.book_config()
    book = config["book"]
    assert config["project"]["render"] == book["chapters"] + list(book.get("appendices") or [])
    assert book["chapters"][-3:] == ["conclusion.qmd", "teaching.qmd", "references.qmd"]
    assert "downloads/**" in config["project"]["resources"]
    html = config["format"]["html"]
    assert html["html-math-method"] == "mathml"            # no MathJax from a CDN
    assert "book.scss" in html["theme"]
    assert "$web-font-path: false;" in (REPO / "book.scss").read_text()    # no Google Fonts import
    for page in ("index.qmd", "conclusion.qmd", "teaching.qmd", "references.qmd"):
        assert (REPO / page).exists()
    assert "::: {#refs}" in (REPO / "references.qmd").read_text()


def test_citation_cff_names_the_book_and_both_papers():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["title"].startswith("How fine-tuning solves an unseen task")
    assert {r["title"].split(":")[0] for r in cff["references"]} == {
        "Fine-tuned network relies on generic representation to solve unseen cognitive task",
        "Fine-Tuning Enhances Existing Mechanisms"}


def test_the_site_command_without_a_build_is_one_message(builds, capsys):
    from helpers.book import cli
    assert cli.main(["site", "--profile", "quick"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "python -m helpers book --profile quick" in err
