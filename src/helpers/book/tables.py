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


def variants_table(variants, readable: bool = True):
    """Chapter 10's variants (name: :class:`~helpers.study.EntityModel`) as a table: for a variant
    trained here, what it was trained on, its learning rate, which weights, its steps and stopping
    reason, and its accuracy on its own task's held-out set with the interval; for a variant given
    as a model source, the source (nothing was trained here).  `readable`: the interval written
    beside the estimate (:func:`with_intervals`); else its bounds as the columns ``lo``, ``hi``."""
    import pandas as pd

    from helpers.training.task_io import task_io
    rows = []
    for name, v in variants.items():
        if v.run is None:
            rows.append({"variant": name, "source": v.source, "trained on": "(not trained here)"})
            continue
        m, c = v.run.metrics, v.run.config
        task = task_io(c.task).name.replace("-", " ")
        rows.append({"variant": name, "source": "trained here", "trained on": f"{c.n_train} {task} prompts",
                     "lr": c.lr, "weights trained": f"LoRA rank {c.lora_rank} adapters" if c.lora_rank else "all",
                     "steps (best)": f"{m['steps']} ({m['best_step']})", "stop": m["stop_reason"],
                     "own task accuracy": m["test"]["accuracy"], "lo": m["test"]["accuracy_ci"][0],
                     "hi": m["test"]["accuracy_ci"][1], "own task n": m["test"]["n"]})
    table = pd.DataFrame(rows).set_index("variant")
    if not readable or "own task accuracy" not in table:
        return table
    return with_intervals(table.round(3), {"own task accuracy": ("lo", "hi")},
                          names={"own task accuracy": "accuracy on its own task [95% CI]"})
