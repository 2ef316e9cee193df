"""Figures of the decoding analyses (chapter 6): accuracy along the prompt and across layers,
mixed selectivity, per-head decoding.  They take the tables of :mod:`helpers.readouts`."""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from helpers.figures.style import model_color


def plot_by_position(df: pd.DataFrame, labels: Sequence[str] | None = None, columns: Sequence[str] | None = None):
    """Accuracy against token position, one panel per variable, one line per model (band: 95% CI;
    dashed: mean over label shuffles)."""
    import matplotlib.pyplot as plt
    models = list(dict.fromkeys(df["model"]))
    P = int(df["position"].max()) + 1
    columns = list(dict.fromkeys(df["variable"])) if columns is None else columns
    fig, axes = plt.subplots(len(columns), 1, figsize=(max(8.0, 0.2 * P + 2), 2.1 * len(columns) + 0.8),
                             sharex=True, squeeze=False)
    for ax, var in zip(axes[:, 0], columns):
        for i, m in enumerate(models):
            d = df[(df["model"] == m) & (df["variable"] == var)].sort_values("position")
            c = model_color(m, i)
            ax.plot(d["position"], d["accuracy"], "-", color=c, lw=1.4, label=m)
            ax.fill_between(d["position"], d["lo"], d["hi"], color=c, alpha=0.18, lw=0)
            ax.plot(d["position"], d["shuffled_accuracy"], "--", color=c, lw=0.8, alpha=0.8)
        ax.axhline(0.5, color="k", lw=0.6, ls=":")
        ax.set_ylim(0.3, 1.02)
        ax.set_ylabel("accuracy")
        ax.set_title(var, fontsize=9, loc="left")
    axes[0, 0].legend(fontsize=8, ncol=len(models), loc="lower right")
    ax = axes[-1, 0]
    ax.set_xticks(range(P))
    if labels is not None:
        ax.set_xticklabels([repr(s)[1:-1] for s in labels], rotation=90, fontsize=7, family="monospace")
    ax.set_xlabel("token position (dashed: shuffled labels)")
    fig.tight_layout()
    return fig


def plot_by_layer(df: pd.DataFrame, columns: Sequence[str] | None = None):
    """Accuracy at the answer position against layer (0 = embeddings), one panel per variable."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    models = list(dict.fromkeys(df["model"]))
    columns = list(dict.fromkeys(df["variable"])) if columns is None else columns
    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 3.0), sharey=True, squeeze=False)
    for ax, var in zip(axes[0], columns):
        for i, m in enumerate(models):
            d = df[(df["model"] == m) & (df["variable"] == var)].sort_values("layer")
            c = model_color(m, i)
            ax.plot(d["layer"], d["accuracy"], "-o", ms=3, color=c, label=m)
            ax.fill_between(d["layer"], d["lo"], d["hi"], color=c, alpha=0.18, lw=0)
            ax.plot(d["layer"], d["shuffled_accuracy"], "--", color=c, lw=0.8, alpha=0.8)
        ax.axhline(0.5, color="k", lw=0.6, ls=":")
        ax.set_title(var, fontsize=9)
        ax.set_xlabel("layer (0 = embeddings)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0.3, 1.02)
    axes[0, 0].set_ylabel("accuracy at the answer position")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_mixed_selectivity(tables: dict[str, pd.DataFrame]):
    """Share of units selective for 0..4 variables, models side by side; black marks with bars:
    the label-shuffle baseline (mean +- sd)."""
    import matplotlib.pyplot as plt
    names = list(tables)
    fig, ax = plt.subplots(figsize=(7, 3.4))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        t = tables[name]
        x = t["n_variables"].to_numpy() + (i - (len(names) - 1) / 2) * width
        ax.bar(x, t["fraction"], width, color=model_color(name, i), label=name)
        ax.errorbar(x, t["shuffled_fraction"], yerr=t["shuffled_sd"], fmt="_", color="k", ms=8, capsize=2,
                    label="label shuffles" if i == len(names) - 1 else None)
    ax.set_xticks(tables[names[0]]["n_variables"])
    ax.set_xlabel("number of variables a unit is selective for")
    ax.set_ylabel("share of units")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_head_heatmaps(results: dict[tuple[str, str], pd.DataFrame]):
    """Layer x head heatmaps of SVM accuracy: one row per target, one column per model; the colour
    scale runs from chance to 1; dots mark heads significantly above chance."""
    import matplotlib.pyplot as plt
    models = list(dict.fromkeys(m for m, _ in results))
    targets = list(dict.fromkeys(t for _, t in results))
    some = next(iter(results.values()))
    L, H = int(some["layer"].max()) + 1, int(some["head"].max()) + 1
    fig, axes = plt.subplots(len(targets), len(models), layout="constrained", squeeze=False,
                             figsize=(1.2 + 2.4 * len(models) * max(1.0, H / 9), 0.6 + len(targets) * max(2.4, 0.13 * L)))
    for i, target in enumerate(targets):
        for j, m in enumerate(models):
            ax = axes[i, j]
            df = results[(m, target)]
            chance = float(df["chance"].iloc[0])
            im = ax.imshow(df.pivot(index="layer", columns="head", values="accuracy").to_numpy(), aspect="auto", origin="lower", cmap="viridis", vmin=chance, vmax=1.0)
            sig = df[df["significant"]]
            ax.plot(sig["head"], sig["layer"], "w.", ms=3)
            ax.set_title(f"{m}: {target}", fontsize=8)
            ax.set_xticks(range(H) if H <= 12 else range(0, H, 2))
            ax.set_yticks(range(L) if L <= 12 else range(0, L, 2))
            ax.tick_params(labelsize=7)
            if i == len(targets) - 1:
                ax.set_xlabel("head")
            if j == 0:
                ax.set_ylabel("layer")
        fig.colorbar(im, ax=list(axes[i]), fraction=0.03, pad=0.02, label="accuracy")
    return fig
