"""How long each chapter of a build took to execute: ``<build>/timings.json`` (chapter ->
seconds), written by the runner after each chapter and read by the teacher's page."""
from __future__ import annotations

import json
from pathlib import Path

from helpers.core.artifacts import atomic_write_text

TIMINGS_FILE = "timings.json"


def read_timings(folder: str | Path) -> dict[str, float]:
    """The build's timings; {} when the file is missing or damaged: they are a record of the
    build, not a result, and a damaged file is written anew at the next chapter."""
    try:
        data = json.loads((Path(folder) / TIMINGS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def record_timing(folder: str | Path, chapter: str, seconds: float) -> None:
    """Add one chapter's time to the build's timings, written whole (atomically)."""
    data = read_timings(folder)
    data[chapter] = round(float(seconds), 1)
    atomic_write_text(Path(folder) / TIMINGS_FILE, json.dumps(data, indent=1))
