"""Figures of the task (chapter 1): how tokenizers split a prompt, the balance of the trials."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

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
