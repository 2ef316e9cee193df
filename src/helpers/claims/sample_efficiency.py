"""Lin (2024): the fine-tuned model needs far fewer training trials than the same architecture
trained from scratch (learning curves of :mod:`helpers.training.experiments`)."""
from __future__ import annotations

import pandas as pd

from helpers.stats.intervals import newcombe_diff


def sample_efficiency_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Per N: each arm's pooled test accuracy (over seeds) and the fine-tuned minus scratch
    difference with a 95% Newcombe interval."""
    rows = []
    for n, d in curves.groupby("n_train"):
        arms = {}
        for arm, a in d.groupby("arm"):
            n_trials = int(a["n_test"].sum())
            arms[arm] = (int(round((a["test_accuracy"] * a["n_test"]).sum())), n_trials)
        if not {"fine-tuned", "scratch"} <= set(arms):
            continue
        (k1, n1), (k2, n2) = arms["fine-tuned"], arms["scratch"]
        diff, lo, hi = newcombe_diff(k1, n1, k2, n2)
        rows.append({"n_train": int(n), "fine-tuned": k1 / n1, "scratch": k2 / n2,
                     "difference": diff, "diff_lo": lo, "diff_hi": hi})
    return pd.DataFrame(rows)


def sample_efficiency_verdict(curves: pd.DataFrame, threshold: float = 0.8) -> tuple[str, str]:
    """Replicated when the fine-tuned arm is significantly better than scratch at some N, never
    significantly worse, and reaches `threshold` accuracy at a smaller N than scratch (or scratch
    never does); not replicated when it is never significantly better; inconclusive otherwise."""
    t = sample_efficiency_table(curves)
    if t.empty:
        return "inconclusive", "Both arms are needed at the same training-set sizes."
    better = t[t["diff_lo"] > 0]["n_train"].tolist()
    worse = t[t["diff_hi"] < 0]["n_train"].tolist()

    def first_reaching(arm):
        hit = t[t[arm] >= threshold]["n_train"]
        return int(hit.min()) if len(hit) else None

    n_ft, n_sc = first_reaching("fine-tuned"), first_reaching("scratch")
    parts = [f"At N = {int(r.n_train)}: fine-tuned {r['fine-tuned']:.1%}, scratch {r['scratch']:.1%}, "
             f"difference {r.difference:+.1%} (95% CI {r.diff_lo:+.1%} to {r.diff_hi:+.1%})."
             for _, r in t.iterrows()]
    reach = (f"The fine-tuned arm first reaches {threshold:.0%} at N = {n_ft}" if n_ft else
             f"The fine-tuned arm never reaches {threshold:.0%} in the sizes tried") + "; " + (
             f"scratch at N = {n_sc}." if n_sc else "scratch never does in the sizes tried.")
    evidence = " ".join(parts) + " " + reach
    faster = n_ft is not None and (n_sc is None or n_ft < n_sc)
    if better and not worse and faster:
        return "replicated", evidence
    if not better:
        return "not replicated", evidence
    return "inconclusive", evidence
