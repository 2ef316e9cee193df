"""Figures of the attention analyses (chapter 4).  They take :class:`AttentionStats`-like objects
(``answer``, ``mass(types)``, ``share(types)``, ``n_layers``) and tables, and compute nothing of
the models."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from helpers.figures.style import (MAX_HEIGHT, NUMBER_TYPES, PAGE_WIDTH, TOKEN_TYPES, TYPE_COLORS, index_ticks,
                                   model_color, token_ticks)


def _layer_ticks(ax, n_layers: int, axis: str = "y", length_in: float = 5.0) -> None:
    index_ticks(ax, n_layers, length_in, axis)


def _heatmap_grid(n: int, L: int):
    """A row of `n` layer x head panels across the page, as tall as the layers need (a 30-layer
    model gets about 0.14 in per layer, a 2-layer one a minimum height): ``(fig, axes, panel width,
    panel height)`` in inches."""
    import matplotlib.pyplot as plt
    height = float(np.clip(0.14 * L + 1.5, 2.6, 6.0))
    fig, axes = plt.subplots(1, n, figsize=(PAGE_WIDTH, height), squeeze=False, layout="constrained")
    return fig, axes, (PAGE_WIDTH - 1.8) / n, height - 1.2


def number_heatmaps(stats: Mapping[str, Any]):
    """Layer x head heatmaps of the answer position's mass on number tokens, one per model, on a
    shared scale whose white point is the uniform share (red: more than uniform attention would
    give the numbers, blue: less)."""
    from matplotlib.colors import TwoSlopeNorm
    fig, axes, pw, ph = _heatmap_grid(len(stats), max(s.n_layers for s in stats.values()))
    maps = {k: s.mass(NUMBER_TYPES).mean(0) for k, s in stats.items()}
    uniform = float(np.mean([s.share(NUMBER_TYPES).mean() for s in stats.values()]))
    norm = TwoSlopeNorm(vcenter=min(max(uniform, 1e-3), 1 - 1e-3), vmin=0.0, vmax=1.0)
    for ax, (name, m) in zip(axes[0], maps.items()):
        im = ax.imshow(m, aspect="auto", cmap="RdBu_r", norm=norm, origin="lower", interpolation="nearest")
        ax.set_title(f"{name}\n(uniform: {stats[name].share(NUMBER_TYPES).mean():.0%})")
        ax.set_xlabel("head")
        index_ticks(ax, m.shape[1], pw, "x")
        _layer_ticks(ax, m.shape[0], "y", ph)
    axes[0, 0].set_ylabel("layer")
    cb = fig.colorbar(im, ax=list(axes[0]), shrink=0.9)
    cb.set_label(f"mass on numbers (white: uniform, {uniform:.0%})")
    return fig


_STACK_ORDER = ("motion numbers", "color numbers", "context word", "punctuation", "other")


def type_bars(stats: Mapping[str, Any]):
    """Per model, per layer: the answer position's attention mass per token type (mean over heads
    and prompts), stacked; the dotted line is the number tokens' uniform share."""
    import matplotlib.pyplot as plt
    n = len(stats)
    fig, axes = plt.subplots(n, 1, figsize=(PAGE_WIDTH, min(1.7 * n + 1.0, MAX_HEIGHT)), squeeze=False,
                             sharey=True)
    for ax, (name, s) in zip(axes[:, 0], stats.items()):
        m = s.answer.mean((0, 2))                                   # (layers, types)
        bottom = np.zeros(s.n_layers)
        for t in _STACK_ORDER:             # numbers at the bottom: their top meets the dotted line
            i = TOKEN_TYPES.index(t)
            ax.bar(np.arange(s.n_layers), m[:, i], bottom=bottom, color=TYPE_COLORS[t], label=t, width=0.85)
            bottom += m[:, i]
        ax.axhline(s.share(NUMBER_TYPES).mean(), color="k", ls=":", lw=0.8)
        ax.set_title(name, loc="left")
        ax.set_ylabel("mass")
        ax.set_xlim(-0.6, s.n_layers - 0.4)
        _layer_ticks(ax, s.n_layers, "x", PAGE_WIDTH - 1.0)
        ax.set_ylim(0, 1)
    axes[-1, 0].set_xlabel("layer")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, ncol=len(TOKEN_TYPES), loc="upper center", frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))
    return fig


def profile_figure(profiles: Mapping[str, pd.DataFrame]):
    """Per layer: mean-over-heads excess of mass on numbers over the uniform share (bands: 95%
    bootstrap intervals over prompts), one line per model."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for name, d in profiles.items():
        c = model_color(name)
        ax.plot(d["layer"], d["excess"], "-o", ms=3, color=c, label=name)
        ax.fill_between(d["layer"], d["lo"], d["hi"], color=c, alpha=0.2, lw=0)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("layer")
    _layer_ticks(ax, int(max(d["layer"].max() for d in profiles.values())) + 1, "x", 5.4)
    ax.set_ylabel("mass on numbers - uniform share")
    ax.legend()
    fig.tight_layout()
    return fig


def relevance_heatmaps(tables: Mapping[str, pd.DataFrame]):
    """Layer x head heatmaps of mean (relevant - irrelevant) number mass at the answer position;
    black dots: significantly positive heads (Holm-adjusted)."""
    fig, axes, pw, ph = _heatmap_grid(len(tables), max(int(t["layer"].max()) + 1 for t in tables.values()))
    maps = {k: t.pivot(index="layer", columns="head", values="relevance").to_numpy() for k, t in tables.items()}
    vmax = max(float(np.abs(m).max()) for m in maps.values()) or 1e-3
    for ax, (name, m) in zip(axes[0], maps.items()):
        im = ax.imshow(m, aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax, origin="lower",
                       interpolation="nearest")
        sig = tables[name][tables[name]["significant"]]
        ax.plot(sig["head"], sig["layer"], "k.", ms=5)
        ax.set_title(name)
        ax.set_xlabel("head")
        index_ticks(ax, m.shape[1], pw, "x")
        _layer_ticks(ax, m.shape[0], "y", ph)
    axes[0, 0].set_ylabel("layer")
    fig.colorbar(im, ax=list(axes[0]), shrink=0.9, label="mass on relevant -\nirrelevant numbers")
    return fig


def pattern_figure(pattern: np.ndarray, labels: Sequence[str], types: Sequence[str], title: str = "",
                   ax=None):
    """One head's attention pattern, query (rows) x key (columns), tokens as tick labels coloured
    by type; the last row is the answer position.

    The figure fits the page (at most :data:`PAGE_WIDTH` wide and 6.6 in tall, wider than
    tall for a long prompt); when the tokens are too many for a readable label each, the axes label
    every word (``+0.12``) at its first token instead, with a minor tick per token."""
    import matplotlib.pyplot as plt
    pattern = np.asarray(pattern, dtype=float)
    n = pattern.shape[0]
    if ax is None:
        side = float(np.clip(1.6 + 0.09 * n, 3.0, 5.4))           # the square's side, inches
        fig, ax = plt.subplots(figsize=(min(side + 2.1, PAGE_WIDTH), side + 1.2), layout="constrained")
    else:
        fig = ax.figure
        side = min(fig.get_figwidth(), fig.get_figheight()) * 0.7
    masked = np.ma.masked_where(np.triu(np.ones_like(pattern, dtype=bool), 1), pattern)
    im = ax.imshow(masked, cmap="Blues", vmin=0, vmax=max(float(pattern.max()), 1e-6), interpolation="nearest")
    colors = [TYPE_COLORS[t] if t != "other" else "#444" for t in types]
    token_ticks(ax, list(labels[:n]), side, "x", colors=colors)
    token_ticks(ax, list(labels[:n]), side, "y", colors=colors)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.7, label="attention probability")
    handles = [plt.Line2D([], [], ls="", marker="s", color=TYPE_COLORS[t], label=t) for t in TOKEN_TYPES]
    ax.legend(handles=handles, loc="upper right", frameon=True)
    return fig
