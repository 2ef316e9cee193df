"""The book's generated pages and downloads, written into a build folder after its chapters ran.

The repository holds the pages' prose (``index.qmd``, ``conclusion.qmd``, ``teaching.qmd``,
``references.qmd``); each may hold a marker line that :func:`write_pages` replaces by what this
build measured:

* ``<!-- build:findings -->`` (the landing page): what the build found, claim by claim, from its
  ``verdicts.json``; which profile, models, date and commit produced the pages; how to rebuild them.
* ``<!-- build:claims -->`` (the closing chapter): every claim of ``claims.yaml`` in the paper's
  words beside this build's verdict and statistic.
* ``<!-- build:teaching -->`` (the teacher's page): each chapter's exercises and the time this
  build took to execute the chapter (its ``timings.json``), with whether it shows the solutions.
* ``<!-- build:robustness -->`` (the closing chapter): which verdicts hold under the alternative
  ablations and metrics their chapters computed, and which depend on the method.

:func:`write_pages` also fills ``downloads/``: each executed chapter notebook
(``downloads/notebooks/NN_name.ipynb``), the chapters' results tables (written by
:func:`helpers.book.downloads.save_tables` while they run) and ``verdicts.json``. Both renderers
(Quarto, the static preview) copy that folder beside the pages, so the links work in either.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from helpers.book.scorecard import (VERDICTS_FILE, build_info, build_command, executed_anchors,
                                    pipe_table, short_words, verdict_cell)
from helpers.claims.verdict import claims
from helpers.core.artifacts import atomic_write_text
from helpers.core.errors import BookError
from helpers.core.paths import REPO

FINDINGS_MARKER = "<!-- build:findings -->"
CLAIMS_MARKER = "<!-- build:claims -->"
TEACHING_MARKER = "<!-- build:teaching -->"
ROBUSTNESS_MARKER = "<!-- build:robustness -->"
PAGES = ("index.qmd", "conclusion.qmd", "teaching.qmd", "references.qmd")
DOWNLOADS = "downloads"
STATUSES = ("replicated", "not replicated", "inconclusive")
STALE_FILE = "stale.json"      # in a copy of the carried build (helpers.book.published): its stale chapters


# ---- what produced the build ------------------------------------------------------------------

def build_facts(folder: str | Path) -> dict[str, Any]:
    """Profile, overrides, model sources, profile description, dates, commit and the command that
    rebuilds the build in `folder` (from its ``verdicts.json`` and its profile)."""
    from helpers.config.parameters import STUDY_PARAMETERS
    from helpers.config.profiles import load_profile
    from helpers.models.sources import TINY, base_of
    from helpers.study import Study
    folder = Path(folder)
    info = build_info(folder)
    profile = info["profile"]
    facts: dict[str, Any] = {"profile": profile, "overrides": info["overrides"], "date": info["date"],
                             "commit": info["commit"], "chapters": info["chapters"],
                             "command": build_command(folder), "entries": info["entries"]}
    try:
        description = " ".join(str(load_profile(profile).get("description", "")).split())
        study = Study.from_profile(profile, **{k: v for k, v in info["overrides"].items() if k in STUDY_PARAMETERS})
        facts["models"] = {"pretrained": study.pretrained_source, "scratch": study.scratch_source}
    except BookError as e:                  # an unknown profile (a renamed one): say so, don't guess
        description = f"(profile {profile!r} could not be read here: {e})"
        facts["models"] = {}
    facts["description"] = description
    facts["tiny"] = any(base_of(str(s)) in TINY for s in facts["models"].values())
    return facts


def _status(entry: dict) -> str:
    return "inconclusive" if entry.get("gate") else entry["status"]


def _gate_words(gate: str) -> str:
    """A failed gate in a few words: its text up to the first colon, without the details in brackets."""
    return re.sub(r"\s*\(.*$", "", gate.split(":")[0]).strip()


def _where(chapter: str, anchor: str, anchors: dict[str, str]) -> str:
    return f"@{anchor}" if anchor in anchors else f"chapter {chapter} (not in this build)"


def findings_markdown(folder: str | Path) -> str:
    """The landing page's block: what the build found (counts, then one line per claim and model)
    and the facts of the build, with the rebuild command."""
    folder = Path(folder)
    facts = build_facts(folder)
    anchors = executed_anchors(folder)
    entries = facts["entries"]
    lines = ["## What this build found {.unnumbered}", ""]
    if facts["tiny"]:
        lines += ["::: {.callout-warning}",
                  f"This build used the `{facts['profile']}` profile, whose models are tiny random networks: "
                  "its verdicts test the book's machinery and say nothing about the papers' claims.", ":::", ""]
    if not entries:
        lines += ["No chapter of this build has recorded a verdict yet.", ""]
    else:
        counts = {s: sum(_status(e) == s for e in entries) for s in STATUSES}
        gated = sum(bool(e.get("gate")) for e in entries)
        lines += [f"Of the {len(entries)} verdicts this build recorded (claim x model), "
                  f"**{counts['replicated']} replicated**, **{counts['not replicated']} not replicated** and "
                  f"**{counts['inconclusive']} inconclusive**"
                  + (f" ({gated} of them because a model failed a gate)" if gated else "")
                  + ". The [scorecard](scorecard.qmd) gives each statistic with its interval; the chapters give "
                    "the criteria and the evidence.", ""]
        by_claim = claims()
        for e in entries:
            c = by_claim.get(e["claim"])
            words = short_words(c.words, 110) if c else e["claim"]
            where = _where(c.chapter, c.anchor, anchors) if c else e.get("chapter", "")
            gate = f" (gate failed: {_gate_words(e['gate'])})" if e.get("gate") else ""
            lines.append(f"- **{_status(e)}**{gate}: {words} *({e['model']}; {where})*")
        lines.append("")
    models = ", ".join(f"{k} `{v}`" for k, v in facts["models"].items()) or "unknown"
    over = ", ".join(f"{k} = `{v}`" for k, v in facts["overrides"].items()) or "none"
    rows = [["profile", f"`{facts['profile']}`: {facts['description']}"],
            ["overrides of the profile", over],
            ["models", models],
            ["chapters executed", f"{facts['date'] or 'not recorded'} ({len(facts['chapters'])} chapters)"],
            ["commit", f"`{facts['commit']}`" if facts["commit"] else "unknown (not a git checkout)"],
            ["rebuild", f"`{facts['command']}` (or `make book PROFILE={facts['profile']}`)"]]
    stale_path = folder / STALE_FILE
    if stale_path.exists():
        import json
        stale = json.loads(stale_path.read_text())
        rows.append(["carried build", "rendered from the executed build the repository carries (`published/`), "
                     "without running a kernel; "
                     + ("chapters executed before their latest change (marked on their pages): "
                        + "; ".join(f"{c}: {w}" for c, w in stale.items())
                        if stale else "every chapter's code and parameters are as they were when it was executed")])
    lines += ["## This build {.unnumbered}", "", pipe_table(["", ""], rows), "",
              "The runs are cached by their configuration (`data/runs/`): rebuilding re-executes the "
              "chapters and trains only what is missing. Each chapter page links its executed notebook "
              "and its results tables; the scorecard links every verdict as JSON.", ""]
    return "\n".join(lines)


def claims_markdown(folder: str | Path) -> str:
    """The closing chapter's table: each claim in the paper's words beside this build's verdict
    (status, statistic and interval) and the section that tests it."""
    folder = Path(folder)
    entries = build_info(folder)["entries"]
    anchors = executed_anchors(folder)
    rows = []
    for c in claims().values():
        mine = [e for e in entries if e["claim"] == c.id]
        found = "<br>".join(f"{e['model']}: {verdict_cell(e, markdown=True)}" for e in mine) or "not run in this build"
        rows.append([f"{c.paper}", " ".join(c.words.split()), found, _where(c.chapter, c.anchor, anchors)])
    return pipe_table(["paper", "the claim, in the paper's words", "what this build found", "tested in"], rows)


def robustness_markdown(folder: str | Path) -> str:
    """The closing chapter's answer to "does a verdict depend on the method?": for every verdict of
    this build computed under alternative ablations or metrics, whether its status held under each
    (from ``verdicts.json``), the claims that depend on the method first."""
    entries = [e for e in build_info(Path(folder))["entries"] if e.get("robustness")]
    if not entries:
        return ("No verdict of this build was computed under an alternative ablation or metric (the chapters that "
                "compute them were not executed).")
    by_claim = claims()
    depends = [e for e in entries if e.get("robust", "").startswith("depends")]
    judged = [e for e in entries if not e.get("gate")]

    def label(e):
        return "**depends on the method**" if e in depends else "robust" if e in judged else "not judged (a gate failed)"
    rows = [[f"`{e['claim']}` ({by_claim[e['claim']].paper if e['claim'] in by_claim else ''})", e["model"],
             _status(e), "<br>".join(f"{m}: {s}" for m, s in e["robustness"]), label(e)]
            for e in sorted(entries, key=lambda e: (e not in depends, e not in judged))]
    head = (f"Of the {len(judged)} judged verdicts of this build that rest on an ablation or a patch, "
            f"**{len(depends)} depend on the method** and {len(judged) - len(depends)} hold under every alternative "
            f"computed" + (f"; {len(entries) - len(judged)} more were not judged (a gate failed)." if len(entries) > len(judged)
                           else "."))
    return head + "\n\n" + pipe_table(["claim", "model", "verdict (the book's method)", "under the alternatives",
                                        ""], rows)


def teaching_markdown(folder: str | Path) -> str:
    """The teacher's page's table: per chapter, its exercises (id and title) and the minutes this
    build took to execute it (``timings.json``; "not run" for a chapter it did not execute), then
    whether this build shows the solutions."""

    import nbformat

    from helpers.book.chapters import chapter_path, list_chapters
    from helpers.exercises import EXERCISES
    folder = Path(folder)
    from helpers.book.timings import read_timings
    timings = read_timings(folder)
    facts = build_info(folder)
    rows = []
    for ch in list_chapters():
        stem = chapter_path(ch).stem
        exercises = "<br>".join(f"`{e.id}` {e.title}" for e in EXERCISES.values() if e.chapter == stem[:2]) or "none"
        seconds = timings.get(stem)
        rows.append([stem, exercises, f"{seconds / 60:.1f}" if seconds is not None else "not run"])
    shown = []
    for nb_path in sorted((folder / "chapters").glob("*.ipynb")):
        params = nbformat.read(nb_path, as_version=4).metadata.get("papermill", {}).get("parameters", {})
        shown.append(params.get("show_solutions", True))
    solutions = ("shows the solutions, folded under each exercise" if all(shown)
                 else "leaves the solutions out (a build for students)")
    return (pipe_table(["chapter", "exercises", f"minutes to execute (profile `{facts['profile']}`)"], rows)
            + f"\n\nThis build {solutions}; it was executed on {facts['date'] or 'an unrecorded date'} "
              f"(`{build_command(folder)}`).")


# ---- writing the pages and the downloads -----------------------------------------------------------

def _fill(text: str, marker: str, body: str) -> str:
    return text.replace(marker, body.strip()) if marker in text else text


def write_pages(folder: str | Path, source: Path = REPO) -> list[Path]:
    """Write the build's pages (``index.qmd``, ``conclusion.qmd``, ``teaching.qmd``, ``references.qmd``, from the
    repository's with their markers filled) and its ``downloads/`` folder.  Returns the pages."""
    folder = Path(folder)
    written = []
    for name in PAGES:
        src = source / name
        if not src.exists():
            continue
        text = src.read_text()
        if FINDINGS_MARKER in text:
            text = _fill(text, FINDINGS_MARKER, findings_markdown(folder))
        if CLAIMS_MARKER in text:
            text = _fill(text, CLAIMS_MARKER, claims_markdown(folder))
        if TEACHING_MARKER in text:
            text = _fill(text, TEACHING_MARKER, teaching_markdown(folder))
        if ROBUSTNESS_MARKER in text:
            text = _fill(text, ROBUSTNESS_MARKER, robustness_markdown(folder))
        atomic_write_text(folder / name, text)
        written.append(folder / name)
    write_downloads(folder)
    return written


def write_downloads(folder: str | Path) -> Path:
    """``<folder>/downloads/``: the executed notebooks and ``verdicts.json`` copied in (the chapters'
    CSV tables are already there)."""
    folder = Path(folder)
    out = folder / DOWNLOADS
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    for nb in sorted((folder / "chapters").glob("*.ipynb")):
        shutil.copyfile(nb, out / "notebooks" / nb.name)
    if (folder / VERDICTS_FILE).exists():
        shutil.copyfile(folder / VERDICTS_FILE, out / VERDICTS_FILE)
    return out


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def strip_widgets(path: str | Path) -> bool:
    """Drop ipywidgets' saved state and views from an executed notebook (in place, atomically):
    in a static page they cannot run, and Quarto would load widget code from a CDN for them.  The
    chapter's kernel-free explorers are plain HTML outputs and stay.  Returns whether it changed."""
    import nbformat
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    changed = nb.metadata.pop("widgets", None) is not None
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        keep = []
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            if WIDGET_VIEW in data:
                changed = True
                continue
            keep.append(o)
        cell.outputs = keep
    if changed:
        atomic_write_text(path, nbformat.writes(nb))
    return changed
