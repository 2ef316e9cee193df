"""A chapter's downloads: its results tables as CSV and its executed notebook, linked from its page.

The last cells of a chapter call :func:`save_tables` with the tables its figures and verdicts rest
on; they are written to ``<build>/downloads/<chapter>/<name>.csv`` (atomically) and the cell shows
one line of links.  The executed notebook itself is copied to ``<build>/downloads/notebooks/`` when
the site is rendered (:func:`helpers.book.pages.write_downloads`), after the chapter has finished.
Links are relative to the chapter's page, which both renderers put at ``chapters/NN_name.html``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

from helpers.core.artifacts import atomic_write_text
from helpers.core.errors import ParameterError

DOWNLOADS = "downloads"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def table_name_problem(name: str) -> str | None:
    if not _NAME.match(name):
        return (f"table name {name!r} is not accepted: use lower-case letters, digits, '-' and '_' "
                "(it becomes the CSV file's name)")
    return None


def write_tables(folder: str | Path, chapter: str, tables: Mapping[str, object]) -> list[Path]:
    """Write each DataFrame of `tables` to ``<folder>/downloads/<chapter>/<name>.csv``; returns
    the files.  A name that cannot be a file name, or a value that is not a DataFrame, stops with
    a message naming it."""
    import pandas as pd
    out = Path(folder) / DOWNLOADS / chapter
    paths = []
    for name, table in tables.items():
        problem = table_name_problem(name)
        if problem:
            raise ParameterError(problem)
        if isinstance(table, pd.Series):
            table = table.to_frame()
        if not isinstance(table, pd.DataFrame):
            raise ParameterError(f"table {name!r} is a {type(table).__name__}; save_tables takes pandas "
                                 "DataFrames (or Series)")
        # a named or labelled index is data; a bare integer index (0..n, or repeated by a concat) is not
        index = any(n is not None for n in table.index.names) or not pd.api.types.is_integer_dtype(table.index)
        path = out / f"{name}.csv"
        atomic_write_text(path, table.to_csv(index=index))
        paths.append(path)
    return paths


def links_markdown(chapter: str, names) -> str:
    """The line of links a chapter page shows (paths relative to ``chapters/<chapter>.html``)."""
    parts = [f"[executed notebook](../{DOWNLOADS}/notebooks/{chapter}.ipynb)"]
    parts += [f"[{n}.csv](../{DOWNLOADS}/{chapter}/{n}.csv)" for n in names]
    return "**Downloads:** " + " · ".join(parts)


def save_tables(study, chapter: str, tables: Mapping[str, object], **params):
    """Write the chapter's results tables into its build's downloads and return the links as
    Markdown (display it as the chapter's last output).  `chapter` is its name or number."""
    from IPython.display import Markdown

    from helpers.book.chapters import chapter_path
    from helpers.book.scorecard import chapter_build_dir
    name = chapter_path(str(chapter)).stem
    folder = chapter_build_dir(study, name, **params)
    write_tables(folder, name, tables)
    return Markdown(links_markdown(name, list(tables)))
