"""Progress bars for long work, and their switch.

Interactive users see a tqdm bar on training and evaluation.  The book runner executes chapters
with ``BOOK_PROGRESS=0`` (bars would end up as noise in the rendered pages) and shows its own
cell-level progress in the terminal instead.
"""
from __future__ import annotations

import os

from tqdm import tqdm


def enabled() -> bool:
    return os.environ.get("BOOK_PROGRESS", "1") != "0"


def bar(iterable=None, *, show: bool = True, **kwargs):
    """A tqdm bar, silent when `show` is false or progress is switched off for this process."""
    return tqdm(iterable, disable=not (show and enabled()), **kwargs)


def quiet_libraries() -> None:
    """Silence transformers' own loading/saving bars when progress is switched off."""
    if not enabled():
        from transformers.utils import logging
        logging.disable_progress_bar()
