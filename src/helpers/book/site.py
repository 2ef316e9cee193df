"""The site: the executed chapters rendered by Quarto without re-executing them (``execute:
enabled: false`` in ``_quarto.yml``), or, without Quarto on PATH, a static preview written with
nbconvert."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from helpers.book.scorecard import PAGE_FILE, scorecard_page, write_scorecard_page
from helpers.core.paths import REPO

BOOK_FILES = ("_quarto.yml", "index.qmd", "references.bib")


def render_site(out: Path) -> Path:
    """Render the executed chapters in `out` (a build folder) as a site, the scorecard page
    (``scorecard.qmd``, generated in the build folder, written now if the runner has not) first
    after the preface; returns the site's folder."""
    for f in BOOK_FILES:
        if (REPO / f).exists():
            shutil.copyfile(REPO / f, out / f)
    if not (out / PAGE_FILE).exists():
        write_scorecard_page(out)
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
    """A plain static site: an index, the scorecard page, and one HTML page per executed chapter
    (nbconvert)."""
    import nbformat
    from nbconvert import HTMLExporter
    site = out / "preview"
    site.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    import mistune
    links = []
    page = scorecard_page(out, links="html")
    (site / "scorecard.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Scorecard</title><style>"
        "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:3px 6px;"
        "vertical-align:top}</style></head><body style='max-width:80em;margin:auto;font-family:sans-serif'>"
        f"{mistune.create_markdown(plugins=['table'])(page)}</body></html>")
    links.append('<li><a href="scorecard.html">Scorecard</a></li>')
    for nb_path in sorted((out / "chapters").glob("*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
        title = next((line.lstrip("# ").strip() for c in nb.cells if c.cell_type == "markdown"
                      for line in c.source.splitlines() if line.startswith("# ")), nb_path.stem)
        title = re.sub(r"\s*\{#[^}]*\}\s*$", "", title)          # Quarto's {#sec-...} anchor
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
        f"{body}<h2>Contents</h2><ul>{''.join(links)}</ul></body></html>")
    return site


def _html_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
