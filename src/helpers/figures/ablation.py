"""Figures of the ablation analyses (chapter 3): layer x head heatmaps, per-layer profiles, the
attribution screen against the exact sweep."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from helpers.figures.style import MAX_HEIGHT, PAGE_WIDTH, index_ticks, model_color


def head_heatmaps(maps: Mapping[str, np.ndarray] | Mapping[str, Mapping[str, np.ndarray]], title: str,
                  marks: Sequence[tuple[int, int]] = (), cmap: str = "RdBu_r", symmetric: bool = True):
    """Layer x head heatmaps, one panel per model, in ONE figure.

    `maps` maps a panel title to a (layers, heads) array: one row of panels on a shared colour
    scale.  Or it maps a row name (e.g. an ablation kind) to such a dict: one row of panels per row
    name, each row on its own colour scale (zero-ablation drops can be ten times mean-ablation's)
    with its own colour bar.  `marks` are (layer, head) pairs to outline (e.g. the heads the paper
    names)."""
    rows = maps if all(isinstance(v, Mapping) for v in maps.values()) else {"": maps}
    n_rows = len(rows)
    n_cols = max(len(r) for r in rows.values())
    L = max(m.shape[0] for r in rows.values() for m in r.values())
    row_h = min(float(np.clip(0.11 * L + 1.0, 2.2, 4.2)), (MAX_HEIGHT - 0.2) / n_rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(PAGE_WIDTH, row_h * n_rows + 0.2), squeeze=False,
                             layout="constrained")
    panel_w, panel_h = (PAGE_WIDTH - 1.6) / n_cols, row_h - 0.8
    for axrow, (row_name, row) in zip(axes, rows.items()):
        vmax = max(float(np.nanmax(np.abs(m))) for m in row.values()) or 1.0
        vmin = -vmax if symmetric else min(float(np.nanmin(m)) for m in row.values())
        for ax, (name, m) in zip(axrow, row.items()):
            im = ax.imshow(m, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, origin="lower",
                           interpolation="nearest")
            ax.set_title(name)
            ax.set_xlabel("head")
            ax.set_ylabel("layer")
            index_ticks(ax, m.shape[1], panel_w, "x")
            index_ticks(ax, m.shape[0], panel_h, "y")
            for (l, h) in marks:
                if l < m.shape[0] and h < m.shape[1]:
                    ax.add_patch(plt.Rectangle((h - 0.5, l - 0.5), 1, 1, fill=False, edgecolor="k", lw=1.5))
        for ax in axrow[len(row):]:
            ax.set_axis_off()
        label = f"{title}\n({row_name})" if row_name else title
        fig.colorbar(im, ax=list(axrow), shrink=0.9, label=label)
    return fig


def layer_profile(profiles: dict[str, np.ndarray], ylabel: str):
    """One line per model: a per-layer quantity (e.g. summed drop of its heads)."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, v in profiles.items():
        ax.plot(np.arange(len(v)), v, "-o", ms=3, label=name, color=model_color(name))
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    return fig


def screen_scatter(estimate: np.ndarray, exact: np.ndarray, name: str):
    """Attribution-patching estimate against the exact ablation effect, one point per head."""
    fig, ax = plt.subplots(figsize=(4.4, 3.8))
    ax.scatter(exact.ravel(), estimate.ravel(), s=10, alpha=0.6)
    lim = [min(exact.min(), estimate.min()), max(exact.max(), estimate.max())]
    ax.plot(lim, lim, "k:", lw=0.8)
    ax.set_xlabel("exact drop of logit difference")
    ax.set_ylabel("attribution-patching estimate")
    ax.set_title(name)
    fig.tight_layout()
    return fig
