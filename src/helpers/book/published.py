"""The build the repository carries, so that a reader renders the whole site without running a kernel
or training anything (Quarto's ``_freeze`` idea, for this book's executed notebooks).

``published/<build>/`` holds one executed build as the runner left it: the executed chapters
(``chapters/*.ipynb``), ``verdicts.json`` (which commit, profile and date produced each chapter),
``timings.json`` and the chapters' results tables (``downloads/tables/``).  Two commands:

* ``python -m helpers publish --profile quick`` (maintainers): copy a whole build into
  ``published/<build>/``, replacing what was there only once the new copy is complete;
* ``python -m helpers site --published``: copy the carried build into ``_build/published/`` and
  render it (Quarto, else the static preview).  Chapters whose code or parameters changed since
  they were executed (:func:`stale_chapters`: the chapter's file, its profile or ``claims.yaml``
  differ from the commit recorded in ``verdicts.json``) are listed on the landing page and carry
  a warning at their top.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from helpers.book.pages import STALE_FILE
from helpers.book.scorecard import VERDICTS_FILE, failed_chapters, resolve_build
from helpers.core.artifacts import atomic_write_text
from helpers.core.errors import MissingBuild, ParameterError
from helpers.core.paths import REPO

PUBLISHED = REPO / "published"
CARRIED = ("chapters", VERDICTS_FILE, "timings.json", "downloads/tables")


def published_builds(root: Path = PUBLISHED) -> list[Path]:
    return sorted(p for p in root.iterdir() if (p / VERDICTS_FILE).exists()) if root.is_dir() else []


def publish(build: str, root: Path = PUBLISHED) -> Path:
    """Copy the build `build` (a profile or a build folder under ``_build``) into ``root/<name>``:
    its executed chapters, verdicts, timings and tables.  Refused when a chapter of it did not
    finish; the old copy is replaced only when the new one is whole."""
    folder = resolve_build(build)
    if not (folder / VERDICTS_FILE).exists() or not list((folder / "chapters").glob("*.ipynb")):
        raise MissingBuild(f"{folder} holds no executed chapter with recorded verdicts: build it first "
                           f"(`python -m helpers book --profile {folder.name}`)")
    failed = failed_chapters(folder)
    if failed:
        raise ParameterError(f"{folder.name}: {', '.join(failed)} did not finish at their last execution; "
                             "publish a build whose chapters all finished")
    root.mkdir(parents=True, exist_ok=True)
    final = root / folder.name
    staging = root / f".{folder.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name in CARRIED:
        src = folder / name
        if src.is_dir():
            shutil.copytree(src, staging / name,
                            ignore=shutil.ignore_patterns(".running", "failed", "*.lock") if name == "chapters" else None)
        elif src.exists():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, staging / name)
    old = root / f".{folder.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _changed_since(commit: str, paths: list[str], repo: Path = REPO) -> list[str] | None:
    """The `paths` whose content in the work tree differs from `commit` (None: git cannot say)."""
    try:
        p = subprocess.run(["git", "-C", str(repo), "diff", "--name-only", commit, "--", *paths],
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return sorted(p.stdout.split()) if p.returncode == 0 else None


def stale_chapters(folder: Path, repo: Path = REPO) -> dict[str, str]:
    """The chapters of the executed build in `folder` that may no longer be what their code would
    print, each with why: its file (``chapters/<name>.py``), its profile or ``claims.yaml`` changed
    since the commit that executed it; or that commit is unknown, was not clean (``+dirty``) or is
    not in this checkout's history (then it cannot be checked, and says so).  Changes to the
    library (``src/``) are not counted: every chapter reads it, and the library's tests pin it."""
    data = json.loads((folder / VERDICTS_FILE).read_text())
    profile = data.get("profile", "quick")
    out = {}
    for chapter, rec in sorted((data.get("chapters") or {}).items()):
        commit = str(rec.get("commit") or "")
        if not commit:
            out[chapter] = "executed by an unknown commit: cannot be checked"
            continue
        if commit.endswith("+dirty"):
            out[chapter] = f"executed from uncommitted changes on {commit[:-6]}: cannot be checked"
            continue
        changed = _changed_since(commit, [f"chapters/{chapter}.py", f"profiles/{profile}.yaml", "claims.yaml"], repo)
        if changed is None:
            out[chapter] = f"executed by commit {commit}, which this checkout does not have: cannot be checked"
        elif changed:
            out[chapter] = f"changed since commit {commit}, which executed it: {', '.join(changed)}"
    return out


def stale_note(why: str) -> str:
    return (f"::: {{.callout-warning}}\n**Executed before its latest change.** This page was executed and carried "
            f"in the repository; since then, {why}. Rebuild it to see what the current code prints.\n:::")


def mark_stale(folder: Path, stale: dict[str, str]) -> None:
    """Put :func:`stale_note` at the top of each stale chapter's executed notebook in `folder` (a
    copy: the carried build itself is never changed) and record the list in ``stale.json``."""
    import nbformat
    for chapter, why in stale.items():
        path = folder / "chapters" / f"{chapter}.ipynb"
        if not path.exists():
            continue
        nb = nbformat.read(path, as_version=4)
        at = next((i + 1 for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.lstrip().startswith("#")), 0)
        nb.cells.insert(at, nbformat.v4.new_markdown_cell(stale_note(why)))
        nbformat.write(nb, path)
    atomic_write_text(folder / STALE_FILE, json.dumps(stale, indent=1))


def site_from_published(build: str | None = None, root: Path = PUBLISHED) -> Path:
    """Copy the carried build (`build`, default the only or first one under `root`) into
    ``_build/published`` (replacing an earlier copy), mark the stale chapters, render it.  Returns
    the site folder."""
    from helpers.book.runner import build_dir
    from helpers.book.site import render_site
    builds = published_builds(root)
    if not builds:
        raise MissingBuild(f"{root} holds no carried build (a maintainer adds one with "
                           "`python -m helpers publish --profile quick`)")
    names = [b.name for b in builds]
    if build is not None and build not in names:
        raise ParameterError(f"--published {build!r}: the carried builds are {names}")
    src = root / (build or names[0])
    out = build_dir("published")
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(src, out)
    stale = stale_chapters(out)
    mark_stale(out, stale)
    if stale:
        print(f"[book] {len(stale)} chapter(s) changed since they were executed: " + "; ".join(
            f"{c} ({w})" for c, w in stale.items()), flush=True)
    return render_site(out)
