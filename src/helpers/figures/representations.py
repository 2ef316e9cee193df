"""The UMAP figure of chapter 5: models as columns, colouring variables as rows."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.figures.style import PAGE_WIDTH

UMAP_ROWS = (("context", "context"), ("choice", "choice"),
             ("relevant_coh", "relevant coherence"), ("irrelevant_coh", "irrelevant coherence"))


def umap_figure(embeddings: dict[str, np.ndarray], variables: pd.DataFrame, rows=UMAP_ROWS,
                size: float | None = None):
    """UMAP scatter panels: models as columns, colouring variables as rows (context, choice,
    signed relevant and irrelevant coherence).  Panels are `size` inches square; by default as
    large as the page's width allows (at most 2.4 in)."""
    import matplotlib.pyplot as plt
    names = list(embeddings)
    if size is None:
        size = min(2.4, (PAGE_WIDTH - 1.4) / len(names))
    fig, axes = plt.subplots(len(rows), len(names), figsize=(size * len(names) + 1.4, size * len(rows)),
                             squeeze=False)
    for i, (col, title) in enumerate(rows):
        values = variables[col].to_numpy()
        for j, name in enumerate(names):
            ax = axes[i, j]
            E = embeddings[name]
            if col in ("context", "choice"):
                words = {"context": ("motion", "color"), "choice": ("left", "right")}[col]
                for v, colour in ((0, "#1b9e77"), (1, "#d95f02")):
                    m = values == v
                    ax.scatter(E[m, 0], E[m, 1], s=7, color=colour, alpha=0.8, label=words[v], linewidths=0)
                if j == len(names) - 1:
                    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2, handletextpad=0.2,
                              borderaxespad=0.3)
            else:
                lim = float(np.abs(values).max()) or 1.0
                sc = ax.scatter(E[:, 0], E[:, 1], s=7, c=values, cmap="coolwarm", vmin=-lim, vmax=lim,
                                linewidths=0)
                if j == len(names) - 1:
                    fig.colorbar(sc, ax=ax, fraction=0.05, pad=0.02)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name)
            if j == 0:
                ax.set_ylabel(title)
    fig.tight_layout()
    return fig
