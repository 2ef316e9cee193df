"""Lin (2024)'s decoding claims: the last layer encodes the task variables, units show mixed
selectivity, single heads carry the response type (tables of :mod:`helpers.readouts`)."""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from helpers.readouts.selectivity import mixed_summary
from helpers.tasks.decision import DECODED, HEAD_TARGETS

MIXED_MARGIN = 0.05   # how much more mixed than before fine-tuning / a random basis counts


MIN_MIXED_FRACTION = 0.10


def decoding_verdict(by_layer: pd.DataFrame, model: str = "fine-tuned", before: str = "pretrained",
                     columns=DECODED) -> tuple[str, str]:
    """Lin (2024): after fine-tuning, the last layer's states encode the task variables.  Uses the
    last layer at the answer position (a ``decode_by_layer`` table with a ``model`` column).  A
    variable is *decodable* when its 95% CI lies above 0.5 and its accuracy above the shuffled
    mean.  Replicated: all of `columns` decodable in `model`; not replicated: none; inconclusive
    otherwise.  The evidence also gives the model before fine-tuning (`before`)."""
    def last(m):
        d = by_layer[by_layer["model"] == m]
        return d[d["layer"] == d["layer"].max()].set_index("variable") if len(d) else None
    ft, pre = last(model), last(before)
    if ft is None:
        return "inconclusive", f"No decoding results for the {model!r} model."
    ok, parts = [], []
    for v in columns:
        r = ft.loc[v]
        ok.append(bool(r.lo > 0.5 and r.accuracy > r.shuffled_accuracy))
        s = (f"{v} {r.accuracy:.1%} (95% CI {r.lo:.1%}-{r.hi:.1%}, shuffled {r.shuffled_accuracy:.1%}")
        if pre is not None:
            s += f"; {before} {pre.loc[v].accuracy:.1%}"
        parts.append(s + ")")
    evidence = (f"Last layer, answer position, {model}: " + "; ".join(parts) + ".")
    if all(ok):
        return "replicated", evidence
    if not any(ok):
        return "not replicated", evidence
    return "inconclusive", evidence


def mixed_selectivity_verdict(tables: dict[str, pd.DataFrame], model: str = "fine-tuned",
                              shuffled_mixed: Sequence[float] | None = None,
                              min_fraction: float = MIN_MIXED_FRACTION, before: str = "pretrained",
                              rotated: float | None = None, margin: float = MIXED_MARGIN) -> tuple[str, str]:
    """Lin (2024): *after fine-tuning*, single units encode several task variables.  `tables` maps
    a model name to its :func:`mixed_selectivity` table; `shuffled_mixed` are the mixed fractions
    of the individual shuffles of `model` (default: the table's shuffled mean); `rotated` is the
    mixed fraction of `model` in a random rotation of its units.

    Not replicated: the fraction of units selective for >= 2 variables does not exceed every
    shuffle.  Replicated: it exceeds every shuffle, is at least `min_fraction`, and exceeds by
    `margin` both the model before fine-tuning (`before`, when given) and the random-rotation
    reference (when given) -- otherwise the mixing is not something fine-tuning produced, or not
    something about single units, and the verdict is inconclusive."""
    if model not in tables:
        return "inconclusive", f"No selectivity results for the {model!r} model."
    s = mixed_summary(tables[model])
    null = max(shuffled_mixed) if shuffled_mixed is not None and len(shuffled_mixed) else s["shuffled_mean"]
    parts = [f"{model}: {s['mixed']:.1%} of units are selective for two or more variables "
             f"(label shuffles: at most {null:.1%})"]
    for m, t in tables.items():
        if m != model:
            parts.append(f"{m}: {mixed_summary(t)['mixed']:.1%}")
    evidence = "; ".join(parts) + "."
    if s["mixed"] <= null:
        return "not replicated", evidence
    if s["mixed"] < min_fraction:
        return "inconclusive", evidence + f" (above the shuffles but below {min_fraction:.0%})"
    if before in tables and s["mixed"] - mixed_summary(tables[before])["mixed"] < margin:
        return "inconclusive", evidence + (f" Units were as mixed before fine-tuning ({before}, within "
                                           f"{margin:.0%}): mixing is not something fine-tuning produced here.")
    if rotated is not None and s["mixed"] - rotated < margin:
        return "inconclusive", evidence + (f" A random rotation of the same units is as mixed ({rotated:.1%}, "
                                           f"within {margin:.0%}): this is not a property of single units.")
    return "replicated", evidence


def head_verdict(results: dict[tuple[str, str], pd.DataFrame], model: str = "fine-tuned",
                 target: str = "response_type") -> tuple[str, str]:
    """Lin (2024): single heads of the fine-tuned model carry the response type.  Replicated when
    at least one head of `model` decodes `target` significantly above the majority-class rate
    (binomial test, Benjamini-Hochberg over heads); not replicated otherwise.  The evidence gives
    every model's best head and count of significant heads."""
    if (model, target) not in results:
        return "inconclusive", f"No head results for {model!r} and {target!r}."
    parts = []
    for (m, t), df in results.items():
        if t != target:
            continue
        best = df.loc[df["accuracy"].idxmax()]
        parts.append(f"{m}: {int(df['significant'].sum())} of {len(df)} heads above chance, best "
                     f"L{int(best['layer'])}H{int(best['head'])} {best['accuracy']:.1%} "
                     f"(95% CI {best['lo']:.1%}-{best['hi']:.1%}; chance {best['chance']:.1%})")
    evidence = f"{HEAD_TARGETS.get(target, target)}: " + "; ".join(parts) + "."
    return ("replicated" if results[(model, target)]["significant"].any() else "not replicated"), evidence
