"""The UMAP figure of chapter 5: models as columns, colouring variables as rows."""
from __future__ import annotations

import numpy as np
import pandas as pd

UMAP_ROWS = (("context", "context"), ("choice", "choice"),
             ("relevant_coh", "relevant coherence"), ("irrelevant_coh", "irrelevant coherence"))


def umap_figure(embeddings: dict[str, np.ndarray], variables: pd.DataFrame, rows=UMAP_ROWS, size: float = 2.6):
    """UMAP scatter panels: models as columns, colouring variables as rows (context, choice,
    signed relevant and irrelevant coherence)."""
    import matplotlib.pyplot as plt
    names = list(embeddings)
    fig, axes = plt.subplots(len(rows), len(names), figsize=(size * len(names) + 1.2, size * len(rows)),
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
                    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2)
            else:
                lim = float(np.abs(values).max()) or 1.0
                sc = ax.scatter(E[:, 0], E[:, 1], s=7, c=values, cmap="coolwarm", vmin=-lim, vmax=lim,
                                linewidths=0)
                if j == len(names) - 1:
                    fig.colorbar(sc, ax=ax, fraction=0.05, pad=0.02)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=10)
            if j == 0:
                ax.set_ylabel(title, fontsize=9)
    fig.tight_layout()
    return fig
