"""Compare what two executed builds of the book print: every table and every line of text that the
chapters output (run cards, tables, verdicts), chapter by chapter, and say where they differ.

    .venv/bin/python tools/compare_builds.py _build/quick /path/to/other/_build/quick

Text and HTML tables are compared as printed (so "equal to printed precision" means equal here);
figures are not compared.  The date in each chapter's run card is ignored.  Exit status 1 when any
chapter differs.
"""
from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path

import nbformat

DATE = re.compile(r"on \d{4}-\d{2}-\d{2} ·")


def printed(nb_path: Path) -> list[str]:
    """The chapter's printed outputs, one line per line of text, in order."""
    nb = nbformat.read(nb_path, as_version=4)
    lines = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                text = out.get("text", "")
            elif out.output_type in ("execute_result", "display_data"):
                data = out.get("data", {})
                text = data.get("text/markdown") or data.get("text/plain", "")
                if "image/png" in data and not data.get("text/markdown"):
                    continue                     # a figure: its text/plain is only a repr
            else:
                text = f"ERROR {out.get('ename')}: {out.get('evalue')}"
            lines += [DATE.sub("on <date> ·", line.rstrip()) for line in str(text).splitlines() if line.strip()]
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path, help="a build folder (holding chapters/*.ipynb)")
    ap.add_argument("b", type=Path, help="the other build folder")
    args = ap.parse_args(argv)
    names = sorted({p.stem for p in (args.a / "chapters").glob("*.ipynb")} |
                   {p.stem for p in (args.b / "chapters").glob("*.ipynb")})
    differ = 0
    for name in names:
        pa, pb = args.a / "chapters" / f"{name}.ipynb", args.b / "chapters" / f"{name}.ipynb"
        if not (pa.exists() and pb.exists()):
            print(f"{name}: only in {'the first' if pa.exists() else 'the second'} build")
            differ += 1
            continue
        la, lb = printed(pa), printed(pb)
        if la == lb:
            print(f"{name}: identical ({len(la)} printed lines)")
            continue
        differ += 1
        diff = [d for d in difflib.unified_diff(la, lb, str(pa), str(pb), n=0, lineterm="")]
        changed = sum(1 for d in diff if d.startswith("+") and not d.startswith("+++"))
        print(f"{name}: {changed} of {len(lb)} printed lines differ")
        print("\n".join(diff))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
