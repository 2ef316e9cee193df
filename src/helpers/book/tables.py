"""Tables as the chapters show them: narrow enough for the page."""
from __future__ import annotations

from typing import Mapping


def with_intervals(df, intervals: Mapping[str, tuple[str, str]], digits: int = 3,
                   names: Mapping[str, str] | None = None):
    """A table for reading: each estimate column in `intervals` (``{"accuracy": ("lo", "hi")}``)
    becomes ``0.853 [0.810, 0.890]`` and its bound columns are dropped, so a table with several
    intervals stays narrow.  `names` renames the estimate columns (e.g. to ``"accuracy [95% CI]"``);
    other numeric columns are rounded to `digits`."""
    out = df.copy()
    for est, (lo, hi) in intervals.items():
        out[est] = [f"{e:.{digits}f} [{a:.{digits}f}, {b:.{digits}f}]"
                    for e, a, b in zip(out[est], out[lo], out[hi])]
        out = out.drop(columns=[lo, hi])
    out = out.round(digits)
    return out.rename(columns=dict(names or {}))
