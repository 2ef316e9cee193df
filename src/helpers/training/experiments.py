"""Grid search and learning curves: many cached runs, summarised as tables.

Both arms (fine-tuned pretrained model, same architecture from scratch) get their own grid over
learning rate on the *validation* set at one training-set size; the best setting of each arm is
then used for its learning curve, which is scored on the *test* set.
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from helpers.training.runs import RunConfig, get_run


def run_row(run) -> dict:
    """One run as a table row: its config, how it trained (``steps`` taken, ``best_step`` whose
    weights were kept, ``stop_reason``, ``converged``: stopped early rather than at the step cap,
    ``epochs``: passes over the training set in ``steps``, ``final_train_loss`` at the best step)
    and its validation and test scores."""
    m = run.metrics
    c = run.config
    row = {"arm": c.arm, "source": c.source, "n_train": c.n_train, "n_test": c.n_test, "lr": c.lr, "seed": c.seed,
           "steps": m["steps"], "best_step": m["best_step"], "max_steps": c.max_steps,
           "epochs": m["steps"] * c.batch_size / c.n_train, "stop_reason": m["stop_reason"],
           "converged": m["converged"], "batch_size": c.batch_size, "key": c.key(),
           "train_seconds": m["train_seconds"], "final_train_loss": m["final_train_loss"],
           "best_val_loss": m["best_val_loss"]}
    for split in ("val", "test"):
        s = m[split]
        row[f"{split}_accuracy"] = s["accuracy"]
        row[f"{split}_acc_lo"], row[f"{split}_acc_hi"] = s["accuracy_ci"]
        row[f"{split}_logit_diff"] = s.get("logit_diff", float("nan"))      # decision task only
        if "choice_accuracy" in s:                                             # entity tracking
            row[f"{split}_choice_accuracy"] = s["choice_accuracy"]
            row[f"{split}_choice_lo"], row[f"{split}_choice_hi"] = s["choice_accuracy_ci"]
    return row


def grid_search(base: RunConfig, lrs: Sequence[float], progress: bool = True, train: bool = True) -> pd.DataFrame:
    """One run per learning rate; ranked by validation accuracy, then validation logit diff.
    Missing runs are trained, or raise :class:`~helpers.core.errors.MissingRun` with ``train=False``."""
    rows = [run_row(get_run(base.replace(lr=float(lr)), progress=progress, train=train)) for lr in lrs]
    df = pd.DataFrame(rows)
    return df.sort_values(["val_accuracy", "val_logit_diff"], ascending=False).reset_index(drop=True)


def best_config(base: RunConfig, grid: pd.DataFrame) -> RunConfig:
    """The config of the grid's best row (ties: the higher validation logit difference)."""
    return base.replace(lr=float(grid.iloc[0]["lr"]))


def learning_curve(best: RunConfig, sizes: Sequence[int], seeds: Sequence[int],
                   progress: bool = True, train: bool = True) -> pd.DataFrame:
    rows = [run_row(get_run(best.replace(n_train=int(n), seed=int(s)), progress=progress, train=train))
            for n in sizes for s in seeds]
    return pd.DataFrame(rows)


def tracked_curves(runs: dict) -> pd.DataFrame:
    """Each named run's evaluations along its training, for runs that track a second task
    (:attr:`RunConfig.track_task`; runs that do not are left out): one row per (run, evaluation)
    with ``name``, ``step``, ``own_accuracy`` (forced choice on its own task's validation trials),
    ``tracked_accuracy`` (on the tracked task's), ``best_step`` (the checkpoint the run kept) and
    ``n_val``, ``n_track``.  Chapter 10's dose-response: entity tracking against arithmetic skill."""
    rows = []
    for name, run in runs.items():
        if run is None or run.config.track_task is None:
            continue
        best = int(run.metrics["best_step"])
        for r in run.val_log().to_dict("records"):
            rows.append({"name": name, "step": int(r["step"]), "own_accuracy": float(r["val_accuracy"]),
                         "tracked_accuracy": float(r["track_accuracy"]), "best_step": best,
                         "n_val": run.config.n_val, "n_track": run.config.n_track})
    return pd.DataFrame(rows, columns=["name", "step", "own_accuracy", "tracked_accuracy", "best_step", "n_val",
                                       "n_track"])
