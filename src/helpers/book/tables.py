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


def minimality_table(ev):
    """A circuit evaluation's minimality check as a chapter shows it (one row per (group, head)
    entry: accuracy without it, the drop with its interval, status), or a sentence when the
    circuit was empty."""
    from IPython.display import Markdown
    if ev.minimality is None:
        return Markdown("No minimality check: the circuit is empty.")
    cols = ["group", "layer", "head", "accuracy_without", "accuracy_drop", "drop_lo", "drop_hi", "status"]
    return with_intervals(ev.minimality[cols], {"accuracy_drop": ("drop_lo", "drop_hi")},
                          names={"accuracy_drop": "accuracy drop [CI]"})
