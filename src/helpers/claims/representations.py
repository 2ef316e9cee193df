"""Lin (2024): after fine-tuning, the last layer is organised by the task variables
(``lin-representation``).  "After fine-tuning" is a paired contrast: the fine-tuned model against
the same model before fine-tuning, on the same trials."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from helpers.claims.verdict import Verdict, alpha, claim, verdict
from helpers.stats.bootstrap import bootstrap_means
from helpers.stats.multiplicity import bonferroni_level

ID = "lin-representation"


def representation_verdict(silhouettes: dict[str, dict[str, np.ndarray]], table: pd.DataFrame | None = None,
                           model: str = "fine-tuned", before: str = "pretrained",
                           variables: Sequence[str] = ("context", "choice"), gate: str | None = None,
                           n_boot: int = 2000, seed: int = 0) -> Verdict:
    """``lin-representation``: `silhouettes[m][v]` are the per-trial silhouettes of model `m`'s
    last-layer states grouped by variable `v` (:func:`helpers.readouts.geometry.silhouette_samples_by`,
    the same trials for every model).  Per variable, the mean of (fine-tuned - pretrained) with a
    paired bootstrap interval simultaneous over `variables`; replicated when every variable's
    difference is material with an interval above 0, not replicated when some variable's interval
    lies below the material effect.  `table` (:func:`structure_table`) adds probes and shuffles to
    the evidence."""
    c = claim(ID)
    missing = [m for m in (model, before) if m not in silhouettes]
    if missing:
        return verdict(ID, model, np.nan, np.nan, np.nan, f"No states of the {missing} model(s).", gate=gate)
    D = np.column_stack([np.asarray(silhouettes[model][v]) - np.asarray(silhouettes[before][v]) for v in variables])
    level = bonferroni_level(1 - alpha(), len(variables))
    m, lo, hi = bootstrap_means(D, n_boot=n_boot, seed=seed, level=level)
    parts = []
    for j, v in enumerate(variables):
        s_ft, s_pre = float(np.mean(silhouettes[model][v])), float(np.mean(silhouettes[before][v]))
        parts.append(f"{v}: silhouette {s_pre:.3f} before fine-tuning, {s_ft:.3f} after, difference "
                     f"{m[j]:+.3f} ({level:.1%} CI {lo[j]:+.3f} to {hi[j]:+.3f})")
    evidence = "; ".join(parts) + f" ({len(D)} trials, intervals simultaneous over {len(variables)} variables)."
    if table is not None:
        t = table.set_index(["model", "variable"])
        probes = [f"{mm} {v} probe {t.loc[(mm, v)].probe_accuracy:.1%} (shuffled silhouette max "
                  f"{t.loc[(mm, v)].silhouette_shuffled_max:.3f})"
                  for mm in (before, model) for v in variables if (mm, v) in t.index]
        evidence += " Linear probes: " + ", ".join(probes) + "."
    if all(lo[j] > 0 and m[j] >= c.material for j in range(len(variables))):
        status = "replicated"
    elif any(hi[j] < c.material for j in range(len(variables))):
        status = "not replicated"
    else:
        status = "inconclusive"
    j = int(np.argmin(m))
    return verdict(ID, model, float(m[j]), float(lo[j]), float(hi[j]), evidence,
                   statistic=f"silhouette by {variables[j]}, fine-tuned minus pretrained", gate=gate, status=status,
                   level=level)
