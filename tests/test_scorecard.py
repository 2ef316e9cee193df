"""The scorecard is generated from the chapters' recorded verdicts, never typed: a chapter's verdicts
are merged into its build's ``verdicts.json`` (replacing only that chapter's, atomically), every
claim of ``claims.yaml`` appears (``not run`` without a verdict), a failed gate is shown, the page
cross-references only chapters executed in its build, and ``python -m helpers verdicts`` prints it,
says which command builds a missing build, and rewrites only the README's findings table."""
import json
import os
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from helpers.book import cli, runner, scorecard, site
from helpers.book.chapters import list_chapters, read_chapter
from helpers.claims.verdict import Verdict, claims, verdict
from helpers.core.errors import MissingBuild, ParameterError
from helpers.core.paths import REPO
from helpers.study import Study

GATE = "the scratch model does not solve the task: 50.0% correct on 16 held-out trials"


def efficiency(value=0.11, lo=0.04, hi=0.18):
    return verdict("lin-sample-efficiency", "fine-tuned vs scratch", value, lo, hi, "evidence 02", seeds=3)


def relevance_scratch():
    return verdict("lin-attention-relevance", "scratch", 0.01, -0.02, 0.03, "evidence 04",
                   statistic="best head", gate=GATE)


def read(root, name="smoke"):
    return json.loads((root / name / "verdicts.json").read_text())


# ---- recording -----------------------------------------------------------------------------------

def test_show_verdicts_records_the_chapter_and_returns_its_markdown(builds):
    study = Study.from_profile("smoke")
    v = [efficiency()]
    md = scorecard.show_verdicts(study, "02", v)
    assert md.data == v[0].markdown()
    two = scorecard.show_verdicts(study, "04", [relevance_scratch(), relevance_scratch()])
    assert two.data == relevance_scratch().markdown() + "\n\n" + relevance_scratch().markdown()
    data = read(builds)
    assert data["profile"] == "smoke" and data["overrides"] == {}
    assert re.fullmatch(r"[0-9a-f]{4,40}(\+dirty)?", data["commit"]) and data["date"][:4].isdigit()
    e = data["entries"][0]
    assert set(Verdict.__dataclass_fields__) <= set(e)
    assert {k: e[k] for k in ("claim", "model", "status", "value", "lo", "hi", "gate", "chapter", "anchor")} == {
        "claim": "lin-sample-efficiency", "model": "fine-tuned vs scratch", "status": "replicated",
        "value": 0.11, "lo": 0.04, "hi": 0.18, "gate": None, "chapter": "02_training", "anchor": "sec-training"}
    assert e["commit"] == data["commit"] and e["date"]
    assert [x["chapter"] for x in data["entries"]] == ["02_training", "04_attention", "04_attention"]
    assert data["entries"][1]["gate"] == GATE
    assert set(data["chapters"]) == {"02_training", "04_attention"}


def test_rerunning_a_chapter_replaces_only_its_entries(builds):
    study = Study.from_profile("smoke")
    scorecard.show_verdicts(study, "02", [efficiency()])
    scorecard.show_verdicts(study, "04_attention", [relevance_scratch()])
    scorecard.show_verdicts(study, "2", [efficiency(0.01, -0.05, 0.04)])
    entries = read(builds)["entries"]
    assert len(entries) == 2
    ch2 = [e for e in entries if e["chapter"] == "02_training"]
    assert len(ch2) == 1 and ch2[0]["value"] == 0.01 and ch2[0]["status"] == "not replicated"
    assert [e["claim"] for e in entries if e["chapter"] == "04_attention"] == ["lin-attention-relevance"]
    scorecard.show_verdicts(study, "04", [])                      # a chapter that now judges nothing
    assert [e["chapter"] for e in read(builds)["entries"]] == ["02_training"]


def test_the_write_is_atomic(builds, monkeypatch):
    study = Study.from_profile("smoke")
    scorecard.show_verdicts(study, "02", [efficiency()])
    before = (builds / "smoke" / "verdicts.json").read_text()

    def interrupted(src, dst):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        scorecard.show_verdicts(study, "04", [relevance_scratch()])
    monkeypatch.undo()
    assert (builds / "smoke" / "verdicts.json").read_text() == before      # the old file, whole
    assert sorted(p.name for p in (builds / "smoke").iterdir()) == ["verdicts.json", "verdicts.json.lock"]


def test_where_the_verdicts_go(builds, tmp_path, monkeypatch):
    # overrides of the study: beside the profile's build, as `python -m helpers run` writes the chapter
    scorecard.show_verdicts(Study.from_profile("smoke", seeds=[1]), "02", [efficiency()])
    assert (builds / "smoke+seeds=1" / "verdicts.json").exists()
    # a chapter parameter that differs from the profile's (plain papermill, -p n_ablation 32)
    folder = scorecard.chapter_build_dir(Study.from_profile("smoke"), "03_ablation", n_ablation=32)
    assert folder == runner.build_dir("smoke", {"n_ablation": 32})
    same = runner.resolve_parameters("03", "smoke")["n_ablation"]
    assert scorecard.chapter_build_dir(Study.from_profile("smoke"), "03_ablation", n_ablation=same) == builds / "smoke"
    # under the runner, the folder it executes the chapter for, whatever the kernel's cwd
    monkeypatch.setenv(scorecard.BUILD_ENV, str(tmp_path / "elsewhere"))
    monkeypatch.chdir(tmp_path)
    scorecard.show_verdicts(Study.from_profile("smoke"), "02", [efficiency()])
    assert (tmp_path / "elsewhere" / "verdicts.json").exists()
    assert not (builds / "smoke").exists()


def test_the_runner_tells_the_kernel_its_build_folder(builds, monkeypatch):
    import papermill
    seen = {}

    def fake_execute(nb, out, cwd=None, **kw):
        seen["env"], seen["cwd"] = os.environ.get(scorecard.BUILD_ENV), cwd
        Path(out).write_text("{}")
    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    out = builds / "smoke" / "chapters"
    runner.execute_chapter("01_task", {"profile": "smoke"}, out)
    assert seen == {"env": str((builds / "smoke").resolve()), "cwd": str(out)}
    assert scorecard.BUILD_ENV not in os.environ


def test_only_verdicts_are_accepted(builds):
    with pytest.raises(ParameterError, match="Verdict objects"):
        scorecard.show_verdicts(Study.from_profile("smoke"), "02", [("replicated", "evidence")])
    with pytest.raises(ParameterError, match="unknown chapter"):
        scorecard.show_verdicts(Study.from_profile("smoke"), "99", [efficiency()])


def test_git_commit_outside_a_checkout_is_none(tmp_path):
    assert scorecard.git_commit(tmp_path) is None
    assert re.fullmatch(r"[0-9a-f]{4,40}(\+dirty)?", scorecard.git_commit(REPO))


# ---- the table -----------------------------------------------------------------------------------

def test_every_claim_appears_with_not_run_and_gates(builds):
    scorecard.show_verdicts(Study.from_profile("smoke"), "02", [efficiency()])
    scorecard.show_verdicts(Study.from_profile("smoke"), "04", [relevance_scratch()])
    scorecard.show_verdicts(Study.from_profile("quick"), "02", [efficiency(0.01, -0.05, 0.04)])
    table = scorecard.scorecard_table(["smoke", "quick"])
    assert list(table.columns) == ["claim", "paper", "chapter", "anchor", "claim words", "model", "smoke", "quick"]
    assert list(dict.fromkeys(table["claim"])) == list(claims())              # every claim, in file order
    row = lambda c, m: table[(table["claim"] == c) & (table["model"] == m)].iloc[0]   # noqa: E731
    assert row("lin-sample-efficiency", "fine-tuned vs scratch")["smoke"] == "replicated (3 seeds); effect +0.110 [+0.040, +0.180]"
    assert row("lin-sample-efficiency", "fine-tuned vs scratch")["quick"].startswith("not replicated")
    # judged on one model by the chapter: the claim's other model is listed as not run
    assert row("lin-attention-relevance", "scratch")["smoke"] == (
        "inconclusive (gate failed: the scratch model does not solve the task); best head +0.010 [-0.020, +0.030]")
    assert row("lin-attention-relevance", "fine-tuned")["smoke"] == "not run"
    assert row("lin-attention-relevance", "scratch")["quick"] == "not run"
    # no verdict anywhere: one row per model of the claim, not run
    never = table[table["claim"] == "lin-decoding"]
    assert list(never["model"]) == ["fine-tuned"] and list(never["smoke"]) == ["not run"]
    assert len(table[table["claim"] == "lin-sample-efficiency"]) == 1          # "fine-tuned vs scratch" names both
    info = {b["name"]: b for b in table.attrs["builds"]}
    assert info["smoke"]["chapters"] == ["02_training", "04_attention"] and info["quick"]["commit"]


def test_default_builds_put_the_asked_profile_first(builds):
    for p in ("smoke", "quick"):
        scorecard.show_verdicts(Study.from_profile(p), "02", [efficiency()])
    scorecard.show_verdicts(Study.from_profile("smoke", seeds=[1]), "02", [efficiency()])  # an override build
    assert [p.name for p in scorecard.default_builds("smoke")] == ["smoke", "quick"]
    assert [p.name for p in scorecard.built_profiles()] == ["quick", "smoke"]


def test_load_verdicts_names_the_command_that_builds_them(builds):
    with pytest.raises(MissingBuild, match=r"has not been built here .*python -m helpers book --profile quick"):
        scorecard.load_verdicts("quick")
    (builds / "quick").mkdir(parents=True)
    with pytest.raises(MissingBuild, match="has no recorded verdicts"):
        scorecard.load_verdicts("quick")


# ---- the page ------------------------------------------------------------------------------------

def fake_executed(folder: Path, *chapters: str) -> None:
    """Executed notebooks of `chapters` (their real first markdown cell, with its anchor)."""
    (folder / "chapters").mkdir(parents=True, exist_ok=True)
    for ch in chapters:
        nb = read_chapter(ch)
        first = next(c for c in nb.cells if c.cell_type == "markdown")
        out = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(first.source)])
        nbformat.write(out, folder / "chapters" / f"{ch}.ipynb")


def test_the_page_cross_references_only_executed_chapters(builds):
    scorecard.show_verdicts(Study.from_profile("smoke"), "02", [efficiency()])
    scorecard.show_verdicts(Study.from_profile("quick"), "02", [efficiency()])
    fake_executed(builds / "smoke", "01_task", "02_training", "04_attention")
    path = scorecard.write_scorecard_page(builds / "smoke")
    page = path.read_text()
    assert path.name == "scorecard.qmd"
    assert page.startswith("# Scorecard {#sec-scorecard")
    refs = set(re.findall(r"@(sec-[\w-]+)", page))
    assert refs == {"sec-training", "sec-attention"}
    assert refs <= set(scorecard.executed_anchors(builds / "smoke"))
    assert "ch. 03 (not in this build)" in page and "ch. 06 (not in this build)" in page
    for cid in claims():
        assert f"`{cid}`" in page
    assert "| claim | chapter | model | smoke | quick |" in page               # the other profile's column
    assert "gate" in page and "not run" in page
    assert re.search(r"`smoke`: profile `smoke`, chapters executed \d{4}-\d\d-\d\d at commit `[0-9a-f]+", page)
    card, calibration = page.split("## How each rule was calibrated")
    table_rows = [l for l in card.splitlines() if l.startswith("| `")]
    assert all(l.count(" | ") == 4 for l in table_rows)                        # no stray pipes in cells
    assert "| `lin-attention-relevance` |" in calibration and "null" in calibration   # docs/calibration.md


def test_a_build_without_verdicts_gets_a_page_of_not_run(builds):
    fake_executed(builds / "smoke", "01_task")
    page = scorecard.scorecard_page(builds / "smoke")
    assert "no verdicts recorded in this build yet" in page and "@sec-" not in page
    assert page.count("| not run |") == sum(len(c.models) for c in claims().values())


def test_the_book_lists_the_scorecard_first_after_the_preface(builds):
    book = yaml.safe_load((REPO / "_quarto.yml").read_text())["book"]["chapters"]
    assert book[:2] == ["index.qmd", "scorecard.qmd"]
    assert book[2:-3] == [f"chapters/{c}.ipynb" for c in list_chapters()]   # then conclusion, teaching, references
    scorecard.show_verdicts(Study.from_profile("smoke"), "02", [efficiency()])
    fake_executed(builds / "smoke", "02_training")
    scorecard.write_scorecard_page(builds / "smoke")
    preview = site.preview_site(builds / "smoke")
    index = (preview / "index.html").read_text()
    assert index.index("scorecard.html") < index.index("02_training.html")
    html = (preview / "scorecard.html").read_text()
    assert "<table>" in html and 'href="02_training.html"' in html and "@sec-" not in html


# ---- the command line ----------------------------------------------------------------------------

def test_cli_without_a_build_is_one_message(builds, capsys):
    assert cli.main(["verdicts", "--profile", "quick"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "python -m helpers book --profile quick" in err


def test_cli_prints_the_scorecard(builds, capsys):
    scorecard.show_verdicts(Study.from_profile("smoke"), "04", [relevance_scratch()])
    scorecard.show_verdicts(Study.from_profile("quick"), "02", [efficiency()])
    assert cli.main(["verdicts", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    for cid in claims():
        assert cid in out
    assert out.index("  smoke: profile smoke") < out.index("  quick: profile quick")
    assert "gate failed: the scratch model does not solve the task" in out and "not run" in out
    assert cli.main(["verdicts", "--profile", "quick", "--markdown"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("| claim | chapter | model | quick | smoke |")
    assert "**replicated** (3 seeds); effect +0.110 [+0.040, +0.180]" in md


def test_cli_readme_rewrites_only_between_the_markers(builds, tmp_path, capsys):
    readme = tmp_path / "README.md"
    head = "# Title\n\nText before.\n\n<!-- findings:start -->"
    tail = "<!-- findings:end -->\n\nText after, `python -m helpers verdicts`.\n"
    readme.write_text(f"{head}\nNo build has been recorded yet.\n{tail}")
    scorecard.show_verdicts(Study.from_profile("quick"), "02", [efficiency()])
    scorecard.show_verdicts(Study.from_profile("quick"), "04", [relevance_scratch()])
    assert cli.main(["verdicts", "--profile", "quick", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith(head + "\n") and text.endswith("\n" + tail)
    body = text[len(head):-len(tail)]
    assert "No build has been recorded yet" not in body
    assert "python -m helpers verdicts --profile quick --readme" in body
    for cid in claims():
        assert f"`{cid}`" in body
    assert "gate failed" in body and "not run" in body and "@sec-" not in body
    again = readme.read_text()
    assert cli.main(["verdicts", "--profile", "quick", "--readme", str(readme)]) == 0
    assert readme.read_text() == again                                    # idempotent (same build)
    readme.write_text("no markers here\n")
    capsys.readouterr()
    assert cli.main(["verdicts", "--profile", "quick", "--readme", str(readme)]) == 2
    assert "<!-- findings:start -->" in capsys.readouterr().err
    assert readme.read_text() == "no markers here\n"


def test_the_readme_has_the_findings_markers():
    text = (REPO / "README.md").read_text()
    assert text.count(scorecard.README_START) == 1 and text.count(scorecard.README_END) == 1
    section = text.split("## What the book found")[1].split("\n## ")[0]
    assert scorecard.README_START in section and "verdicts --profile quick --readme" in section


# ---- the smoke book ------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_smoke_book_writes_its_scorecard(smoke_book):
    """Every chapter that calls show_verdicts has its entries in the build's verdicts.json, and
    the scorecard page of the build lists every claim."""
    _, build, res = smoke_book
    assert res.returncode == 0, res.stderr[-3000:]
    out = build / "smoke"
    page = (out / "scorecard.qmd").read_text()
    for cid in claims():
        assert f"`{cid}`" in page
    assert set(re.findall(r"@(sec-[\w-]+)", page)) <= set(scorecard.executed_anchors(out))
    recording = {c for c in list_chapters() if "show_verdicts(" in (REPO / "chapters" / f"{c}.py").read_text()}
    if recording:
        data = json.loads((out / "verdicts.json").read_text())
        assert recording <= {e["chapter"] for e in data["entries"]}


def test_outside_the_runner_the_kernel_parameters_name_the_folder(builds, monkeypatch):
    """papermill by hand with -p n_ablation 32: the chapter's verdicts go beside the profile's build."""
    class FakeShell:
        user_ns = {"profile": "smoke", "study_overrides": {}, "n_ablation": 32}
    monkeypatch.setattr("IPython.get_ipython", lambda: FakeShell())
    scorecard.show_verdicts(Study.from_profile("smoke"), "03", [relevance_scratch()])
    data = json.loads((runner.build_dir("smoke", {"n_ablation": 32}) / "verdicts.json").read_text())
    assert data["overrides"] == {"n_ablation": 32} and data["chapters"]["03_ablation"]["overrides"] == {"n_ablation": 32}
    assert not (builds / "smoke").exists()
