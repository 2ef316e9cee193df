"""Figures of the attention analyses (chapter 4).  They take :class:`AttentionStats`-like objects
(``answer``, ``mass(types)``, ``share(types)``, ``n_layers``) and tables, and compute nothing of
the models."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from helpers.figures.style import NUMBER_TYPES, TOKEN_TYPES, TYPE_COLORS, model_color


def _layer_ticks(ax, n_layers: int, axis: str = "y") -> None:
    step = max(1, int(np.ceil(n_layers / 15)))
    (ax.set_yticks if axis == "y" else ax.set_xticks)(range(0, n_layers, step))


def number_heatmaps(stats: Mapping[str, Any]):
    """Layer x head heatmaps of the answer position's mass on number tokens, one per model, on a
    shared scale whose white point is the uniform share (red: more than uniform attention would
    give the numbers, blue: less)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm
    n = len(stats)
    L = max(s.n_layers for s in stats.values())
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n + 1.4, min(0.2 * L + 2.2, 9.0)), squeeze=False)
    maps = {k: s.mass(NUMBER_TYPES).mean(0) for k, s in stats.items()}
    uniform = float(np.mean([s.share(NUMBER_TYPES).mean() for s in stats.values()]))
    norm = TwoSlopeNorm(vcenter=min(max(uniform, 1e-3), 1 - 1e-3), vmin=0.0, vmax=1.0)
    for ax, (name, m) in zip(axes[0], maps.items()):
        im = ax.imshow(m, aspect="auto", cmap="RdBu_r", norm=norm, origin="lower")
        ax.set_title(f"{name}\n(uniform: {stats[name].share(NUMBER_TYPES).mean():.0%})", fontsize=9)
        ax.set_xlabel("head")
        ax.set_xticks(range(m.shape[1]))
        _layer_ticks(ax, m.shape[0])
        ax.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("layer")
    cb = fig.colorbar(im, ax=list(axes[0]), shrink=0.85)
    cb.set_label(f"attention mass on numbers (white: uniform, {uniform:.0%})", fontsize=8)
    return fig


_STACK_ORDER = ("motion numbers", "color numbers", "context word", "punctuation", "other")


def type_bars(stats: Mapping[str, Any]):
    """Per model, per layer: the answer position's attention mass per token type (mean over heads
    and prompts), stacked; the dotted line is the number tokens' uniform share."""
    import matplotlib.pyplot as plt
    n = len(stats)
    fig, axes = plt.subplots(n, 1, figsize=(7.5, 2.0 * n + 0.9), squeeze=False, sharey=True)
    for ax, (name, s) in zip(axes[:, 0], stats.items()):
        m = s.answer.mean((0, 2))                                   # (layers, types)
        bottom = np.zeros(s.n_layers)
        for t in _STACK_ORDER:             # numbers at the bottom: their top meets the dotted line
            i = TOKEN_TYPES.index(t)
            ax.bar(np.arange(s.n_layers), m[:, i], bottom=bottom, color=TYPE_COLORS[t], label=t, width=0.85)
            bottom += m[:, i]
        ax.axhline(s.share(NUMBER_TYPES).mean(), color="k", ls=":", lw=0.8)
        ax.set_title(name, fontsize=9, loc="left")
        ax.set_ylabel("mass")
        ax.set_xlim(-0.6, s.n_layers - 0.4)
        _layer_ticks(ax, s.n_layers, axis="x")
        ax.set_ylim(0, 1)
    axes[-1, 0].set_xlabel("layer")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, ncol=len(TOKEN_TYPES), loc="upper center", frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
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
    _layer_ticks(ax, int(max(d["layer"].max() for d in profiles.values())) + 1, axis="x")
    ax.set_ylabel("mass on numbers - uniform share")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def relevance_heatmaps(tables: Mapping[str, pd.DataFrame]):
    """Layer x head heatmaps of mean (relevant - irrelevant) number mass at the answer position;
    black dots: significantly positive heads (Holm-adjusted)."""
    import matplotlib.pyplot as plt
    n = len(tables)
    L = max(int(t["layer"].max()) + 1 for t in tables.values())
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n + 1.2, min(0.2 * L + 2.0, 9.0)), squeeze=False)
    maps = {k: t.pivot(index="layer", columns="head", values="relevance").to_numpy() for k, t in tables.items()}
    vmax = max(float(np.abs(m).max()) for m in maps.values()) or 1e-3
    for ax, (name, m) in zip(axes[0], maps.items()):
        im = ax.imshow(m, aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax, origin="lower")
        sig = tables[name][tables[name]["significant"]]
        ax.plot(sig["head"], sig["layer"], "k.", ms=5)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("head")
        ax.set_xticks(range(m.shape[1]))
        _layer_ticks(ax, m.shape[0])
        ax.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("layer")
    fig.colorbar(im, ax=list(axes[0]), shrink=0.85, label="mass on relevant - irrelevant numbers")
    return fig


def pattern_figure(pattern: np.ndarray, labels: Sequence[str], types: Sequence[str], title: str = "",
                   ax=None):
    """One head's attention pattern, query (rows) x key (columns), tokens as tick labels coloured
    by type; the last row is the answer position."""
    import matplotlib.pyplot as plt
    pattern = np.asarray(pattern, dtype=float)
    n = pattern.shape[0]
    if ax is None:
        size = min(3.0 + 0.13 * n, 10.0)
        fig, ax = plt.subplots(figsize=(size + 1.0, size))
    else:
        fig = ax.figure
    masked = np.ma.masked_where(np.triu(np.ones_like(pattern, dtype=bool), 1), pattern)
    im = ax.imshow(masked, cmap="Blues", vmin=0, vmax=max(float(pattern.max()), 1e-6))
    fs = 7 if n <= 30 else 5
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(labels[:n], rotation=90, fontsize=fs, family="monospace")
    ax.set_yticklabels(labels[:n], fontsize=fs, family="monospace")
    for tick, t in zip(ax.get_xticklabels(), types):
        tick.set_color(TYPE_COLORS[t] if t != "other" else "#444")
    for tick, t in zip(ax.get_yticklabels(), types):
        tick.set_color(TYPE_COLORS[t] if t != "other" else "#444")
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.7, label="attention probability")
    handles = [plt.Line2D([], [], ls="", marker="s", color=TYPE_COLORS[t], label=t) for t in TOKEN_TYPES]
    ax.legend(handles=handles, fontsize=6, loc="upper right", frameon=True)
    return fig
