"""Lin (2024): after fine-tuning, the last layer is organised by the task variables (the table of
:func:`helpers.readouts.geometry.structure_table`)."""
from __future__ import annotations

from typing import Sequence

import pandas as pd


def representation_verdict(table: pd.DataFrame, model: str = "fine-tuned",
                           variables: Sequence[str] = ("context", "choice")) -> tuple[str, str]:
    """Lin (2024): after fine-tuning, last-layer states at the answer position are organised by
    the task variables.  For `model` and each of `variables`, *clustered* means a silhouette above
    every label shuffle's, *decodable* means a probe whose 95% CI lies above 0.5.
    Replicated: every variable is clustered and decodable.  Not replicated: none is decodable.
    Inconclusive: anything in between."""
    t = table.set_index(["model", "variable"])
    if model not in t.index.get_level_values(0):
        return "inconclusive", f"No states of the {model!r} model."
    clustered, decodable, parts = [], [], []
    for v in variables:
        r = t.loc[(model, v)]
        c = bool(r.silhouette > r.silhouette_shuffled_max)
        d = bool(r.probe_lo > 0.5)
        clustered.append(c)
        decodable.append(d)
        parts.append(f"{v}: silhouette {r.silhouette:.3f} (shuffled max {r.silhouette_shuffled_max:.3f}), "
                     f"probe {r.probe_accuracy:.1%} (95% CI {r.probe_lo:.1%}-{r.probe_hi:.1%})")
    others = []
    for m in t.index.get_level_values(0).unique():
        if m == model:
            continue
        others.append(f"{m}: " + ", ".join(f"{v} probe {t.loc[(m, v)].probe_accuracy:.1%}, silhouette "
                                           f"{t.loc[(m, v)].silhouette:.3f}" for v in variables))
    evidence = (f"{model}: " + "; ".join(parts) + "." + (" For comparison, " + "; ".join(others) + "." if others else ""))
    if all(clustered) and all(decodable):
        return "replicated", evidence
    if not any(decodable):
        return "not replicated", evidence
    return "inconclusive", evidence
