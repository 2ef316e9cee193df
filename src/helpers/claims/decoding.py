"""Lin (2024)'s decoding claims: after fine-tuning the last layer encodes the task variables
(``lin-decoding``), single units are mixed selective (``lin-mixed-selectivity``), single heads
carry the response type (``lin-head-response-type``).  "After fine-tuning" is a paired contrast
with the same model before fine-tuning on the same trials; the response type is judged against a
decoder that knows one factor only."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from helpers.claims.verdict import Verdict, alpha, claim, verdict
from helpers.stats.bootstrap import bootstrap_means, percentile_interval
from helpers.stats.intervals import wilson_ci, z_for
from helpers.stats.multiplicity import bonferroni_level, holm
from helpers.stats.permutation import min_shuffles, permutation_p
from helpers.stats.tests import binomial_greater
from helpers.tasks.decision import DECODED, HEAD_TARGETS

DECODING, MIXED, HEADS = "lin-decoding", "lin-mixed-selectivity", "lin-head-response-type"


def decoding_verdict(correct: dict[str, dict[str, np.ndarray]], model: str = "fine-tuned",
                     before: str = "pretrained", columns: Sequence[str] = DECODED, key: str = "choice",
                     gate: str | None = None, n_boot: int = 2000, seed: int = 0) -> Verdict:
    """``lin-decoding``: `correct[m][v]` is whether the cross-validated last-layer probe of model
    `m` decoded variable `v` right on each trial (the same trials for every model).  Every variable
    must be decodable after fine-tuning (Wilson interval above 50%, simultaneous over `columns`),
    and `key` (the choice, the variable the decision needs) decoded materially better than before
    fine-tuning (paired bootstrap over trials)."""
    c = claim(DECODING)
    missing = [m for m in (model, before) if m not in correct]
    if missing:
        return verdict(DECODING, model, np.nan, np.nan, np.nan, f"No decoding results for {missing}.", gate=gate)
    level = bonferroni_level(1 - alpha(), len(columns))
    z = z_for(level)
    parts, decodable = [], []
    for v in columns:
        a, b = np.asarray(correct[model][v], bool), np.asarray(correct[before][v], bool)
        lo, hi = wilson_ci(int(a.sum()), len(a), z=z)
        decodable.append(lo > 0.5)
        parts.append(f"{v} {a.mean():.1%} ({lo:.1%} to {hi:.1%}; {before} {b.mean():.1%})")
    a, b = np.asarray(correct[model][key], float), np.asarray(correct[before][key], float)
    m, lo, hi = (float(x[0]) for x in bootstrap_means((a - b)[:, None], n_boot=n_boot, seed=seed))
    evidence = (f"Last layer, answer position, {len(a)} trials, {model} ({level:.1%} intervals, simultaneous over "
                f"{len(columns)} variables): " + "; ".join(parts) + f". {key.capitalize()} decoded {m:+.1%} better "
                f"than before fine-tuning (95% CI {lo:+.1%} to {hi:+.1%}).")
    if all(decodable) and lo > 0 and m >= c.material:
        status = "replicated"
    elif hi < c.material:
        status = "not replicated"
    else:
        status = "inconclusive"
    if not all(decodable):
        evidence += " Not every variable is decodable after fine-tuning."
    return verdict(DECODING, model, m, lo, hi, evidence, statistic=f"{key} decoding, fine-tuned minus pretrained",
                   gate=gate, status=status)


def mixed_selectivity_verdict(mixed: dict[str, float], boot_difference: np.ndarray, shuffled: Sequence[float],
                              rotated: float, model: str = "fine-tuned", before: str = "pretrained",
                              gate: str | None = None) -> Verdict:
    """``lin-mixed-selectivity``: `mixed[m]` is the fraction of model `m`'s units selective for two
    or more variables; `boot_difference` the (fine-tuned - pretrained) fraction over paired
    bootstrap resamples of the trials
    (:func:`helpers.readouts.selectivity.mixed_difference_bootstrap`); `shuffled` the fine-tuned
    model's fractions under label shuffles (the permutation test); `rotated` the fine-tuned
    model's fraction in a random rotation of its units."""
    c = claim(MIXED)
    a = alpha()
    d = mixed[model] - mixed[before]
    lo, hi = (float(x) for x in percentile_interval(np.asarray(boot_difference), 1 - a, ignore_nan=True))
    p = permutation_p(mixed[model], shuffled)
    enough = len(shuffled) >= min_shuffles(a)
    evidence = (f"{model}: {mixed[model]:.1%} of units are selective for two or more variables; {before}: "
                f"{mixed[before]:.1%}; difference {d:+.1%} (95% CI {lo:+.1%} to {hi:+.1%}, bootstrap over trials). "
                f"Label shuffles: at most {max(shuffled, default=float('nan')):.1%}, permutation p = {p:.3f} "
                f"({len(shuffled)} shuffles). A random rotation of the same units: {rotated:.1%}.")
    if not enough:
        evidence += f" {len(shuffled)} shuffles cannot reach p <= {a:g} (at least {min_shuffles(a)} are needed)."
    if p <= a and lo > 0 and d >= c.material and mixed[model] - rotated >= c.material:
        status = "replicated"
    elif hi < c.material:
        status = "not replicated"
    else:
        status = "inconclusive"
    return verdict(MIXED, model, d, lo, hi, evidence, statistic="mixed fraction, fine-tuned minus pretrained",
                   gate=gate, status=status)


def head_table_vs_baseline(df: pd.DataFrame, baseline: float) -> pd.DataFrame:
    """A :func:`helpers.readouts.heads.head_decoding` table (with pooled ``hits`` and ``n``) judged
    against `baseline`: one-sided binomial p-values, Holm over the heads (``significant``), and
    Wilson intervals simultaneous over the heads (``lo_sim``, ``hi_sim``)."""
    a = alpha()
    z = z_for(bonferroni_level(1 - a, len(df)))
    out = df.copy()
    out["baseline"] = baseline
    out["p_baseline"] = [binomial_greater(int(k), int(n), baseline) for k, n in zip(df["hits"], df["n"])]
    out["significant"] = holm(out["p_baseline"].to_numpy()) <= a
    ci = [wilson_ci(int(k), int(n), z=z) for k, n in zip(df["hits"], df["n"])]
    out["lo_sim"], out["hi_sim"] = [x[0] for x in ci], [x[1] for x in ci]
    return out


def head_verdict(results: dict[tuple[str, str], pd.DataFrame], baseline: float, model: str = "fine-tuned",
                 target: str = "response_type", gate: str | None = None) -> Verdict:
    """``lin-head-response-type``: some head of `model` decodes `target` materially better than
    `baseline` (:func:`helpers.tasks.decision.one_factor_baseline`, about 50%) with Holm over the
    heads and a simultaneous interval above the baseline; not replicated when every head's
    simultaneous interval lies below baseline + material."""
    c = claim(HEADS)
    if (model, target) not in results:
        return verdict(HEADS, model, np.nan, np.nan, np.nan, f"No head results for {model!r} and {target!r}.", gate=gate)
    parts = []
    judged = None
    for (m, t), df in results.items():
        if t != target:
            continue
        j = head_table_vs_baseline(df, baseline)
        best = j.loc[j["lo_sim"].idxmax()]
        parts.append(f"{m}: {int(j['significant'].sum())} of {len(j)} heads above the baseline (Holm), best "
                     f"L{int(best['layer'])}H{int(best['head'])} {best['hits'] / best['n']:.1%} (simultaneous CI "
                     f"{best['lo_sim']:.1%}-{best['hi_sim']:.1%})")
        if m == model:
            judged = (j, best)
    j, best = judged
    evidence = (f"{HEAD_TARGETS.get(target, target)} against a decoder that knows one factor only "
                f"({baseline:.1%}; the majority class alone is {best['chance']:.1%}): " + "; ".join(parts) + ".")
    acc = j["hits"] / j["n"]
    if (j["significant"] & (acc - baseline >= c.material)).any():
        status = "replicated"
    elif (j["hi_sim"] < baseline + c.material).all():
        status = "not replicated"
    else:
        status = "inconclusive"
    value = float(best["hits"] / best["n"] - baseline)
    return verdict(HEADS, model, value, float(best["lo_sim"] - baseline), float(best["hi_sim"] - baseline), evidence,
                   statistic=f"L{int(best['layer'])}H{int(best['head'])} accuracy minus the one-factor baseline",
                   gate=gate, status=status, level=bonferroni_level(1 - alpha(), len(j)))
