"""Lin (2024)'s attention claims: first-layer heads of the scratch model attend to the numbers; the
answer position attends to the relevant stream (tables of :mod:`helpers.readouts.attention`)."""
from __future__ import annotations

import pandas as pd

MARGIN = 0.02   # smallest attention shift (share of a head's mass) that counts as an effect


def number_attention_verdict(table: pd.DataFrame, scratch: str = "scratch", finetuned: str = "fine-tuned",
                             difference: tuple[float, float, float] | None = None,
                             margin: float = MARGIN) -> tuple[str, str]:
    """Claim (a): the scratch model's first-layer heads attend to the numbers.

    The test is on the scratch model's layer-0 head-mean excess of mass on numbers over the
    uniform share (bootstrap interval over prompts): **replicated** when the whole interval lies at
    or above `margin` (confidently a material excess, not a rounding-size one); **not replicated**
    when the whole interval lies below `margin` (confidently no material excess); **inconclusive**
    when the interval straddles `margin`.  The fine-tuned model's value and the paired scratch -
    fine-tuned `difference` are reported as evidence."""
    t = table.set_index("model")
    if scratch not in t.index:
        return "inconclusive", f"No attention statistics for the {scratch!r} model."
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
    evidence = " ".join(parts) + (f" ({int(r['n_prompts'])} test prompts; an excess counts from "
                                  f"{margin:.0%} of the attention mass.)")
    if r["excess_lo"] >= margin:
        return "replicated", evidence
    if r["excess_hi"] < margin:
        return "not replicated", evidence
    return "inconclusive", evidence


def relevance_verdict(table: pd.DataFrame, model: str = "", margin: float = MARGIN, top: int = 5) -> tuple[str, str]:
    """Claim (b): the answer position attends more to the relevant stream's numbers.

    **Replicated** when at least one head's relevance is significantly positive (Holm-adjusted, see
    :func:`relevance_table`) and at least `margin` on average; **not replicated** when every head's
    interval lies below `margin` (no head moves even `margin` of its attention toward the relevant
    numbers); **inconclusive** otherwise."""
    who = f"{model}: " if model else ""
    if table.empty:
        return "inconclusive", f"{who}no heads were measured."
    hits = table[table["significant"] & (table["relevance"] >= margin)].sort_values("relevance", ascending=False)
    best = table.sort_values("relevance", ascending=False).head(top)

    def fmt(d):
        return ", ".join(f"L{int(r['layer'])}H{int(r['head'])} {r['relevance']:+.1%} "
                         f"({r['lo']:+.1%} to {r['hi']:+.1%})" for _, r in d.iterrows())
    n_heads, n = len(table), int(table["n_prompts"].iloc[0])
    n_sig = int(table["significant"].sum())
    head = (f"{who}{n_sig} of {n_heads} heads attend significantly more to the relevant stream's numbers "
            f"than to the irrelevant stream's (Holm-adjusted over heads, {n} prompts), {len(hits)} of them by "
            f"at least {margin:.0%} of their attention")
    if len(hits):
        return "replicated", head + f"; strongest: {fmt(hits.head(top))}."
    evidence = head + f"; largest means: {fmt(best)}."
    if float(table["hi"].max()) < margin:
        return "not replicated", evidence + f" Every head's 95% interval lies below {margin:.0%}."
    return "inconclusive", evidence
