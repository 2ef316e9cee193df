"""Figures of the ablation analyses (chapter 3): layer x head heatmaps, per-layer profiles, the
attribution screen against the exact sweep."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from helpers.figures.style import model_color

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
        ax.plot(np.arange(len(v)), v, "-o", ms=3, label=name, color=model_color(name))
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
