"""The chapters: jupytext percent scripts ``chapters/NN_name.py`` (``# %%`` cells, ``# %% [markdown]``
prose, Quarto ``#|`` options, one cell tagged ``parameters``), the single source of each chapter.

They are read into notebooks in memory (:func:`read_chapter`) for papermill to execute; nothing is
written back to ``chapters/``.  A chapter's notebook metadata says what it needs before it can
run (``book: needs: [...]``): ``tokenizers`` (its ``tokenizer_sources``), ``models`` (the study's
model sources), ``entity-models`` (the sources chapters 9-10 analyse beyond them: ``et_base_source``
and ``et_variant_sources``), ``runs`` (the study's trained runs, which chapter 2 builds), ``entity-runs`` (the
entity-tracking runs chapter 9 trains, unless the profile names ``et_base_source``).
"""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path
from typing import Any

from helpers.core.errors import ParameterError
from helpers.core.paths import REPO

CHAPTERS_DIR: Path = REPO / "chapters"
NEEDS = ("tokenizers", "models", "entity-models", "runs", "entity-runs")


def list_chapters() -> list[str]:
    return sorted(p.stem for p in CHAPTERS_DIR.glob("[0-9][0-9]_*.py"))


def chapter_path(chapter: str) -> Path:
    """Accepts '02_training', '02', '2' or 'training'."""
    names = list_chapters()
    for n in names:
        num, _, title = n.partition("_")
        if chapter in (n, num, title) or (chapter.isdigit() and int(chapter) == int(num)):
            return CHAPTERS_DIR / f"{n}.py"
    raise ParameterError(f"unknown chapter {chapter!r}: accepted chapters are {names} "
                         "(or their numbers, e.g. 2 or 02)")


def read_chapter(chapter: str):
    """The chapter as an in-memory notebook (nbformat v4)."""
    import jupytext
    return jupytext.read(chapter_path(chapter), fmt="py:percent")


def parameters_cell(nb):
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"a chapter needs exactly one cell tagged 'parameters', found {len(cells)}")
    return cells[0]


def chapter_parameters(chapter: str) -> dict[str, Any]:
    """The names and default values assigned in the chapter's ``parameters`` cell (literals only)."""
    return literal_assignments(parameters_cell(read_chapter(chapter)).source,
                               f"chapter {chapter}: the parameters cell")


def literal_assignments(src: str, where: str) -> dict[str, Any]:
    """The names and values of a cell that only assigns literals (``name = value`` lines: a
    chapter's parameters cell, or the cell papermill injects); anything else raises
    :class:`ParameterError` naming `where`."""
    out = {}
    for node in ast.parse(src).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ParameterError(f"{where} may only assign values, found {ast.unparse(node)!r}")
        try:
            out[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise ParameterError(f"{where}: {node.targets[0].id!r} = {ast.unparse(node.value)!r} is not a "
                                 "literal value (a number, string, list, dict, true/false)") from None
    return out


def chapter_needs(chapter: str) -> tuple[str, ...]:
    needs = tuple((read_chapter(chapter).metadata.get("book") or {}).get("needs", ()))
    bad = set(needs) - set(NEEDS)
    if bad:
        raise ParameterError(f"chapter {chapter}: unknown needs {sorted(bad)}; accepted are {list(NEEDS)}")
    return needs


def cell_options(source: str, strict: bool = True) -> tuple[dict[str, Any], str]:
    """A code cell's Quarto options (the YAML of its leading ``#|`` lines, after any blank lines;
    ``{}`` when none) and its code without them.  Option lines that are not valid YAML raise
    ``ValueError`` naming them, or with ``strict=False`` (a renderer that must show the page
    anyway) are read line by line as ``key: value``."""
    import yaml
    lines = source.split("\n")
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    option_lines = []
    while i < len(lines) and lines[i].startswith("#|"):
        option_lines.append(lines[i][2:])
        i += 1
    code = "\n".join(lines[i:]).strip("\n")
    if not option_lines:
        return {}, code
    try:
        opts = yaml.safe_load(textwrap.dedent("\n".join(option_lines)))
    except yaml.YAMLError as e:
        if strict:
            raise ValueError(f"cell options are not valid YAML: {option_lines!r} ({e})") from e
        opts = {}
        for line in option_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                opts[k.strip()] = v.strip().strip("\"'")
    return (opts if isinstance(opts, dict) else {}), code

