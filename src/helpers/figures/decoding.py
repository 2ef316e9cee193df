"""Figures of the decoding analyses (chapter 6): accuracy along the prompt and across layers,
mixed selectivity, per-head decoding.  They take the tables of :mod:`helpers.readouts`."""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from helpers.figures.style import MAX_HEIGHT, PAGE_WIDTH, index_ticks, model_color, token_ticks


def plot_by_position(df: pd.DataFrame, labels: Sequence[str] | None = None, columns: Sequence[str] | None = None):
    """Accuracy against token position, one panel per variable, one line per model (band: 95% CI;
    dashed: mean over label shuffles)."""
    import matplotlib.pyplot as plt
    models = list(dict.fromkeys(df["model"]))
    P = int(df["position"].max()) + 1
    columns = list(dict.fromkeys(df["variable"])) if columns is None else columns
    fig, axes = plt.subplots(len(columns), 1, figsize=(PAGE_WIDTH, min(1.55 * len(columns) + 1.4, MAX_HEIGHT)),
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
        ax.set_title(var, loc="left")
    axes[0, 0].legend(ncol=len(models), loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False,
                      borderaxespad=0.1)      # above the top panel, beside its title: never over a line
    ax = axes[-1, 0]
    ax.set_xlim(-0.5, P - 0.5)
    if labels is not None:
        mode = token_ticks(ax, list(labels[:P]), PAGE_WIDTH - 1.0, "x")
        where = "token position" if mode == "tokens" else "token position (labelled at each word's first token)"
    else:
        index_ticks(ax, P, PAGE_WIDTH - 1.0, "x", pitch_in=0.3)
        where = "token position"
    ax.set_xlabel(f"{where}; dashed: shuffled labels")
    fig.tight_layout()
    return fig


def plot_by_layer(df: pd.DataFrame, columns: Sequence[str] | None = None):
    """Accuracy at the answer position against layer (0 = embeddings), one panel per variable."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    models = list(dict.fromkeys(df["model"]))
    columns = list(dict.fromkeys(df["variable"])) if columns is None else columns
    n_cols = min(len(columns), 2)
    n_rows = -(-len(columns) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(PAGE_WIDTH if n_cols > 1 else 4.5, 2.5 * n_rows + 0.5),
                             sharey=True, sharex=True, squeeze=False)
    for ax in axes.ravel()[len(columns):]:
        ax.set_axis_off()
    for k, (ax, var) in enumerate(zip(axes.ravel(), columns)):
        for i, m in enumerate(models):
            d = df[(df["model"] == m) & (df["variable"] == var)].sort_values("layer")
            c = model_color(m, i)
            ax.plot(d["layer"], d["accuracy"], "-o", ms=3, color=c, label=m)
            ax.fill_between(d["layer"], d["lo"], d["hi"], color=c, alpha=0.18, lw=0)
            ax.plot(d["layer"], d["shuffled_accuracy"], "--", color=c, lw=0.8, alpha=0.8)
        ax.axhline(0.5, color="k", lw=0.6, ls=":")
        ax.set_title(var)
        if k + n_cols >= len(columns):                   # the lowest panel of its column
            ax.set_xlabel("layer (0 = embeddings)")
            ax.xaxis.set_tick_params(labelbottom=True)
        if k % n_cols == 0:
            ax.set_ylabel("accuracy (answer pos.)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0.3, 1.02)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=len(models), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))
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
    ax.legend()
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
    row_h = min(max(2.4, 0.1 * L + 1.0), (MAX_HEIGHT - 0.3) / len(targets))
    fig, axes = plt.subplots(len(targets), len(models), layout="constrained", squeeze=False,
                             figsize=(PAGE_WIDTH, 0.3 + len(targets) * row_h))
    pw, ph = (PAGE_WIDTH - 1.6) / len(models), row_h - 0.8
    for i, target in enumerate(targets):
        for j, m in enumerate(models):
            ax = axes[i, j]
            df = results[(m, target)]
            chance = float(df["chance"].iloc[0])
            im = ax.imshow(df.pivot(index="layer", columns="head", values="accuracy").to_numpy(), aspect="auto",
                           origin="lower", cmap="viridis", vmin=chance, vmax=1.0, interpolation="nearest")
            sig = df[df["significant"]]
            ax.plot(sig["head"], sig["layer"], "w.", ms=4)
            ax.set_title(f"{m}: {target}", fontsize=9)
            index_ticks(ax, H, pw, "x")
            index_ticks(ax, L, ph, "y")
            if i == len(targets) - 1:
                ax.set_xlabel("head")
            if j == 0:
                ax.set_ylabel("layer")
        fig.colorbar(im, ax=list(axes[i]), fraction=0.03, pad=0.02, label="accuracy")
    return fig
