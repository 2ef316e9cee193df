"""Grid search and learning curves: many cached runs, summarised as tables.

Both arms (fine-tuned pretrained model, same architecture from scratch) get their own grid over
learning rate on the *validation* set at one training-set size; the best setting of each arm is
then used for its learning curve, which is scored on the *test* set.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .training import RunConfig, get_run  # noqa: F401 - get_run is re-exported for chapters


def run_row(run) -> dict:
    m = run.metrics
    c = run.config
    row = {"arm": c.arm, "source": c.source, "n_train": c.n_train, "n_test": c.n_test, "lr": c.lr, "seed": c.seed,
           "epochs": c.n_epochs, "steps": c.total_steps, "batch_size": c.batch_size, "key": c.key(),
           "train_seconds": m["train_seconds"], "final_train_loss": m["final_train_loss"]}
    for split in ("val", "test"):
        s = m[split]
        row[f"{split}_accuracy"] = s["accuracy"]
        row[f"{split}_acc_lo"], row[f"{split}_acc_hi"] = s["accuracy_ci"]
        row[f"{split}_logit_diff"] = s["logit_diff"]
    return row


def grid_search(base: RunConfig, lrs: Sequence[float], progress: bool = True) -> pd.DataFrame:
    """One run per learning rate; ranked by validation accuracy, then validation logit diff."""
    rows = [run_row(get_run(base.replace(lr=float(lr)), progress=progress)) for lr in lrs]
    df = pd.DataFrame(rows)
    return df.sort_values(["val_accuracy", "val_logit_diff"], ascending=False).reset_index(drop=True)


def best_config(base: RunConfig, grid: pd.DataFrame) -> RunConfig:
    """The config of the grid's best row (ties: the higher validation logit difference)."""
    return base.replace(lr=float(grid.iloc[0]["lr"]))


def learning_curve(best: RunConfig, sizes: Sequence[int], seeds: Sequence[int],
                   progress: bool = True) -> pd.DataFrame:
    rows = [run_row(get_run(best.replace(n_train=int(n), seed=int(s)), progress=progress))
            for n in sizes for s in seeds]
    return pd.DataFrame(rows)


def _diff_ci(k1: int, n1: int, k2: int, n2: int, z: float = 1.959964) -> tuple[float, float, float]:
    """Difference of two proportions p1 - p2 with a 95% Newcombe (Wilson-score) interval."""
    from .evaluation import wilson_ci
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_ci(k1, n1, z)
    l2, u2 = wilson_ci(k2, n2, z)
    d = p1 - p2
    lo = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, float(lo), float(hi)


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
        diff, lo, hi = _diff_ci(k1, n1, k2, n2)
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
             f"scratch at N = {n_sc}." if n_sc else f"scratch never does in the sizes tried.")
    evidence = " ".join(parts) + " " + reach
    faster = n_ft is not None and (n_sc is None or n_ft < n_sc)
    if better and not worse and faster:
        return "replicated", evidence
    if not better:
        return "not replicated", evidence
    return "inconclusive", evidence


def arm_bases(task, pretrained_source: str, scratch_source: str, grid_n_train: int, seeds, epochs: int,
              batch_size: int, n_val: int, n_test: int, bf16: bool, *, min_steps: int) -> dict[str, RunConfig]:
    """The grid-search config of each arm (before its learning rate is chosen): the one place
    that defines how chapter 2 and the analysis chapters build the two arms."""
    return {arm: RunConfig(source=src, n_train=grid_n_train, task=task, epochs=epochs, min_steps=min_steps,
                           batch_size=batch_size, n_val=n_val, n_test=n_test, bf16=bf16, seed=seeds[0])
            for arm, src in (("fine-tuned", pretrained_source), ("scratch", scratch_source))}


def selected_runs(task, pretrained_source: str, scratch_source: str, grid_lrs_finetune, grid_lrs_scratch,
                  grid_n_train: int, train_sizes, seeds, epochs: int, batch_size: int, n_val: int,
                  n_test: int, bf16: bool, *, min_steps: int, progress: bool = True) -> dict:
    """The runs that chapters 3-6 analyse: for each arm, the grid's best setting at the largest
    training-set size and the first seed, exactly as chapter 2 selects them (cached runs are only
    loaded; missing ones are trained)."""
    bases = arm_bases(task, pretrained_source, scratch_source, grid_n_train, seeds, epochs,
                      batch_size, n_val, n_test, bf16, min_steps=min_steps)
    lrs = {"fine-tuned": grid_lrs_finetune, "scratch": grid_lrs_scratch}
    out = {}
    for arm, base in bases.items():
        best = best_config(base, grid_search(base, lrs[arm], progress=progress))
        out[arm] = get_run(best.replace(n_train=max(train_sizes)), progress=progress)
    return out


ANALYSED_MODELS = ("pretrained", "fine-tuned", "scratch")


def load_analysed(name: str, runs: dict, pretrained_source: str):
    """``(model, tokenizer)`` of an analysed model on the book's device, in eval mode:
    ``'pretrained'`` (the source before fine-tuning) or an arm of `runs` (``'fine-tuned'``,
    ``'scratch'``, as returned by :func:`selected_runs`)."""
    from .hardware import default_device
    from .sources import load_source
    if name == "pretrained":
        model, tok = load_source(pretrained_source)
    elif name in runs:
        model, tok = runs[name].load_model()
    else:
        raise ValueError(f"unknown model {name!r}: accepted values are {('pretrained',) + tuple(runs)}")
    return model.to(default_device()).eval(), tok
