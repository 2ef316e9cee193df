"""Tiny helper to write clean chapter notebooks from a list of (kind, source) cells.

Chapters are committed without outputs; this script is how their JSON is (re)generated from
`chapters/src/*.py` cell lists, so diffs stay readable.  Usage: python tools/nb.py
"""
import runpy
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def build(cells, path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, src in cells:
        src = src.strip("\n")
        if kind == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(src))
        else:
            cell = nbformat.v4.new_code_cell(src)
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
    for i, c in enumerate(nb.cells):   # stable ids keep diffs small
        c["id"] = f"cell-{i:02d}"
    nbformat.write(nb, str(path))


if __name__ == "__main__":
    for src in sorted((ROOT / "chapters" / "src").glob("*.py")):
        cells = runpy.run_path(str(src))["CELLS"]
        build(cells, ROOT / "chapters" / f"{src.stem}.ipynb")
        print("wrote", src.stem)
