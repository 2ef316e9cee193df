"""Figures of the circuit chapters (7-8): where the counterfactual's information is (residual
patching), how the circuit does against random circuits, and what cross-model patching moves.
The path-patching scores are drawn by :func:`helpers.figures.ablation.head_heatmaps`."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from helpers.figures.style import PAGE_WIDTH, index_ticks, model_color, token_ticks


def resid_maps(maps: Mapping[str, np.ndarray], layers: Sequence[int], labels: Sequence[str]):
    """One panel per counterfactual: the share of the flip (1 = all of it) when the residual stream
    entering a layer (rows) is patched at one position (columns, the prompt's tokens)."""
    n = len(maps)
    fig, axes = plt.subplots(n, 1, figsize=(PAGE_WIDTH, 1.0 + 0.28 * len(layers) * n + 0.9 * n), squeeze=False,
                             layout="constrained")
    vmax = max(1.0, max(float(np.nanmax(np.abs(m))) for m in maps.values()))
    for ax, (name, m) in zip(axes[:, 0], maps.items()):
        im = ax.imshow(m, aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax, origin="lower",
                       interpolation="nearest")
        ax.set_title(f"{name} counterfactual")
        ax.set_yticks(range(len(layers)))
        ax.set_yticklabels([str(l) for l in layers])
        ax.set_ylabel("layer")
        token_ticks(ax, list(labels)[: m.shape[1]], PAGE_WIDTH - 1.6, "x")
    fig.colorbar(im, ax=list(axes[:, 0]), shrink=0.9, label="share of the flip")
    return fig


def faithfulness_plot(table, random_faithfulness: Sequence[float] | None = None):
    """Faithfulness of each evaluated circuit (rows of
    :func:`~helpers.interventions.decision_circuit.evaluation_table`) with its 95% interval, the
    random circuits' draws as points beside the first, and the full model at 1."""
    fig, ax = plt.subplots(figsize=(6.0, 0.6 + 0.55 * (len(table) + 1)), layout="constrained")
    names = list(table["circuit"]) + ([f"random circuits ({len(random_faithfulness)} draws)"]
                                      if random_faithfulness is not None and len(random_faithfulness) else [])
    y = np.arange(len(names))[::-1]
    for yi, (_, r) in zip(y, table.iterrows()):
        ax.errorbar(r["faithfulness"], yi, xerr=[[r["faithfulness"] - r["faithfulness_lo"]],
                                                 [r["faithfulness_hi"] - r["faithfulness"]]],
                    fmt="o", color="C0", capsize=3)
    if len(names) > len(table):
        ax.scatter(random_faithfulness, np.full(len(random_faithfulness), y[-1]), color="C7", s=14, alpha=0.8)
    ax.axvline(1.0, color="k", lw=0.6, ls=":")
    ax.set_yticks(y)
    ax.set_yticklabels(names)
    ax.set_xlabel("faithfulness (circuit accuracy / full-model accuracy)")
    return fig


def cmap_plot(tables: Mapping[str, object]):
    """One panel per receiving model: its accuracy alone, the donor's, and with each head set
    patched in (rows of :func:`~helpers.interventions.decision_circuit.cmap_table`; random sets as
    grey points on one row), with 95% intervals."""
    n = len(tables)
    fig, axes = plt.subplots(1, n, figsize=(PAGE_WIDTH, 3.0), squeeze=False, sharex=True, layout="constrained")
    for ax, (receiver, t) in zip(axes[0], tables.items()):
        fixed = t[~t["patched"].str.startswith("random ")]
        rnd = t[t["patched"].str.startswith("random ")]
        names = list(fixed["patched"]) + ([f"random sets ({len(rnd)})"] if len(rnd) else [])
        y = np.arange(len(names))[::-1]
        for yi, (_, r) in zip(y, fixed.iterrows()):
            color = (model_color(receiver) if r["patched"] == "receiver alone"
                     else model_color("fine-tuned") if r["patched"] == "donor alone" else "C2")
            ax.errorbar(r["accuracy"], yi, xerr=[[r["accuracy"] - r["lo"]], [r["hi"] - r["accuracy"]]],
                        fmt="o", color=color, capsize=3)
        if len(rnd):
            ax.scatter(rnd["accuracy"], np.full(len(rnd), y[-1]), color="C7", s=14, alpha=0.8)
        ax.set_yticks(y)
        ax.set_yticklabels(names)
        ax.set_title(f"into the {receiver} model")
        ax.set_xlabel("accuracy (two alternatives)")
        ax.axvline(0.5, color="k", lw=0.5, ls=":")
    return fig


def dcm_map(table, desiderata: Sequence[str]):
    """Heads (columns) by desideratum (rows): filled where DCM selected the head.  An empty table (no
    circuit) draws an empty panel that says so."""
    if len(table) == 0:
        fig, ax = plt.subplots(figsize=(4.0, 1.2), layout="constrained")
        ax.text(0.5, 0.5, "no circuit: nothing to mask", ha="center", va="center")
        ax.set_axis_off()
        return fig
    heads = sorted({(int(l), int(h)) for l, h in zip(table["layer"], table["head"])})
    m = np.zeros((len(desiderata), len(heads)))
    for i, d in enumerate(desiderata):
        sel = table[(table["desideratum"] == d) & table["selected"]]
        for l, h in zip(sel["layer"], sel["head"]):
            m[i, heads.index((int(l), int(h)))] = 1
    fig, ax = plt.subplots(figsize=(min(PAGE_WIDTH, 1.6 + 0.42 * len(heads)), 0.8 + 0.4 * len(desiderata)),
                           layout="constrained")
    ax.imshow(m, aspect="auto", cmap="Greens", vmin=0, vmax=1.3, interpolation="nearest")
    ax.set_xticks(range(len(heads)))
    ax.set_xticklabels([f"L{l}H{h}" for l, h in heads], rotation=90)
    ax.set_yticks(range(len(desiderata)))
    ax.set_yticklabels(list(desiderata))
    ax.set_xlabel("head of the circuit")
    return fig


__all__ = ["resid_maps", "faithfulness_plot", "cmap_plot", "dcm_map", "index_ticks"]
