"""Figures of the entity-tracking chapters (9-10): a model across box counts (how often it picks the
queried object, how often the last-mentioned one, against chance).  Learning curves are drawn by
:func:`helpers.figures.training.learning_curves`, path-patching scores by
:func:`helpers.figures.ablation.head_heatmaps`."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

SERIES = {"choice_accuracy": ("the queried object (forced choice among the context's)", "#1f77b4", "-o"),
          "accuracy": ("the queried object is the top-1 token (Prakash et al.'s accuracy)", "#2ca02c", "-s"),
          "picked_last": ("the last-mentioned object (forced choice)", "#d62728", "--^")}


def _box_axes(ax, boxes, xlabel: str, title: str | None) -> None:
    """The shared frame of the box-count figures: a tick per box, shares from 0 to 1."""
    ax.set_xticks(boxes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of test prompts")
    ax.set_ylim(0, 1.02)
    if title:
        ax.set_title(title)


def box_counts(table, title: str | None = None):
    """Rows of :func:`helpers.training.entity_evaluation.box_count_table`: each rate against the
    number of boxes with its 95% Wilson interval, and chance (1 / boxes)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
    b = table["boxes"].to_numpy()
    for key, (label, color, style) in SERIES.items():
        y = table[key].to_numpy()
        err = np.vstack([y - table[f"{key}_lo"].to_numpy(), table[f"{key}_hi"].to_numpy() - y])
        ax.errorbar(b, y, yerr=err, fmt=style, color=color, capsize=3, label=label)
    xs = np.linspace(b.min(), b.max(), 100)
    ax.plot(xs, 1 / xs, color="k", lw=0.8, ls=":", label="chance (1 / boxes)")
    _box_axes(ax, b, "boxes in the context", title)
    ax.legend(loc="upper right", fontsize=8)
    return fig


BARS = {"model": ("full model", "#1f77b4"), "circuit": ("the base's circuit", "#2ca02c"),
        "random": ("random circuits (mean)", "#7f7f7f")}


def query_positions(table, title: str | None = None):
    """Rows of :func:`helpers.training.entity_evaluation.by_query_position`: top-1 accuracy at each
    queried box with its interval (simultaneous over the boxes), and chance."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4), layout="constrained")
    b = table["box"].to_numpy()
    y = table["accuracy"].to_numpy(dtype=float)
    err = np.vstack([y - table["lo"].to_numpy(dtype=float), table["hi"].to_numpy(dtype=float) - y])
    ax.errorbar(b, y, yerr=err, fmt="-s", color=SERIES["accuracy"][1], capsize=3,
                label="the queried object is the top-1 token")
    ax.axhline(float(table["chance"].iloc[0]), color="k", lw=0.8, ls=":", label="chance (1 / boxes)")
    _box_axes(ax, b, "queried box (order of mention)", title)
    ax.legend(loc="lower left", fontsize=8, frameon=False)
    return fig


def circuit_table(table, chance: float | None = None, title: str | None = None):
    """Prakash et al.'s table as bars: per model (rows of `table`, column ``model name``), the top-1
    accuracy of the full model, of the base's circuit inside it and of random circuits, with 95%
    intervals where the table has them (``<bar>_lo``, ``<bar>_hi``); dotted: chance."""
    fig, ax = plt.subplots(figsize=(6.8, 3.8), layout="constrained")
    names = list(table["model name"])
    x = np.arange(len(names))
    width = 0.26
    for i, (key, (label, color)) in enumerate(BARS.items()):
        y = table[key].to_numpy(dtype=float)
        err = None
        if f"{key}_lo" in table:
            err = np.vstack([y - table[f"{key}_lo"].to_numpy(dtype=float), table[f"{key}_hi"].to_numpy(dtype=float) - y])
        ax.bar(x + (i - 1) * width, y, width, yerr=err, color=color, capsize=3, label=label)
    if chance is not None:
        ax.axhline(chance, color="k", lw=0.8, ls=":", label="chance (1 / boxes)")
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel("top-1 accuracy, held-out prompts")
    ax.set_ylim(0, 1.05)
    if title:
        ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    return fig


def dose_response(curves, base_accuracy: float | None = None, chance: float | None = None,
                  own_chance: float | None = None, title: str | None = None):
    """Rows of :func:`helpers.training.experiments.tracked_curves`: for each variant, the tracked
    task's accuracy (entity tracking) against its own task's (arithmetic) at every evaluation of
    its training, joined in step order; the kept checkpoint ringed.  Dashed: the base's
    entity-tracking accuracy on the same prompts; dotted: chance of each axis."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
    markers = "osD^v<>"
    for i, (name, g) in enumerate(curves.groupby("name", sort=False)):
        g = g.sort_values("step")
        line, = ax.plot(g["own_accuracy"], g["tracked_accuracy"], marker=markers[i % len(markers)], ms=4, lw=1,
                        label=f"{name} (steps {int(g['step'].min())}-{int(g['step'].max())})")
        kept = g[g["step"] == g["best_step"]]
        ax.plot(kept["own_accuracy"], kept["tracked_accuracy"], "o", ms=10, mfc="none", color=line.get_color())
    if base_accuracy is not None:
        ax.axhline(base_accuracy, color="k", lw=0.9, ls="--", label="the base (before further fine-tuning)")
    if chance is not None:
        ax.axhline(chance, color="k", lw=0.8, ls=":", label="chance")
    if own_chance is not None:
        ax.axvline(own_chance, color="k", lw=0.8, ls=":")
    ax.set_xlabel("own-task accuracy (validation; arithmetic)")
    ax.set_ylabel("entity tracking, top-1 (validation)")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.05)
    if title:
        ax.set_title(title)
    ax.legend(loc="best", fontsize=8, frameon=False)
    return fig
