"""Checks of an executed book's figures and printed tables, as Quarto will render them.

Quarto turns a cell with ``#| label: fig-...`` and ``#| fig-cap:`` into a numbered figure.  What
goes wrong silently: an image in a cell without those options (an unnumbered, uncaptioned picture),
several images in one figure without one ``fig-subcap`` each (the caption lands under the first
image), a table printed by a figure cell (it becomes sub-figure (a)), the same image twice, a raw
pandas Series or dict print (``dtype: object``), and images that are blurry (no high-resolution
"retina" output) or wider than the page's body column.

Every function takes executed ``nbformat`` notebooks and returns human-readable problems (an empty
list when there are none)."""
from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any, Iterator, Mapping

from helpers.book.chapters import cell_options

IMAGE_TYPES = ("image/png", "image/svg+xml")
MAX_WIDTH_PX = 800          # the body column of Quarto's default HTML page, in CSS px


def _images(cell) -> list[tuple[str, Any, dict]]:
    """``(mime type, data, metadata)`` of every image a code cell outputs."""
    out = []
    for o in cell.get("outputs", []):
        data = o.get("data", {})
        for mime in IMAGE_TYPES:
            if mime in data:
                out.append((mime, data[mime], dict(o.get("metadata", {}).get(mime, {}) or {})))
                break
    return out


def _image_bytes(mime: str, data: Any) -> bytes:
    text = "".join(data) if isinstance(data, list) else str(data)
    return base64.b64decode(text) if mime == "image/png" else text.encode()


def _png_size(raw: bytes) -> tuple[int, int] | None:
    if raw[:8] != b"\x89PNG\r\n\x1a\n" or len(raw) < 24:
        return None
    return struct.unpack(">II", raw[16:24])


def _where(chapter: str, i: int, cell, opts: Mapping) -> str:
    label = opts.get("label")
    if label:
        return f"{chapter}: cell {i} ({label})"
    first = next((ln for ln in cell.get("source", "").splitlines() if ln.strip()), "")
    return f"{chapter}: cell {i} ({first[:60]!r})"


def _code_cells(nb) -> Iterator[tuple[int, Any, dict]]:
    for i, cell in enumerate(nb.cells):
        if cell.get("cell_type") == "code":
            yield i, cell, cell_options(cell.get("source", ""))[0]


def figure_problems(nb, chapter: str, retina: bool = True, max_width_px: int | None = MAX_WIDTH_PX) -> list[str]:
    """Problems of one executed chapter `nb` (named `chapter` in the messages):

    * an image in a cell without ``#| label: fig-...`` and ``#| fig-cap:``;
    * a figure with several images whose ``#| fig-subcap:`` list is missing or of another length;
    * a figure cell that also outputs a table (HTML ``<table``);
    * a raw pandas print: plain text with ``dtype:`` and no HTML form, or a bare dict;
    * with `retina`, a PNG without width/height metadata (drawn at 1x, blurry on sharp screens);
    * with `max_width_px`, an image displayed wider than that (the page would shrink its fonts)."""
    problems = []
    for i, cell, opts in _code_cells(nb):
        where = _where(chapter, i, cell, opts)
        images = _images(cell)
        if images:
            label = str(opts.get("label", ""))
            if not label.startswith("fig-") or not opts.get("fig-cap"):
                problems.append(f"{where}: outputs {len(images)} image(s) but has no "
                                "'#| label: fig-...' and '#| fig-cap:' (an uncaptioned, unnumbered figure)")
            sub = opts.get("fig-subcap")
            if sub is not None and (not isinstance(sub, list) or len(sub) != len(images)):
                n_sub = len(sub) if isinstance(sub, list) else 1
                problems.append(f"{where}: {len(images)} image(s) but {n_sub} fig-subcap(s)")
            elif sub is None and len(images) > 1:
                problems.append(f"{where}: {len(images)} images and no '#| fig-subcap:' list (the caption "
                                "lands under the first image)")
            tables = [o for o in cell.get("outputs", []) if "<table" in _text(o.get("data", {}).get("text/html", ""))]
            if tables:
                problems.append(f"{where}: a figure cell also outputs {len(tables)} table(s), which become "
                                "sub-figures; print tables in a cell of their own")
            for k, (mime, data, meta) in enumerate(images):
                if mime != "image/png":
                    continue
                size = _png_size(_image_bytes(mime, data))
                if retina and not ("width" in meta and "height" in meta):
                    problems.append(f"{where}: image {k + 1} is a 1x PNG without width/height metadata "
                                    "(not high-resolution)")
                width = meta.get("width") or (size[0] if size else None)
                if max_width_px and width and int(width) > max_width_px:
                    problems.append(f"{where}: image {k + 1} displays {int(width)} px wide, wider than the "
                                    f"page's ~{max_width_px} px body column (its fonts would shrink)")
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            plain = _text(data.get("text/plain", ""))
            if not plain or "text/html" in data or "text/markdown" in data or any(m in data for m in IMAGE_TYPES):
                continue
            if "dtype:" in plain:
                problems.append(f"{where}: prints a raw pandas Series ({plain.strip().splitlines()[-1]!r}); "
                                "show a table (DataFrame) or a sentence")
            elif o.get("output_type") == "execute_result" and plain.strip().startswith("{") \
                    and plain.strip().endswith("}"):
                problems.append(f"{where}: prints a raw dict; show a table or a sentence")
    return problems


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def duplicate_figures(notebooks: Mapping[str, Any]) -> list[str]:
    """Images shown twice anywhere in the book (identical decoded bytes), from `notebooks`
    (chapter name -> executed notebook)."""
    seen: dict[str, str] = {}
    problems = []
    for chapter, nb in notebooks.items():
        for i, cell, opts in _code_cells(nb):
            for k, (mime, data, _) in enumerate(_images(cell)):
                digest = hashlib.sha256(_image_bytes(mime, data)).hexdigest()
                here = f"{_where(chapter, i, cell, opts)} image {k + 1}"
                if digest in seen:
                    problems.append(f"{here} is the same image as {seen[digest]}")
                else:
                    seen[digest] = here
    return problems


def book_problems(notebooks: Mapping[str, Any], **kwargs) -> list[str]:
    """:func:`figure_problems` of every chapter and :func:`duplicate_figures` of the whole book."""
    out = [p for ch, nb in notebooks.items() for p in figure_problems(nb, ch, **kwargs)]
    return out + duplicate_figures(notebooks)


def legibility_problems(fig, max_width_in: float | None = None, min_font: float | None = None) -> list[str]:
    """Problems of a matplotlib figure as the page shows it (100 px per inch, never scaled up):
    wider than `max_width_in` (default: the page width plus a little margin, measured on the
    tight bounding box the notebook saves) or text smaller than `min_font` points."""
    from matplotlib.text import Text

    from helpers.figures.style import MIN_FONT, PAGE_WIDTH
    max_width_in = PAGE_WIDTH + 0.6 if max_width_in is None else max_width_in
    min_font = MIN_FONT if min_font is None else min_font
    fig.canvas.draw()
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    problems = []
    if box.width > max_width_in:
        problems.append(f"figure is {box.width:.1f} in wide (at most {max_width_in:.1f} in fits the page)")
    small = sorted({(round(t.get_fontsize(), 1), t.get_text()[:20]) for t in fig.findobj(Text)
                    if t.get_visible() and t.get_text().strip() and t.get_fontsize() < min_font})
    if small:
        problems.append(f"{len(small)} text(s) smaller than {min_font} pt, e.g. {small[:3]}")
    return problems
