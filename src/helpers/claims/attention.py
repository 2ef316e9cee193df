"""Lin (2024)'s attention claims: first-layer heads of the scratch model attend to the numbers
(``lin-attention-numbers``); the answer position attends to the relevant stream
(``lin-attention-relevance``); from the tables of :mod:`helpers.readouts.attention`."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.claims.verdict import Verdict, alpha, claim, verdict

NUMBERS = "lin-attention-numbers"
RELEVANCE = "lin-attention-relevance"


def number_attention_verdict(table: pd.DataFrame, scratch: str = "scratch", finetuned: str = "fine-tuned",
                             difference: tuple[float, float, float] | None = None,
                             gate: str | None = None) -> Verdict:
    """``lin-attention-numbers`` on the scratch model's layer-0 head-mean excess of attention on
    numbers over the uniform share (a :func:`first_layer_number_attention` table; bootstrap
    interval over prompts).  The fine-tuned model's value and the paired scratch - fine-tuned
    `difference` are reported as evidence."""
    t = table.set_index("model")
    if scratch not in t.index:
        return verdict(NUMBERS, scratch, np.nan, np.nan, np.nan, f"No attention statistics for the {scratch!r} model.",
                       gate=gate)
    r = t.loc[scratch]

    def describe(name, row):
        return (f"{name}: layer-{int(row['layer'])} heads put {row['mass']:.1%} of the answer position's "
                f"attention on number tokens (95% CI {row['mass_lo']:.1%} to {row['mass_hi']:.1%}) against "
                f"{row['uniform']:.1%} under uniform attention, an excess of {row['excess']:+.1%} "
                f"({row['excess_lo']:+.1%} to {row['excess_hi']:+.1%}); its most number-bound head is head "
                f"{int(row['best_head'])} with {row['best_head_mass']:.1%}.")
    parts = [describe(scratch, r)]
    if finetuned in t.index:
        parts.append(describe(finetuned, t.loc[finetuned]))
    if difference is not None:
        d, lo, hi = difference
        parts.append(f"Scratch minus fine-tuned (same prompts): {d:+.1%} (95% CI {lo:+.1%} to {hi:+.1%}).")
    evidence = " ".join(parts) + f" ({int(r['n_prompts'])} test prompts.)"
    return verdict(NUMBERS, scratch, float(r["excess"]), float(r["excess_lo"]), float(r["excess_hi"]), evidence,
                   statistic="layer-0 attention on numbers minus uniform", gate=gate)


def relevance_verdict(table: pd.DataFrame, model: str, gate: str | None = None, top: int = 5) -> Verdict:
    """``lin-attention-relevance`` for `model` from its :func:`relevance_table` (per head: relevance
    and its interval simultaneous over the heads, ``lo_sim`` / ``hi_sim``).  Replicated when some
    head's relevance is material with ``lo_sim > 0``; not replicated when every head's ``hi_sim``
    lies below the material effect; the headline is the head with the largest ``lo_sim``."""
    c = claim(RELEVANCE)
    if table.empty:
        return verdict(RELEVANCE, model, np.nan, np.nan, np.nan, f"{model}: no heads were measured.", gate=gate)
    hits = table[(table["lo_sim"] > 0) & (table["relevance"] >= c.material)]
    judged = bool(np.isfinite(table["lo_sim"]).all())
    best = table.loc[table["lo_sim"].idxmax()] if judged else table.iloc[0]
    strongest = table.sort_values("relevance", ascending=False).head(top)

    def fmt(d):
        return ", ".join(f"L{int(r['layer'])}H{int(r['head'])} {r['relevance']:+.1%} "
                         f"({r['lo_sim']:+.1%} to {r['hi_sim']:+.1%})" for _, r in d.iterrows())
    n_heads, n = len(table), int(table["n_prompts"].iloc[0])
    perms = f", {int(table['n_perm'].iloc[0])} permutations of the context labels" if "n_perm" in table else ""
    evidence = (f"{model}: {len(hits)} of {n_heads} heads attend at least {c.material:.0%} more to the relevant "
                f"stream's numbers than to the irrelevant stream's with a simultaneous interval above 0 "
                f"(relevance averaged over the two contexts with equal weights; {n} prompts; intervals simultaneous "
                f"over the {n_heads} heads: the union of the max-T permutation test{perms} and the studentized bootstrap of the maximum); largest means: {fmt(strongest)}.")
    if not judged:
        status = "inconclusive"
        evidence += " Some heads have no interval (fewer than two prompts of a context): not judged."
    elif len(hits):
        status = "replicated"
    elif float(table["hi_sim"].max()) < c.material:
        status = "not replicated"
    else:
        status = "inconclusive"
    return verdict(RELEVANCE, model, float(best["relevance"]), float(best["lo_sim"]), float(best["hi_sim"]),
                   evidence, statistic=f"relevance of L{int(best['layer'])}H{int(best['head'])}", gate=gate,
                   status=status, level=1 - alpha())
