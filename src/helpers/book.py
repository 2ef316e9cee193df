"""The book runner: profiles -> executed chapters (papermill) -> site (Quarto, or a preview).

``make book PROFILE=quick`` calls :func:`build_book`: every chapter's parameters are resolved
and checked first (an unknown profile, chapter, parameter or bad value stops before any compute),
then each chapter is executed by papermill into ``_build/<profile>/chapters/``, and the executed
notebooks are rendered by ``quarto render`` **without re-executing** them (``execute: enabled:
false`` in ``_quarto.yml``).  Without Quarto on PATH a static HTML preview of the same executed
chapters is written with nbconvert, and the runner says that the full book needs Quarto.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from .parameters import SPECS, check_relations, check_value
from .paths import REPO

CHAPTERS_DIR = REPO / "chapters"
PROFILES_DIR = REPO / "profiles"
BOOK_FILES = ("_quarto.yml", "index.qmd", "references.bib")


# ---- discovery ----------------------------------------------------------------------------------

def list_chapters() -> list[str]:
    return sorted(p.stem for p in CHAPTERS_DIR.glob("[0-9]*.ipynb"))


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def chapter_path(chapter: str) -> Path:
    """Accepts '02_training', '02', '2' or 'training'."""
    names = list_chapters()
    for n in names:
        num, _, title = n.partition("_")
        if chapter in (n, num, title) or (chapter.isdigit() and int(chapter) == int(num)):
            return CHAPTERS_DIR / f"{n}.ipynb"
    raise ValueError(f"unknown chapter {chapter!r}: accepted chapters are {names}")


def chapter_parameters(chapter: str) -> dict[str, Any]:
    """The names and default values declared in the chapter's ``parameters`` cell."""
    import papermill
    info = papermill.inspect_notebook(str(chapter_path(chapter)))
    out = {}
    for name, p in info.items():
        out[name] = eval(p["default"], {}) if p["default"] not in (None, "None") else None  # noqa: S307 - our own notebooks
    return out


def load_profile(profile: str) -> dict[str, Any]:
    path = PROFILES_DIR / f"{profile}.yaml"
    if not path.exists():
        raise ValueError(f"unknown profile {profile!r}: accepted profiles are {list_profiles()}")
    data = yaml.safe_load(path.read_text()) or {}
    extra = set(data) - {"description", "parameters", "chapters"}
    if extra:
        raise ValueError(f"profile {profile}: unknown top-level keys {sorted(extra)}; "
                         "accepted keys are description, parameters, chapters")
    return data


def _coerce(name: str, value: Any) -> Any:
    """YAML reads '3e-4' as a string; accept it where a float is expected."""
    spec = SPECS.get(name)
    if spec is None:
        return value
    def to_float(v):
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                return v
        return v
    if spec.kind == "float":
        return to_float(value)
    if spec.kind == "list[float]" and isinstance(value, list):
        return [to_float(v) for v in value]
    return value


def parse_cli_value(text: str) -> Any:
    """`-p name value` values: JSON first (numbers, lists, true/false), else a plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def resolve_parameters(chapter: str, profile: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Chapter defaults <- profile parameters <- profile's per-chapter values <- overrides, checked."""
    overrides = overrides or {}
    path = chapter_path(chapter)
    name = path.stem
    declared = chapter_parameters(name)
    data = load_profile(profile)
    all_declared = set().union(*(chapter_parameters(c) for c in list_chapters()))
    for key in data.get("parameters") or {}:
        if key not in all_declared:
            raise ValueError(f"profile {profile}: unknown parameter {key!r}; accepted parameters "
                             f"are those the chapters declare: {sorted(all_declared)}")
    per_chapter = data.get("chapters") or {}
    for ch in per_chapter:
        chapter_path(ch)
    params = dict(declared)
    params.update({k: v for k, v in (data.get("parameters") or {}).items() if k in declared})
    for ch, values in per_chapter.items():
        if chapter_path(ch).stem == name:
            for key, v in (values or {}).items():
                if key not in declared:
                    raise ValueError(f"profile {profile}, chapter {name}: unknown parameter {key!r}; "
                                     f"accepted parameters are {sorted(declared)}")
                params[key] = v
    for key, v in overrides.items():
        if key not in declared:
            raise ValueError(f"chapter {name} has no parameter {key!r}: accepted parameters are {sorted(declared)}")
        params[key] = v
    params["profile"] = profile
    params = {k: _coerce(k, v) for k, v in params.items()}
    for key, v in params.items():
        check_value(key, v)
    check_relations(params)
    return params


# ---- execution -------------------------------------------------------------------------------------

def build_dir(profile: str) -> Path:
    """``$BOOK_BUILD_DIR/<profile>`` (default ``_build/<profile>``)."""
    return Path(os.environ.get("BOOK_BUILD_DIR", REPO / "_build")) / profile


def execute_chapter(chapter: str, params: dict[str, Any], out_dir: Path) -> Path:
    import papermill
    src = chapter_path(chapter)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / src.name
    t0 = time.time()
    print(f"[book] executing {src.name} with profile {params.get('profile')}", flush=True)
    os.environ["BOOK_PROGRESS"] = "0"       # inherited by the kernel: no bars inside pages
    papermill.execute_notebook(str(src), str(out), parameters=params, kernel_name="python3",
                               cwd=str(out_dir), progress_bar={"desc": src.stem, "unit": "cell"},
                               log_output=False, report_mode=False)
    _record_timing(out_dir.parent, src.stem, time.time() - t0)
    print(f"[book] {src.name} done in {time.time() - t0:.0f} s", flush=True)
    return out


def _record_timing(folder: Path, chapter: str, seconds: float) -> None:
    path = folder / "timings.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[chapter] = round(seconds, 1)
    path.write_text(json.dumps(data, indent=1))


def run_chapter(chapter: str, profile: str, overrides: dict[str, Any] | None = None) -> Path:
    params = resolve_parameters(chapter, profile, overrides)
    return execute_chapter(chapter, params, build_dir(profile) / "chapters")


def build_book(profile: str, render: bool = True) -> Path:
    """Execute every chapter with the profile, then render the site.  Returns the site folder."""
    chapters = list_chapters()
    resolved = {c: resolve_parameters(c, profile) for c in chapters}   # all checks before compute
    out = build_dir(profile)
    for c in chapters:
        execute_chapter(c, resolved[c], out / "chapters")
    return render_site(profile) if render else out


def render_site(profile: str) -> Path:
    out = build_dir(profile)
    for f in BOOK_FILES:
        if (REPO / f).exists():
            shutil.copyfile(REPO / f, out / f)
    quarto = shutil.which("quarto")
    if quarto:
        subprocess.run([quarto, "render", str(out), "--no-execute"], check=True)
        site = out / "_book"
        print(f"[book] site rendered by Quarto: {site / 'index.html'}")
        return site
    site = preview_site(out)
    print("[book] Quarto is not on PATH: wrote a static preview of the executed chapters to "
          f"{site / 'index.html'}.\n[book] The full book (navigation, numbered figures, "
          "cross-references, citations) needs Quarto: install it from https://quarto.org and run "
          "`make book` again (the executed chapters are reused from the cache of runs).",
          flush=True)
    return site


def preview_site(out: Path) -> Path:
    """A plain static site: one HTML page per executed chapter (nbconvert) and an index."""
    import nbformat
    from nbconvert import HTMLExporter
    site = out / "preview"
    site.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    links = []
    for nb_path in sorted((out / "chapters").glob("*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
        title = next((line.lstrip("# ").strip() for c in nb.cells if c.cell_type == "markdown"
                      for line in c.source.splitlines() if line.startswith("# ")), nb_path.stem)
        html, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
        (site / f"{nb_path.stem}.html").write_text(html)
        links.append(f'<li><a href="{nb_path.stem}.html">{title}</a></li>')
    intro = (REPO / "index.qmd").read_text() if (REPO / "index.qmd").exists() else ""
    body = "".join(f"<p>{_html_escape(p)}</p>" for p in intro.split("\n\n") if p.strip() and not p.startswith("---"))
    (site / "index.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Fine-tuning interpretability book"
        f" (preview, profile {out.name})</title></head><body style='max-width:50em;margin:auto;font-family:sans-serif'>"
        f"<h1>Fine-tuning interpretability book</h1><p><em>Static preview of profile "
        f"<b>{out.name}</b>, written without Quarto. Install Quarto for the full book.</em></p>"
        f"{body}<h2>Chapters</h2><ol>{''.join(links)}</ol></body></html>")
    return site


def _html_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def run_card(**params) -> None:
    """Display, at the top of a chapter, what produced it: profile, model sources, sizes."""
    from IPython.display import Markdown, display

    from .sources import TINY, base_of
    profile = params.pop("profile", "?")
    sources = {k: v for k, v in params.items() if "source" in k}
    rest = {k: v for k, v in params.items() if k not in sources}
    lines = [f"> **Produced by profile `{profile}`** on {time.strftime('%Y-%m-%d')} ·"
             f" python {sys.version.split()[0]}"]
    if sources:
        lines.append("> **Model sources:** " + ", ".join(f"{k} = `{v}`" for k, v in sources.items()))
    if rest:
        lines.append("> **Sizes and settings:** " + ", ".join(f"{k} = `{v}`" for k, v in rest.items()))
    if any(base_of(str(v)) in TINY for v in sources.values() if isinstance(v, str)):
        lines.append("> **This profile uses tiny random models (not pretrained): its numbers test the "
                     "machinery only and say nothing about the papers' claims.**")
    display(Markdown("\n>\n".join(lines)))
