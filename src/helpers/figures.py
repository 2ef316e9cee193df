"""Figures of the book.  Each function takes tidy data (DataFrames from the analyses) and returns
a matplotlib Figure; chapters only call them."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

ARM_COLORS = {"fine-tuned": "#1f77b4", "scratch": "#d62728", "pretrained": "#7f7f7f"}
TOKEN_TYPE_COLORS = ["#e8f0fe", "#fde8e8", "#e6f4ea", "#fef7e0"]


def tokenization(prompt: str, tokenizations: dict[str, list[str]], width: float = 12.0):
    """One row of coloured boxes per tokenizer, one box per token."""
    fig, axes = plt.subplots(len(tokenizations), 1, figsize=(width, 0.9 * len(tokenizations) + 0.4),
                             squeeze=False)
    for ax, (name, toks) in zip(axes[:, 0], tokenizations.items()):
        ax.set_axis_off()
        ax.set_title(f"{name}: {len(toks)} tokens", loc="left", fontsize=9)
        x = 0.0
        total = sum(max(len(t), 1) for t in toks) + len(toks) * 0.6
        for i, t in enumerate(toks):
            w = (max(len(t), 1) + 0.3) / total
            ax.add_patch(plt.Rectangle((x, 0.1), w, 0.8, facecolor=TOKEN_TYPE_COLORS[i % 2 * 2],
                                       edgecolor="#555", linewidth=0.5))
            ax.text(x + w / 2, 0.5, t.replace(" ", "\u2423"), ha="center", va="center",
                    fontsize=7, family="monospace")
            x += w + 0.3 / total
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    fig.tight_layout()
    return fig


def balance(df: pd.DataFrame, columns: Sequence[str]):
    """Bar chart of the share of each value of each latent variable."""
    fig, axes = plt.subplots(1, len(columns), figsize=(3 * len(columns), 2.6))
    for ax, col in zip(np.atleast_1d(axes), columns):
        share = df[col].value_counts(normalize=True).sort_index()
        ax.bar([str(i) for i in share.index], share.values, color="#888")
        ax.axhline(1 / len(share), color="k", lw=0.8, ls=":")
        ax.set_title(col)
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", labelrotation=45)
    axes = np.atleast_1d(axes)
    axes[0].set_ylabel("share of trials")
    fig.tight_layout()
    return fig


def learning_curves(curves: pd.DataFrame, baselines: dict[str, float] | None = None):
    """Test accuracy (Wilson 95% CI) against training-set size, both arms on the same axes.

    With several seeds, each seed is a faint point and the line is the mean across seeds."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for arm, d in curves.groupby("arm"):
        c = ARM_COLORS.get(arm, None)
        g = d.groupby("n_train")
        mean = g["test_accuracy"].mean()
        ax.plot(mean.index, mean.values, "-o", color=c, label=f"{arm} ({d['source'].iloc[0]})")
        for _, r in d.iterrows():
            ax.errorbar(r["n_train"], r["test_accuracy"],
                        yerr=[[r["test_accuracy"] - r["test_acc_lo"]], [r["test_acc_hi"] - r["test_accuracy"]]],
                        color=c, alpha=0.5, capsize=3, fmt="none")
    ax.axhline(0.5, color="k", lw=0.8, ls=":", label="chance")
    for i, (name, acc) in enumerate((baselines or {}).items()):
        ax.axhline(acc, color="#999", lw=0.8, ls=["--", "-."][i % 2], label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training trials N")
    ax.set_ylabel("held-out test accuracy")
    ax.set_ylim(0.3, 1.02)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def psychometric(preds: dict[str, pd.DataFrame]):
    """P(' right') against the signed coherence of the relevant and the irrelevant stream,
    per context, one column per model (as in Mante et al.'s Fig. 1)."""
    fig, axes = plt.subplots(2, len(preds), figsize=(4 * len(preds), 6.2), squeeze=False, sharey=True)
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
                ax.set_title(name, fontsize=10)
            ax.set_ylim(-0.02, 1.02)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def accuracy_by(preds: dict[str, pd.DataFrame], column: str):
    """Accuracy with 95% Wilson CIs per value of `column` (e.g. congruent), one bar group per model."""
    from .evaluation import wilson_ci
    fig, ax = plt.subplots(figsize=(6, 3.4))
    names = list(preds)
    values = sorted(set().union(*(set(df[column].unique()) for df in preds.values())), key=str)
    width = 0.8 / len(values)
    for k, v in enumerate(values):
        accs, los, his = [], [], []
        for name in names:
            d = preds[name][preds[name][column] == v]
            acc = d["correct"].mean() if len(d) else np.nan
            lo, hi = wilson_ci(int(d["correct"].sum()), len(d))
            accs.append(acc); los.append(acc - lo); his.append(hi - acc)
        ax.bar(np.arange(len(names)) + k * width, accs, width, yerr=[los, his], capsize=3,
               label=f"{column} = {v}")
    ax.set_xticks(np.arange(len(names)) + width * (len(values) - 1) / 2, names, fontsize=8)
    ax.axhline(0.5, color="k", lw=0.8, ls=":")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def training_loss(logs: dict[str, pd.DataFrame]):
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, log in logs.items():
        arm = "scratch" if "scratch" in name else "fine-tuned"
        ax.plot(log["step"], log["loss"].rolling(5, min_periods=1).mean(), label=name,
                color=ARM_COLORS[arm], alpha=0.9)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("answer-token loss (rolling mean of 5)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def head_heatmaps(maps: dict[str, np.ndarray], title: str, marks: Sequence[tuple[int, int]] = (),
                  cmap: str = "RdBu_r", symmetric: bool = True):
    """Layer x head heatmaps side by side, one per model, on a shared colour scale.

    `marks` are (layer, head) pairs to outline (e.g. the heads the paper names)."""
    n = len(maps)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.6), squeeze=False)
    vmax = max(float(np.nanmax(np.abs(m))) for m in maps.values()) or 1.0
    vmin = -vmax if symmetric else min(float(np.nanmin(m)) for m in maps.values())
    for ax, (name, m) in zip(axes[0], maps.items()):
        im = ax.imshow(m, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, origin="lower")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        for (l, h) in marks:
            if l < m.shape[0] and h < m.shape[1]:
                ax.add_patch(plt.Rectangle((h - 0.5, l - 0.5), 1, 1, fill=False, edgecolor="k", lw=1.5))
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label=title)
    return fig


def layer_profile(profiles: dict[str, np.ndarray], ylabel: str):
    """One line per model: a per-layer quantity (e.g. summed drop of its heads)."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, v in profiles.items():
        arm = "scratch" if "scratch" in name else ("pretrained" if "pretrained" in name else "fine-tuned")
        ax.plot(np.arange(len(v)), v, "-o", ms=3, label=name, color=ARM_COLORS.get(arm))
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def screen_scatter(estimate: np.ndarray, exact: np.ndarray, name: str):
    """Attribution-patching estimate against the exact ablation effect, one point per head."""
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.scatter(exact.ravel(), estimate.ravel(), s=8, alpha=0.6)
    lim = [min(exact.min(), estimate.min()), max(exact.max(), estimate.max())]
    ax.plot(lim, lim, "k:", lw=0.8)
    ax.set_xlabel("exact drop of logit difference")
    ax.set_ylabel("attribution-patching estimate")
    ax.set_title(name, fontsize=10)
    fig.tight_layout()
    return fig
