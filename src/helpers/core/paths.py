"""Where the project keeps data: ``$BOOK_DATA_DIR`` or ``<repo>/data``."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def data_dir() -> Path:
    d = Path(os.environ.get("BOOK_DATA_DIR", REPO / "data"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def runs_dir() -> Path:
    d = data_dir() / "runs"
    d.mkdir(parents=True, exist_ok=True)
    return d
