"""The build the repository carries, so that a reader renders the whole site without running a kernel
or training anything (Quarto's ``_freeze`` idea, for this book's executed notebooks).

``published/<build>/`` holds one executed build as the runner left it: the executed chapters
(``chapters/*.ipynb``), ``verdicts.json`` (which commit, profile and date produced each chapter),
``timings.json`` and the chapters' results tables (``downloads/<chapter>/``).  Two commands:

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
from helpers.book.scorecard import VERDICTS_FILE, _read, failed_chapters, resolve_build
from helpers.core.artifacts import atomic_write_text
from helpers.core.errors import MissingBuild, ParameterError
from helpers.core.paths import REPO

PUBLISHED = REPO / "published"
CARRIED = ("chapters", VERDICTS_FILE, "timings.json", "downloads")


def published_builds(root: Path = PUBLISHED) -> list[Path]:
    """The carried builds: folders with verdicts, never the hidden ``.<name>.staging`` / ``.old``
    folders an interrupted :func:`publish` leaves (half-copied)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if not p.name.startswith(".") and (p / VERDICTS_FILE).exists())


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
            ignore = {"chapters": (".running", "failed", "*.lock"),       # what did not finish
                      "downloads": ("notebooks", VERDICTS_FILE)}[name]     # copies that write_pages makes again
            shutil.copytree(src, staging / name, ignore=shutil.ignore_patterns(*ignore))
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


def _git_show(commit: str, path: str, repo: Path) -> str | None:
    """`path` as it was at `commit` ('' when it did not exist there); None when git cannot say."""
    try:
        p = subprocess.run(["git", "-C", str(repo), "cat-file", "-e", f"{commit}^{{commit}}"],
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            return None
        p = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{path}"], capture_output=True, text=True,
                           timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout if p.returncode == 0 else ""


def _yaml(text: str | None) -> dict:
    import yaml
    try:
        data = yaml.safe_load(text or "") or {}
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


ENTITY_PREFIXES = ("et_", "arith_", "lora_")      # study parameters that only chapters 9-10 read
ENTITY_CHAPTERS = ("09", "10")


def _profile_changes(old: dict, new: dict, chapter: str) -> list[str]:
    """The profile's parameters that changed between `old` and `new` and that `chapter` reads: its
    own parameters (the profile's values and its per-chapter values), and the study's (the
    entity-tracking ones, ``et_*``, ``arith_*``, ``lora_*``, for chapters 9-10 only)."""
    from helpers.book.chapters import chapter_parameters, chapter_path
    from helpers.config.parameters import RUNTIME_PARAMETERS, STUDY_PARAMETERS
    name = chapter_path(chapter).stem
    own = set(chapter_parameters(name)) - {"profile", "study_overrides", *RUNTIME_PARAMETERS}
    def values(data):
        out = dict(data.get("parameters") or {})
        for ch, vals in (data.get("chapters") or {}).items():
            if chapter_path(str(ch)).stem == name:
                out.update(vals or {})
        return out
    a, b = values(old), values(new)
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    entity = chapter[:2] in ENTITY_CHAPTERS
    return [k for k in changed if k in own or (k in STUDY_PARAMETERS and (entity or not k.startswith(ENTITY_PREFIXES)))]


def _claims_changes(old: dict, new: dict, chapter: str) -> list[str]:
    """What changed in ``claims.yaml`` that `chapter`'s verdicts read: the policy, the gates, or one
    of its own claims."""
    out = [k for k in ("policy", "gates") if old.get(k) != new.get(k)]
    def mine(data):
        return {c.get("id"): c for c in data.get("claims") or [] if str(c.get("chapter")) == chapter[:2]}
    a, b = mine(old), mine(new)
    out += [f"claim {k}" for k in sorted(set(a) | set(b), key=str) if a.get(k) != b.get(k)]
    return out


def stale_chapters(folder: Path, repo: Path = REPO) -> dict[str, str]:
    """The chapters of the executed build in `folder` that may no longer be what their code would
    print, each with why: since the commit that executed it, its file (``chapters/<name>.py``)
    changed, or a parameter of its profile that it reads (:func:`_profile_changes`), or what its
    verdicts read in ``claims.yaml`` (the policy, the gates, its claims; comments do not count); or
    that commit is unknown, was not clean (``+dirty``) or is not in this checkout's history (then it
    cannot be checked, and says so).  Changes to the library (``src/``) are not counted: every
    chapter reads it, and the library's tests pin it."""
    data = _read(folder / VERDICTS_FILE)             # damaged: one line naming the file
    profile = data.get("profile", "quick")
    now_profile = _yaml((repo / "profiles" / f"{profile}.yaml").read_text()
                        if (repo / "profiles" / f"{profile}.yaml").exists() else "")
    now_claims = _yaml((repo / "claims.yaml").read_text() if (repo / "claims.yaml").exists() else "")
    out = {}
    for chapter, rec in sorted((data.get("chapters") or {}).items()):
        commit = str(rec.get("commit") or "")
        if not commit:
            out[chapter] = "executed by an unknown commit: cannot be checked"
            continue
        if commit.endswith("+dirty"):
            out[chapter] = f"executed from uncommitted changes on {commit[:-6]}: cannot be checked"
            continue
        then_file = _git_show(commit, f"chapters/{chapter}.py", repo)
        if then_file is None:
            out[chapter] = f"executed by commit {commit}, which this checkout does not have: cannot be checked"
            continue
        why = []
        now_file = (repo / "chapters" / f"{chapter}.py")
        if not now_file.exists() or now_file.read_text() != then_file:
            why.append(f"its code (chapters/{chapter}.py)")
        params = _profile_changes(_yaml(_git_show(commit, f"profiles/{profile}.yaml", repo)), now_profile, chapter)
        if params:
            why.append(f"its parameters in profiles/{profile}.yaml ({', '.join(params)})")
        claims_changed = _claims_changes(_yaml(_git_show(commit, "claims.yaml", repo)), now_claims, chapter)
        if claims_changed:
            why.append(f"claims.yaml ({', '.join(claims_changed)})")
        if why:
            out[chapter] = f"changed since commit {commit}, which executed it: " + "; ".join(why)
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
