"""Figures of the task (chapter 1): how tokenizers split a prompt, the balance of the trials."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.figures.style import PAGE_WIDTH

TOKEN_TYPE_COLORS = ["#e8f0fe", "#fde8e8", "#e6f4ea", "#fef7e0"]


def _wrap(widths: Sequence[float], line: float, gap: float) -> list[list[int]]:
    """Greedy line breaks: token indices per line so that no line is longer than `line`."""
    lines: list[list[int]] = [[]]
    x = 0.0
    for i, w in enumerate(widths):
        if lines[-1] and x + w > line:
            lines.append([])
            x = 0.0
        lines[-1].append(i)
        x += w + gap
    return lines


def tokenization(prompt: str, tokenizations: dict[str, list[str]], width: float = PAGE_WIDTH,
                 fontsize: float = 9.0):
    """One block of coloured boxes per tokenizer, one box per token (alternately shaded), the boxes
    wrapped onto as many lines as the page's width needs, so that a long prompt (SmolLM2 writes every
    digit as a token) keeps its labels at `fontsize` points."""
    char = 0.6 * fontsize / 72                       # width of a monospace character, inches
    pad, gap, row, title = 0.06, 0.035, 0.30, 0.30
    blocks = []
    for name, toks in tokenizations.items():
        shown = [t.replace(" ", "\u2423") for t in toks]
        widths = [max(len(t), 1) * char + 2 * pad for t in shown]
        blocks.append((name, shown, widths, _wrap(widths, width, gap)))
    height = sum(title + row * len(lines) + 0.12 for *_, lines in blocks)
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)                          # inches from the top
    y = 0.0
    for name, shown, widths, lines in blocks:
        ax.text(0, y + title * 0.55, f"{name}: {len(shown)} tokens", ha="left", va="center",
                fontsize=fontsize + 1)
        y += title
        for line in lines:
            x = 0.0
            for i in line:
                ax.add_patch(plt.Rectangle((x, y + 0.03), widths[i], row - 0.06,
                                           facecolor=TOKEN_TYPE_COLORS[i % 2 * 2], edgecolor="#555",
                                           linewidth=0.5))
                ax.text(x + widths[i] / 2, y + row / 2, shown[i], ha="center", va="center",
                        fontsize=fontsize, family="monospace")
                x += widths[i] + gap
            y += row
        y += 0.12
    return fig


def balance(df: pd.DataFrame, columns: Sequence[str]):
    """Bar chart of the share of each value of each latent variable."""
    fig, axes = plt.subplots(1, len(columns), figsize=(min(2.2 * len(columns), PAGE_WIDTH), 2.8))
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
