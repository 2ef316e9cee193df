"""The scorecard: every claim of ``claims.yaml`` with its verdict in each profile built here.

Each chapter ends with ``show_verdicts(study, "NN", verdicts)``: the chapter's
:class:`~helpers.claims.verdict.Verdict` objects are merged into ``<build>/verdicts.json``
(replacing that chapter's earlier entries only, written atomically) and shown as Markdown.  From
these files, never typed by hand, come

* :func:`scorecard_table`: one row per (claim, model), one column per build;
* the book's scorecard page (``scorecard.qmd``, first after the preface), written into the build
  folder by the runner (:func:`write_scorecard_page`);
* ``python -m helpers verdicts --profile P`` (text, ``--markdown``, or ``--readme``: the README's
  findings table between ``<!-- findings:start -->`` and ``<!-- findings:end -->``).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Iterable, Sequence

from helpers.claims.verdict import Verdict, claim, claims
from helpers.core.artifacts import atomic_write_text
from helpers.core.errors import MissingBuild, ParameterError
from helpers.core.paths import REPO

VERDICTS_FILE = "verdicts.json"
PAGE_FILE = "scorecard.qmd"
BUILD_ENV = "BOOK_CHAPTER_BUILD"       # set by the runner for a chapter's kernel: the build folder
STAGING_ENV = "BOOK_VERDICTS_STAGING"  # set by the runner: the file a chapter's verdicts are staged in
README_START, README_END = "<!-- findings:start -->", "<!-- findings:end -->"
NOT_RUN = "not run"
PROFILE_ORDER = ("quick", "full", "paper", "smoke")


# ---- writing: the chapters ----------------------------------------------------------------------

def git_commit(repo: Path = REPO) -> str | None:
    """``git rev-parse --short HEAD`` of `repo`, plus ``+dirty`` when its work tree differs from
    it (tracked changes or untracked files that git does not ignore); None outside a git checkout."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=30)
        if head.returncode != 0:
            return None
        status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = head.stdout.strip()
    return commit + ("+dirty" if status.returncode != 0 or status.stdout.strip() else "")


def _kernel_parameters(chapter: str) -> dict[str, Any]:
    """The values of the chapter's parameters in the running IPython kernel's namespace (papermill
    injects them there), or {} outside IPython."""
    try:
        from IPython import get_ipython
        ip = get_ipython()
    except ImportError:
        return {}
    if ip is None:
        return {}
    from helpers.book.chapters import chapter_parameters
    names = [k for k in chapter_parameters(chapter) if k not in ("profile", "study_overrides")]
    return {k: ip.user_ns[k] for k in names if k in ip.user_ns}


def chapter_overrides(study, chapter: str | None = None, **params) -> dict[str, Any]:
    """The study's overrides plus the chapter's own parameters that differ from the profile's
    values: those in `params`, or without them, their values in the running kernel."""
    overrides = dict(study.overrides)
    if chapter is not None and not params:
        params = _kernel_parameters(chapter)
    if params and chapter is not None:
        from helpers.book.runner import resolve_parameters
        defaults = resolve_parameters(chapter, study.profile)
        from helpers.config.parameters import RUNTIME_PARAMETERS
        overrides.update({k: v for k, v in params.items()
                          if k not in ("profile", "study_overrides", *RUNTIME_PARAMETERS)
                          and defaults.get(k, object()) != v})
    return overrides


def chapter_build_dir(study, chapter: str | None = None, **params) -> Path:
    """Where a chapter's results go: the folder the runner executes it for (``$BOOK_CHAPTER_BUILD``,
    set for the kernel), else (plain Jupyter, papermill by hand) the build folder of the study's
    profile and :func:`chapter_overrides` (as ``python -m helpers run`` names the folder)."""
    from helpers.book.runner import build_dir
    env = os.environ.get(BUILD_ENV)
    if env:
        return Path(env)
    return build_dir(study.profile, chapter_overrides(study, chapter, **params))


def _chapter_name(chapter: str) -> str:
    from helpers.book.chapters import chapter_path
    return chapter_path(str(chapter)).stem


def _as_list(verdicts) -> list[Verdict]:
    if isinstance(verdicts, Verdict):
        verdicts = [verdicts]
    elif isinstance(verdicts, dict):
        verdicts = list(verdicts.values())
    out = list(verdicts)
    for v in out:
        if not isinstance(v, Verdict):
            raise ParameterError(f"show_verdicts takes Verdict objects (helpers.claims.verdict.verdict), "
                                 f"found {type(v).__name__}: {v!r}")
    return out


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on ``<path>.lock`` while a read-merge-write of `path` runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:                        # not POSIX: no lock (chapters run one at a time)
        yield
        return
    with open(path.with_name(path.name + ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def verdict_entries(chapter: str, verdicts: Iterable[Verdict]) -> list[dict]:
    """The entries of ``verdicts.json`` for `chapter`'s verdicts, dated now, with the commit."""
    now = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    commit = git_commit()
    return [{**v.to_dict(), "chapter": chapter, "anchor": claim(v.claim).anchor, "date": now, "commit": commit}
            for v in _as_list(verdicts)]


def record_verdicts(folder: Path, chapter: str, verdicts: Iterable[Verdict], profile: str,
                    overrides: dict[str, Any] | None = None) -> Path:
    """Merge `chapter`'s verdicts into ``<folder>/verdicts.json``: that chapter's earlier entries
    are replaced, every other chapter's kept; written atomically.  Returns the file."""
    return merge_entries(folder, chapter, verdict_entries(chapter, verdicts), profile, overrides)


def stage_verdicts(path: Path, chapter: str, verdicts: Iterable[Verdict], profile: str,
                   overrides: dict[str, Any] | None = None) -> Path:
    """Write `chapter`'s verdicts to the staging file `path` (atomically) instead of the build's
    ``verdicts.json``: the runner merges them (:func:`commit_staged`) only when the chapter
    finished, so an interrupted chapter never leaves new verdicts beside its earlier notebook."""
    staged = {"chapter": chapter, "profile": profile, "overrides": dict(overrides or {}),
              "entries": verdict_entries(chapter, verdicts)}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(path), json.dumps(staged, indent=1, allow_nan=False) + "\n")
    return Path(path)


def commit_staged(path: Path, folder: Path) -> Path | None:
    """Merge the verdicts staged in `path` (:func:`stage_verdicts`) into the build `folder`'s
    ``verdicts.json`` and remove the staging file; None when nothing was staged."""
    path = Path(path)
    if not path.exists():
        return None
    staged = _read(path)
    out = merge_entries(folder, staged["chapter"], staged["entries"], staged["profile"], staged["overrides"])
    path.unlink()
    return out


def merge_entries(folder: Path, chapter: str, new: list[dict], profile: str,
                  overrides: dict[str, Any] | None = None) -> Path:
    """Merge the entries `new` of `chapter` into ``<folder>/verdicts.json`` (that chapter's earlier
    entries replaced, every other chapter's kept; written atomically, under a lock)."""
    path = Path(folder) / VERDICTS_FILE
    now = new[0]["date"] if new else _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    commit = new[0]["commit"] if new else git_commit()
    with _locked(path):
        data = _read(path) if path.exists() else {}
        entries = [e for e in data.get("entries", []) if e.get("chapter") != chapter] + new
        order = {cid: i for i, cid in enumerate(claims())}
        entries.sort(key=lambda e: (order.get(e["claim"], len(order)), e.get("chapter", "")))
        ran = dict(data.get("chapters") or {})
        ran[chapter] = {"date": now, "commit": commit, "overrides": dict(overrides or {}), "n_verdicts": len(new)}
        out = {"profile": profile, "overrides": dict(overrides or {}), "commit": commit, "date": now,
               "chapters": dict(sorted(ran.items())), "entries": entries}
        atomic_write_text(path, json.dumps(out, indent=1, allow_nan=False) + "\n")
    return path


def show_verdicts(study, chapter: str, verdicts: Sequence[Verdict], **params):
    """The last cell of a chapter: record its verdicts in the build's ``verdicts.json`` (for the
    scorecard) and return them as Markdown (each :meth:`Verdict.markdown`, blank lines between).

    `chapter` is the chapter's name or number (``"03"``); `verdicts` a list of Verdicts (a dict's
    values and a single Verdict are accepted too).  Under the runner the results are staged and go
    to the build it executes the chapter for when the chapter finished (:func:`commit_staged`).
    Outside it (plain Jupyter, papermill by hand) they go to the
    build of the study's profile and overrides, beside it when the chapter's own parameters differ
    from the profile's (read from the kernel, or given as `params`), as ``python -m helpers run``
    writes the chapter, never over the profile's build."""
    from IPython.display import Markdown
    verdicts = _as_list(verdicts)
    name = _chapter_name(chapter)
    staging = os.environ.get(STAGING_ENV)
    if staging:                                 # under the runner: merged when the chapter finished
        stage_verdicts(Path(staging), name, verdicts, study.profile, chapter_overrides(study, name, **params))
    else:
        folder = chapter_build_dir(study, name, **params)
        record_verdicts(folder, name, verdicts, study.profile, chapter_overrides(study, name, **params))
    return Markdown("\n\n".join(v.markdown() for v in verdicts) or "*No verdicts in this chapter.*")


# ---- reading -------------------------------------------------------------------------------------

ENTRY_KEYS = ("claim", "model", "status", "chapter")     # what every recorded verdict has


def _read(path: Path) -> dict:
    """A ``verdicts.json`` (or a staged chapter's verdicts), checked for the shape the book writes:
    a mapping whose ``entries`` are mappings with :data:`ENTRY_KEYS`.  A file that is not JSON or
    not of that shape (truncated, edited) raises :class:`MissingBuild` naming it."""
    def damaged(why: str):
        return MissingBuild(f"{path} is damaged ({why}); delete it and run the chapters again")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise damaged(f"not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise damaged(f"a {type(data).__name__}, not a mapping")
    entries = data.get("entries", [])
    if not isinstance(entries, list):
        raise damaged("'entries' is not a list")
    for i, e in enumerate(entries):
        missing = [k for k in ENTRY_KEYS if not isinstance(e, dict) or k not in e]
        if missing:
            raise damaged(f"entry {i} lacks {', '.join(missing)}")
    if not isinstance(data.get("chapters", {}), dict):
        raise damaged("'chapters' is not a mapping")
    return data


def _build_root() -> Path:
    from helpers.book.runner import build_dir
    return build_dir("x").parent


def resolve_build(build: str | os.PathLike) -> Path:
    """A build folder from a profile name or build-folder name (``quick``, ``quick+seeds=0,1``:
    under ``$BOOK_BUILD_DIR``, default ``_build``) or a path."""
    if isinstance(build, Path) or os.sep in str(build):
        return Path(build)
    return _build_root() / str(build)


def build_command(build: Path) -> str:
    """The command that (re)builds a build folder's verdicts."""
    name = build.name
    profile = name.split("+")[0]
    if "+" in name:
        return (f"python -m helpers run NN --profile {profile} -p NAME VALUE (each chapter, with the "
                f"overrides that folder is named after)")
    return f"python -m helpers book --profile {profile}"


def load_verdicts(build: str | os.PathLike) -> dict:
    """The ``verdicts.json`` of a build (profile name, build-folder name or path): ``profile``,
    ``overrides``, ``commit``, ``date``, ``chapters`` and ``entries``.  Raises
    :class:`MissingBuild`, naming the command that builds it, when there is none."""
    folder = resolve_build(build)
    path = folder / VERDICTS_FILE
    if not path.exists() and folder.parent.resolve() != _build_root().resolve():
        raise MissingBuild(f"{folder} is not a build folder (it holds no {VERDICTS_FILE}); give a profile, a build "
                           f"folder under {_build_root()}, or the path of one")
    if not path.exists():
        what = "has not been built here" if not folder.exists() else "has no recorded verdicts"
        raise MissingBuild(f"{folder.name} {what} ({path} does not exist): build it with "
                           f"`{build_command(folder)}`")
    return _read(path)


def built_profiles(root: Path | None = None) -> list[Path]:
    """The build folders of whole profiles (no overrides) that have recorded verdicts."""
    root = _build_root() if root is None else Path(root)
    found = [p for p in root.glob("*") if p.is_dir() and "+" not in p.name and (p / VERDICTS_FILE).exists()]
    return sorted(found, key=_profile_key)


def _profile_key(p: Path):
    return (PROFILE_ORDER.index(p.name) if p.name in PROFILE_ORDER else len(PROFILE_ORDER), p.name)


def default_builds(build: str | os.PathLike) -> list[Path]:
    """`build` first, then every other whole profile built under the same folder."""
    first = resolve_build(build)
    return [first] + [p for p in built_profiles(first.parent) if p.resolve() != first.resolve()]


# ---- the table -----------------------------------------------------------------------------------

def short_words(text: str, limit: int = 90) -> str:
    """A claim's words, cut at a word boundary to at most `limit` characters."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " …"


def _num(x) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def gate_short(gate: str) -> str:
    return gate.split(":")[0].strip()


def seeds_text(n: int) -> str:
    """How many training runs per arm a verdict rests on: "one seed", "3 seeds"."""
    return "one seed" if int(n) == 1 else f"{int(n)} seeds"


def verdict_cell(entry: dict | None, markdown: bool = False) -> str:
    """One build's verdict on one (claim, model): status (the gate that made it inconclusive),
    statistic with its interval; ``not run`` without an entry."""
    if entry is None:
        return NOT_RUN
    status = entry["status"]
    b = "**" if markdown else ""
    text = f"{b}{status}{b}"
    if entry.get("gate"):
        text = f"{b}inconclusive{b} (gate failed: {gate_short(entry['gate'])})"
    if entry.get("seeds"):
        text += f" ({seeds_text(entry['seeds'])})"
    if entry.get("robust"):
        text += f" [{entry['robust']}]"
    value, lo, hi = _num(entry.get("value")), _num(entry.get("lo")), _num(entry.get("hi"))
    if value is not None:
        text += f"; {entry.get('statistic') or 'effect'} {value:+.3f}"
        if lo is not None and hi is not None:
            text += f" [{lo:+.3f}, {hi:+.3f}]"
    return text


def failed_chapters(folder: Path) -> list[str]:
    """The chapters of the build `folder` whose last execution did not finish (their interrupted
    notebooks are in ``chapters/failed/``; the runner clears one when the chapter next finishes)."""
    return sorted(p.stem for p in (Path(folder) / "chapters" / "failed").glob("*.ipynb"))


def build_info(folder: Path) -> dict:
    """What a build folder's ``verdicts.json`` says of it: name, path, profile, overrides, whether
    anything was recorded, the dates and commits of its chapters, the chapters and the entries."""
    path = folder / VERDICTS_FILE
    data = _read(path) if path.exists() else {}
    ran = data.get("chapters") or {}
    dates = sorted({str(r.get("date", ""))[:10] for r in ran.values() if r.get("date")})
    commits = sorted({str(r.get("commit")) for r in ran.values() if r.get("commit")})
    return {"name": folder.name, "path": str(folder), "profile": data.get("profile", folder.name.split("+")[0]),
            "overrides": data.get("overrides", {}), "recorded": bool(data),
            "date": " to ".join(dict.fromkeys([dates[0], dates[-1]])) if dates else None,
            "commit": ", ".join(commits) if commits else None,
            "chapters": sorted(ran), "entries": data.get("entries", []), "failed": failed_chapters(folder)}


def scorecard_table(builds: Sequence[str | os.PathLike] | None = None, markdown: bool = False):
    """One row per (claim, model), every claim of ``claims.yaml`` in file order: ``claim``,
    ``paper``, ``chapter``, ``anchor``, ``claim words`` (short), ``model``, then one column per
    build (named after its folder: ``quick``, ``smoke``, ...) with the status, the gate that failed
    and the statistic with its interval, or ``not run``.

    `builds` are profile names, build-folder names or paths (default: every whole profile built
    here); a build without recorded verdicts shows ``not run`` throughout.  The builds' profile,
    date, commit and chapters are in ``table.attrs["builds"]``."""
    import pandas as pd
    folders = [resolve_build(b) for b in builds] if builds is not None else built_profiles()
    infos = [build_info(f) for f in folders]
    rows = []
    for c in claims().values():
        seen: dict[str, None] = {}
        for info in infos:
            for e in info["entries"]:
                if e["claim"] == c.id:
                    seen.setdefault(e["model"])
        # the models judged anywhere, and each model of the claim that none of them names ("not run")
        models = list(seen) + [m for m in c.models if not any(re.search(rf"(?<![\w-]){re.escape(m)}(?![\w-])", s)
                                                               for s in seen)]
        models.sort(key=lambda m: c.models.index(m) if m in c.models else len(c.models))
        for m in models:
            row = {"claim": c.id, "paper": c.paper, "chapter": c.chapter, "anchor": c.anchor,
                   "claim words": short_words(c.words), "model": m}
            for info in infos:
                entry = next((e for e in info["entries"] if e["claim"] == c.id and e["model"] == m), None)
                row[info["name"]] = verdict_cell(entry, markdown=markdown)
            rows.append(row)
    table = pd.DataFrame(rows, columns=["claim", "paper", "chapter", "anchor", "claim words", "model",
                                        *[i["name"] for i in infos]])
    table.attrs["builds"] = [{k: v for k, v in i.items() if k != "entries"} for i in infos]
    return table


# ---- Markdown: the page, the README, the terminal ------------------------------------------------

def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def pipe_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def build_legend(info: dict) -> str:
    """``quick``: profile, overrides, date, commit, chapters recorded."""
    failed = (f"; **did not finish at its last execution** (the page shows the execution before, if any; the "
              f"interrupted notebook is in `chapters/failed/`): {', '.join(info['failed'])}" if info.get("failed") else "")
    if not info["recorded"]:
        return f"`{info['name']}`: no verdicts recorded in this build yet{failed}"
    over = (", overrides " + ", ".join(f"{k} = `{v}`" for k, v in info["overrides"].items())
            if info["overrides"] else "")
    return (f"`{info['name']}`: profile `{info['profile']}`{over}, chapters executed {info['date']} at "
            f"commit `{info['commit'] or 'unknown (not a git checkout)'}`; chapters recorded: "
            + ", ".join(info["chapters"]) + failed)


def executed_anchors(folder: Path) -> dict[str, str]:
    """``{anchor: chapter}`` for every section anchor (``{#sec-...}``) of the chapters executed in
    `folder` (``chapters/*.ipynb``): the only targets a cross-reference of its page may name."""
    import nbformat
    out = {}
    for nb_path in sorted((Path(folder) / "chapters").glob("*.ipynb")):
        try:
            nb = nbformat.read(nb_path, as_version=4)
        except Exception:                                    # a half-written notebook: no target
            continue
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                for anchor in re.findall(r"\{#(sec-[A-Za-z0-9_-]+)[^}]*\}", cell.source):
                    out.setdefault(anchor, nb_path.stem)
    return out


def scorecard_page(folder: str | os.PathLike, builds: Sequence[str | os.PathLike] | None = None,
                   links: str = "quarto") -> str:
    """The scorecard page of the build in `folder` (Quarto Markdown): this build's column first,
    then every other whole profile built here.  A claim's chapter is a cross-reference
    (``@sec-...``) only when that chapter was executed in this build; ``links="html"`` links the
    static preview's pages instead."""
    folder = Path(folder)
    builds = default_builds(folder) if builds is None else builds
    table = scorecard_table(builds, markdown=True)
    anchors = executed_anchors(folder)
    names = [b["name"] for b in table.attrs["builds"]]

    def where(row) -> str:
        if row["anchor"] in anchors:
            if links == "html":
                return f"[ch. {row['chapter']}]({anchors[row['anchor']]}.html)"
            return f"@{row['anchor']}"
        return f"ch. {row['chapter']} (not in this build)"

    rows = [[f"`{r['claim']}` ({r['paper']}): {r['claim words']}", where(r), r["model"],
             *[r[n] for n in names]] for _, r in table.iterrows()]
    legend = "\n".join(f"- {build_legend(b)}" for b in table.attrs["builds"])
    title = "# Scorecard {#sec-scorecard .unnumbered}" if links == "quarto" else "# Scorecard"
    return f"""{title}

Every claim of the two papers that this book tests (written down in `claims.yaml` before the
numbers), with its verdict in each profile built on this machine. One row per claim and model; one column per build. A verdict
is **replicated** when the statistic's interval excludes no effect and the estimate is at least the
claim's material effect, **not replicated** when the interval excludes a material effect, and
**inconclusive** otherwise; a verdict whose model failed a **gate** (it does not solve the task, or
its training did not converge) is inconclusive and names the gate. Each cell gives the statistic
(the effect in the claimed direction) and its interval in brackets; **not run** means that the
chapter has not recorded a verdict in that build. The chapter column leads to the section where
the claim is tested, with its criterion, figures and evidence. The table is generated from the
chapters' results (`verdicts.json` of each build), never typed.

{pipe_table(["claim", "chapter", "model", *names], rows)}

Columns:

{legend}

{calibration_section()}"""


CALIBRATION_DOC = REPO / "docs" / "calibration.md"


def calibration_section() -> str:
    """The scorecard page's account of how each rule was calibrated: the table of
    ``docs/calibration.md`` (``python -m helpers calibrate``), or a sentence naming the command
    when it has not been written."""
    head = "## How each rule was calibrated {.unnumbered}\n\n"
    if not CALIBRATION_DOC.exists():
        return head + ("The calibration table has not been written here: `python -m helpers calibrate` writes it "
                       "(`docs/calibration.md`).\n")
    body = CALIBRATION_DOC.read_text().split("\n", 1)[1].lstrip()       # without its title
    return head + body


def readme_findings(build: str | os.PathLike) -> str:
    """The README's findings section body for one build: what produced it and one row per
    (claim, model)."""
    data = load_verdicts(build)                       # raises MissingBuild with the command
    folder = resolve_build(build)
    table = scorecard_table([folder], markdown=True)
    info = table.attrs["builds"][0]
    rows = [[f"`{r['claim']}`", r["claim words"], f"{r['chapter']}", r["model"], r[info["name"]]]
            for _, r in table.iterrows()]
    over = f" with overrides {data.get('overrides')}" if data.get("overrides") else ""
    return (f"{tally_sentence(table[info['name']], folder.name)}\n\n"
            f"<details><summary>Every claim's verdict, one row per (claim, model): generated by "
            f"<code>python -m helpers verdicts --profile {folder.name} --readme</code> from the "
            f"<code>{folder.name}</code> build (profile <code>{info['profile']}</code>{over}; chapters executed "
            f"{info['date']}, commit <code>{info['commit'] or 'unknown'}</code>); do not edit by hand</summary>"
            f"\n\nStatistic and interval in brackets; the chapters give the criteria.\n\n"
            + pipe_table(["claim", "in the paper's words", "chapter", "model", "verdict"], rows)
            + "\n\n</details>")


STATUSES = ("replicated", "not replicated", "inconclusive")


def tally_sentence(cells, build_name: str) -> str:
    """One sentence counting a build's verdicts by status, from the scorecard's cells of that build
    (each starts with the status in bold, or says "not run")."""
    counts = {k: 0 for k in (*STATUSES, "not run")}
    for cell in cells:
        m = re.match(r"\*\*(not replicated|replicated|inconclusive)\*\*", str(cell))
        counts[m.group(1) if m else "not run"] += 1
    parts = [f"{counts[k]} {k}" for k in (*STATUSES, "not run") if counts[k]]
    return (f"**The `{build_name}` build: {', '.join(parts)}** (of {sum(counts.values())} verdicts, one per claim "
            f"and model; \"not run\": a model this profile does not train). Every verdict is in the table below "
            f"and on the book's scorecard page; [how a verdict is decided](docs/verdicts.md) and "
            f"[calibrated](docs/calibration.md); [what the chapters found, in prose](docs/findings.md).")


def rewrite_readme(path: str | os.PathLike, body: str) -> Path:
    """Replace what lies between the findings markers of `path` by `body`; nothing else changes."""
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"--readme {path}: no such file (give a Markdown file that holds the markers "
                             f"{README_START} and {README_END})")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ParameterError(f"--readme {path} is not a text file") from None
    if text.count(README_START) != 1 or text.count(README_END) != 1 or text.index(README_START) > text.index(README_END):
        raise ParameterError(f"{path} must hold the markers {README_START} and {README_END} once each, in "
                             "this order, around its findings table")
    head, rest = text.split(README_START)
    _, tail = rest.split(README_END)
    atomic_write_text(path, f"{head}{README_START}\n{body.strip()}\n{README_END}{tail}")
    return path


def scorecard_text(builds: Sequence[str | os.PathLike]) -> str:
    """The scorecard for a terminal: the builds, then per claim its words and one line per model
    and build."""
    table = scorecard_table(builds)
    infos = table.attrs["builds"]
    lines = ["builds:"] + [f"  {build_legend(b).replace('`', '')}" for b in infos]
    w = max([len(b["name"]) for b in infos] or [0])
    for cid, group in table.groupby("claim", sort=False):
        first = group.iloc[0]
        lines.append(f"\n{cid} ({first['paper']}, chapter {first['chapter']}): {first['claim words']}")
        for _, r in group.iterrows():
            lines.append(f"  {r['model']}")
            lines += [f"    {b['name']:<{w}}  {r[b['name']]}" for b in infos]
    return "\n".join(lines)


def write_scorecard_page(folder: str | os.PathLike) -> Path:
    """Write ``scorecard.qmd`` into the build `folder` (after its chapters were executed)."""
    path = Path(folder) / PAGE_FILE
    atomic_write_text(path, scorecard_page(folder))
    return path
