"""The build the repository carries (``published/``): published whole, rendered without a kernel,
and the chapters changed since they were executed found and marked."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from helpers.book import published
from helpers.core.errors import MissingBuild, ParameterError


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


PROFILE = "parameters:\n  seeds: [0]\n  et_boxes: 3\n  n_examples: 6\n"
CLAIMS = ("policy:\n  alpha: 0.05\nclaims:\n  - id: a\n    chapter: '01'\n    material: 0.1\n"
          "  - id: b\n    chapter: '09'\n    material: 0.1\n")


def _repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / "chapters").mkdir(parents=True)
    (repo / "profiles").mkdir()
    for f, text in {"chapters/01_task.py": "a = 1\n", "chapters/02_training.py": "b = 2\n",
                    "chapters/09_entity.py": "c = 3\n", "profiles/quick.yaml": PROFILE, "claims.yaml": CLAIMS}.items():
        (repo / f).write_text(text)
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "one")
    return repo, _git(repo, "rev-parse", "--short", "HEAD")


def _build(tmp_path, chapters: dict):
    folder = tmp_path / "build"
    folder.mkdir()
    (folder / "verdicts.json").write_text(json.dumps({"profile": "quick", "chapters": chapters, "entries": []}))
    return folder


def test_stale_chapters_are_those_whose_code_parameters_or_claims_changed(tmp_path):
    """A chapter is stale when its file changed, a profile parameter it reads changed (its own, or a
    study parameter; the entity-tracking ones only for chapters 9-10), or what its verdicts read in
    claims.yaml changed (the policy for all; a claim for its chapter); a comment changes nothing."""
    repo, head = _repo(tmp_path)
    chapters = {c: {"commit": head} for c in ("01_task", "02_training", "09_entity")}
    folder = _build(tmp_path, chapters)
    assert published.stale_chapters(folder, repo) == {}
    (repo / "chapters" / "02_training.py").write_text("b = 3\n")
    stale = published.stale_chapters(folder, repo)
    assert list(stale) == ["02_training"] and "chapters/02_training.py" in stale["02_training"]
    (repo / "chapters" / "02_training.py").write_text("b = 2\n")
    (repo / "profiles" / "quick.yaml").write_text(PROFILE.replace("et_boxes: 3", "et_boxes: 5") + "# note\n")
    stale = published.stale_chapters(folder, repo)
    assert list(stale) == ["09_entity"] and "et_boxes" in stale["09_entity"]
    (repo / "profiles" / "quick.yaml").write_text(PROFILE.replace("n_examples: 6", "n_examples: 7"))
    assert list(published.stale_chapters(folder, repo)) == ["01_task"]          # chapter 1's own parameter
    (repo / "profiles" / "quick.yaml").write_text(PROFILE.replace("seeds: [0]", "seeds: [0, 1]"))
    assert set(published.stale_chapters(folder, repo)) == set(chapters)          # a study parameter: every chapter
    (repo / "profiles" / "quick.yaml").write_text(PROFILE)
    (repo / "claims.yaml").write_text("# a comment\n" + CLAIMS.replace("id: a\n    chapter: '01'\n    material: 0.1",
                                                                        "id: a\n    chapter: '01'\n    material: 0.2"))
    stale = published.stale_chapters(folder, repo)
    assert list(stale) == ["01_task"] and "claim a" in stale["01_task"]
    (repo / "claims.yaml").write_text(CLAIMS.replace("alpha: 0.05", "alpha: 0.01"))
    assert set(published.stale_chapters(folder, repo)) == set(chapters)


def test_a_chapter_whose_commit_cannot_be_checked_is_marked_so(tmp_path):
    repo, head = _repo(tmp_path)
    folder = _build(tmp_path, {"01_task": {"commit": f"{head}+dirty"}, "02_training": {"commit": "0123abc"},
                               "03_ablation": {}})
    stale = published.stale_chapters(folder, repo)
    assert "uncommitted" in stale["01_task"] and "does not have" in stale["02_training"]
    assert "unknown commit" in stale["03_ablation"]


def test_an_interrupted_publish_is_never_a_carried_build_and_a_damaged_one_is_one_line(tmp_path):
    """A half-copied ``.<name>.staging`` (or ``.old``) folder, verdicts and all, is not listed; a
    truncated ``verdicts.json`` is a one-line MissingBuild naming it, not a JSON traceback."""
    root = tmp_path / "pub"
    for name in (".quick.staging", ".quick.old", "quick"):
        (root / name).mkdir(parents=True)
        (root / name / "verdicts.json").write_text('{"profile": "quick", "chapters": {}, "entries": []}')
    assert [p.name for p in published.published_builds(root)] == ["quick"]
    (root / "quick" / "verdicts.json").write_text('{"profile": "qu')
    with pytest.raises(MissingBuild, match="damaged"):
        published.stale_chapters(root / "quick")


def test_publish_and_site_refuse_what_is_not_there(tmp_path, builds):
    with pytest.raises(MissingBuild, match="no carried build"):
        published.site_from_published(None, root=tmp_path / "nothing")
    with pytest.raises(MissingBuild):
        published.publish("smoke", root=tmp_path / "pub")


@pytest.mark.slow
def test_the_carried_build_renders_without_a_kernel_and_marks_stale_chapters(smoke_book, tmp_path, monkeypatch):
    """The smoke build published into a root of its own, one chapter's recorded commit set to one
    this checkout lacks: ``site --published`` renders every page, the landing page says it came from
    the carried build and names the chapter, the chapter's page carries the warning, and the carried
    copy itself is unchanged."""
    data, build, res = smoke_book
    assert res.returncode == 0, res.stderr[-2000:]
    monkeypatch.setenv("BOOK_BUILD_DIR", str(build))
    root = tmp_path / "published"
    out = published.publish("smoke", root=root)
    assert {p.name for p in out.iterdir()} >= {"chapters", "verdicts.json"}
    assert not list((out / "chapters").glob("*.lock"))
    v = json.loads((out / "verdicts.json").read_text())
    chapter = sorted(v["chapters"])[0]                        # a chapter that recorded verdicts
    v["chapters"][chapter]["commit"] = "0123abc"
    (out / "verdicts.json").write_text(json.dumps(v))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    render = tmp_path / "render"
    monkeypatch.setenv("BOOK_BUILD_DIR", str(render))
    site = published.site_from_published("smoke", root=root)
    assert (site / "index.html").exists()
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    copy = render / "published"
    assert "carried build" in (copy / "index.qmd").read_text() and chapter in (copy / "index.qmd").read_text()
    assert "Executed before its latest change" in (copy / "chapters" / f"{chapter}.ipynb").read_text()
    with pytest.raises(ParameterError, match="the carried builds are"):
        published.site_from_published("full", root=root)
    shutil.rmtree(render)
