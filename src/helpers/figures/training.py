"""Figures of training (chapter 2): learning curves, psychometric curves, accuracy by condition,
training loss.  They take the tables of :mod:`helpers.training`."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.figures.style import PAGE_WIDTH, model_color


def learning_curves(curves: pd.DataFrame, baselines: dict[str, float] | None = None, chance: float = 0.5,
                    ylim: tuple[float, float] = (0.3, 1.02)):
    """Test accuracy (Wilson 95% CI) against training-set size, both arms on the same axes.

    With several seeds, each seed is a faint point and the line is the mean across seeds."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for arm, d in curves.groupby("arm"):
        c = model_color(arm)
        g = d.groupby("n_train")
        mean = g["test_accuracy"].mean()
        ax.plot(mean.index, mean.values, "-o", color=c, label=f"{arm} ({d['source'].iloc[0]})")
        for _, r in d.iterrows():
            ax.errorbar(r["n_train"], r["test_accuracy"],
                        yerr=[[r["test_accuracy"] - r["test_acc_lo"]], [r["test_acc_hi"] - r["test_accuracy"]]],
                        color=c, alpha=0.5, capsize=3, fmt="none")
    ax.axhline(chance, color="k", lw=0.8, ls=":", label="chance")
    for i, (name, acc) in enumerate((baselines or {}).items()):
        ax.axhline(acc, color="#999", lw=0.8, ls=["--", "-."][i % 2], label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training trials N")
    ax.set_ylabel("held-out test accuracy")
    ax.set_ylim(*ylim)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def psychometric(preds: dict[str, pd.DataFrame]):
    """P(' right') against the signed coherence of the relevant and the irrelevant stream,
    per context, one column per model (as in Mante et al.'s Fig. 1)."""
    fig, axes = plt.subplots(2, len(preds), figsize=(min(3.7 * len(preds), PAGE_WIDTH), 6.0), squeeze=False,
                             sharey=True)
    for j, (name, df) in enumerate(preds.items()):
        for i, (var, label) in enumerate((("relevant_coh", "relevant"), ("irrelevant_coh", "irrelevant"))):
            ax = axes[i, j]
            for ctx, style in (("motion", "-o"), ("color", "--s")):
                d = df[df["context"] == ctx]
                g = d.groupby(var)["model_choice"].apply(lambda s: (s > 0).mean())
                n = d.groupby(var).size()
                se = np.sqrt(g * (1 - g) / n)
                ax.errorbar(g.index, g.values, yerr=1.96 * se, fmt=style, capsize=2, label=f"context: {ctx}")
            ax.axhline(0.5, color="k", lw=0.6, ls=":")
            ax.axvline(0, color="k", lw=0.6, ls=":")
            ax.set_xlabel(f"signed coherence of the {label} stream")
            if j == 0:
                ax.set_ylabel("P(answer = ' right')")
            if i == 0:
                ax.set_title(name)
            ax.set_ylim(-0.02, 1.02)
    axes[0, 0].legend()
    fig.tight_layout()
    return fig


def accuracy_by(table: pd.DataFrame):
    """Accuracy with 95% intervals per value of a condition, one bar group per model, from
    :func:`helpers.training.evaluation.accuracy_by_table` (columns model, value, accuracy, lo, hi,
    and ``column``, the condition's name)."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    names = list(dict.fromkeys(table["model"]))
    values = list(dict.fromkeys(table["value"]))
    column = table["column"].iloc[0]
    width = 0.8 / len(values)
    for k, v in enumerate(values):
        d = table[table["value"] == v].set_index("model").reindex(names)
        accs = d["accuracy"].to_numpy()
        ax.bar(np.arange(len(names)) + k * width, accs, width,
               yerr=[accs - d["lo"].to_numpy(), d["hi"].to_numpy() - accs], capsize=3,
               label=f"{column} = {v}")
    ax.set_xticks(np.arange(len(names)) + width * (len(values) - 1) / 2, names)
    ax.axhline(0.5, color="k", lw=0.8, ls=":")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.05)
    ax.legend()
    fig.tight_layout()
    return fig


def training_loss(logs: dict[str, pd.DataFrame], val_logs: dict[str, pd.DataFrame] | None = None):
    """Training loss per step (rolling mean of 5) and, from `val_logs` (``Run.val_log()``), the
    validation loss of every evaluation, with the best one ringed."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, log in logs.items():
        ax.plot(log["step"], log["loss"].rolling(5, min_periods=1).mean(), label=name,
                color=model_color(name), alpha=0.9)
    for name, val in (val_logs or {}).items():
        if val is None or not len(val):
            continue
        ax.plot(val["step"], val["val_loss"], "o", ms=3, color=model_color(name), alpha=0.8,
                label=f"{name}, validation")
        best = val.loc[val["val_loss"].idxmin()]
        ax.plot([best["step"]], [best["val_loss"]], "o", ms=9, mfc="none", color=model_color(name))
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("answer-token loss")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    return fig
