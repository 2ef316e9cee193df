"""Summaries of ablation sweeps: per-head effects with paired bootstrap intervals (significance
Holm-corrected over the heads), where in depth a model relies on its heads, the heads Lin (2024)
names, and how well a screen ranks heads."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.stats.bootstrap import normal_interval, percentile_interval, resample_counts, resample_indices
from helpers.stats.multiplicity import bonferroni_level, holm, holm_significant
from helpers.stats.tests import t_two_sided


def effects_table(clean: np.ndarray, ablated: np.ndarray, choice: np.ndarray, n_boot: int = 1000,
                  seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """Per head: drop in accuracy and in mean logit difference toward the correct answer when the
    head is ablated, with paired bootstrap 95% percentile intervals over prompts (``acc_drop_lo``,
    ``acc_drop_hi``, ``ld_drop_lo``, ``ld_drop_hi``; the same resamples for every head).
    `ablated` is (n_layers, n_heads, batch); heads with nan (not swept) are left out.

    ``significant`` is simultaneous over the heads of the table (the book's policy: Holm for a
    table's "significant" marks): ``ld_drop_p`` is the two-sided paired t-test p-value of the
    per-prompt drops of logit difference (mean != 0), ``ld_drop_p_holm`` its Holm adjustment over
    the heads, and significant = ``ld_drop_p_holm <= alpha`` (family-wise error rate `alpha`).
    Not bootstrap p-values: they cannot go below ``1 / (n_boot + 1)``, while Holm needs
    ``alpha / n_heads`` (0.05 / 144 = 0.00035 for GPT-2) for the first head, so with 1000 resamples
    no head could ever be significant.  ``ld_drop_lo_sim`` and ``ld_drop_hi_sim`` are the matching
    simultaneous intervals (Bonferroni level ``1 - alpha / n_heads``, normal bootstrap interval
    from the same resamples, :func:`helpers.stats.bootstrap.normal_interval`); a percentile
    interval at that level would need far more resamples.  Holm (step-down) is more powerful than
    these Bonferroni intervals, so a significant head's simultaneous interval may still touch 0."""
    L, H, B = ablated.shape
    boot = resample_indices(B, n_boot, seed)
    clean_correct = (np.sign(clean) == choice).astype(float)
    clean_signed = clean * choice
    rows, drops, ld_boots = [], [], []
    for l in range(L):
        for h in range(H):
            a = ablated[l, h]
            if np.isnan(a).any():
                continue
            d_acc = clean_correct - (np.sign(a) == choice)
            d_ld = clean_signed - a * choice
            acc_lo, acc_hi = percentile_interval(d_acc[boot].mean(1))
            b_ld = d_ld[boot].mean(1)
            ld_lo, ld_hi = percentile_interval(b_ld)
            drops.append(d_ld)
            ld_boots.append(b_ld)
            rows.append({"layer": l, "head": h, "acc_drop": d_acc.mean(), "acc_drop_lo": acc_lo,
                         "acc_drop_hi": acc_hi, "ld_drop": d_ld.mean(), "ld_drop_lo": ld_lo, "ld_drop_hi": ld_hi})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    m = len(df)
    p = t_two_sided(np.stack(drops, axis=1))                           # (heads,)
    lo_sim, hi_sim = normal_interval(df["ld_drop"].to_numpy(), np.stack(ld_boots, axis=1),
                                     bonferroni_level(1 - alpha, m))
    df["ld_drop_p"] = p
    df["ld_drop_p_holm"] = holm(p)
    df["ld_drop_lo_sim"], df["ld_drop_hi_sim"] = lo_sim, hi_sim
    df["significant"] = holm_significant(p, alpha)
    return df


PAPER_HEADS_GPT2 = ((5, 7), (8, 3), (9, 3), (11, 8))   # named by Lin (2024) for fine-tuned GPT-2


def named_heads_table(effects: pd.DataFrame, heads=PAPER_HEADS_GPT2) -> pd.DataFrame:
    """The rows of an :func:`effects_table` for the named `heads`, with the rank of each head's
    drop of logit difference among all heads (1 = the largest drop) and the number of heads."""
    missing = [(l, h) for l, h in heads if not ((effects["layer"] == l) & (effects["head"] == h)).any()]
    if missing:
        raise ValueError(f"heads {missing} are not in this model's table: it has layers "
                         f"0..{effects['layer'].max()} and heads 0..{effects['head'].max()}")
    ranked = effects.assign(rank=effects["ld_drop"].rank(ascending=False, method="min").astype(int),
                            of=len(effects))
    out = ranked.set_index(["layer", "head"]).loc[list(heads)].reset_index()
    return out[["layer", "head", "ld_drop", "ld_drop_lo", "ld_drop_hi", "significant", "rank", "of"]]


def per_prompt_drops(clean: np.ndarray, ablated: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """Drop of the logit difference toward the correct answer, per head and prompt: (L, H, B)."""
    return clean[None, None, :] * choice - ablated * choice[None, None, :]


def per_prompt_accuracy_drops(clean: np.ndarray, ablated: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """Drop of correctness (1 right, 0 wrong) per head and prompt when the head is ablated: (L, H,
    B); the metric the depth verdicts' robustness is checked against (Lin reports accuracy)."""
    right = (np.sign(clean) == choice).astype(float)
    return right[None, None, :] - (np.sign(ablated) == choice[None, None, :]).astype(float)


def depth_profile(drops: np.ndarray, clean: np.ndarray | None = None, n_boot: int = 1000, seed: int = 0) -> dict:
    """Where the model's reliance on heads sits in depth, with percentile bootstrap 95% intervals
    over prompts (the same resamples for every statistic; the same `seed` and prompts give two
    models paired resamples).

    Each layer's weight is the **signed** sum of its heads' mean drops: noise has mean zero, so it
    cannot put mass where it is largest, as the positive part of the drops did (a layer whose
    noise is wide got mass from noise alone).  The statistics are ratios, so they mean something
    only when the drops add up to something: ``total_rel`` is the summed drop of all heads over the
    clean logit difference toward the correct answer (`clean`, per prompt: ``clean * choice``), and
    the ``ablation-matters`` gate of the claims asks its interval to lie above a threshold
    (:func:`helpers.claims.ablation.depth_verdicts`).  Without `clean` the gate cannot be
    evaluated (NaN), and fails closed.

    * ``centre``: the mean layer weighted by the layers' signed drops, scaled so that 0 = first
      layer and 1 = last (NaN when the summed drop is not positive);
    * ``first_layer_share``: the share of the summed drop in layer 0 (uniform: 1 / n_layers);
    * ``total``, ``total_rel``: the summed drop (logits) and its share of the clean logit
      difference; ``*_ci`` their intervals; ``boot``: (n_boot, 3) resampled centre, first-layer
      share and total_rel; ``undefined``: the share of resamples whose summed drop is not
      positive (their centre is undefined and left out of the intervals).
    """
    drops = np.asarray(drops, float)
    L, H, B = drops.shape
    flat = drops.reshape(L * H, B)
    ok = ~np.isnan(flat).any(axis=1)                      # heads not swept are left out
    counts = np.vstack([np.ones((1, B)), resample_counts(B, n_boot, seed)]) / B    # row 0: the sample
    layer_of = np.repeat(np.arange(L), H)[ok]
    head_means = counts @ flat[ok].T                      # (1 + n_boot, heads)
    w = np.zeros((len(counts), L))
    np.add.at(w.T, layer_of, head_means.T)               # (1 + n_boot, L): signed drop per layer
    total = w.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = np.where(total > 0, (w * np.arange(L)).sum(1) / total / max(L - 1, 1), np.nan)
        first = np.where(total > 0, w[:, 0] / total, np.nan)
        if clean is None:
            rel = np.full(len(counts), np.nan)
        else:
            c = counts @ np.asarray(clean, float)
            rel = np.where(c > 0, total / c, np.nan)
    boots = np.stack([centre[1:], first[1:], rel[1:]], axis=1)
    lo, hi = np.full(3, np.nan), np.full(3, np.nan)
    for j in range(3):
        if np.isfinite(boots[:, j]).any():
            lo[j], hi[j] = percentile_interval(boots[:, j], 0.95, ignore_nan=True)
    t_lo, t_hi = percentile_interval(total[1:], 0.95)
    return {"centre": float(centre[0]), "centre_ci": (float(lo[0]), float(hi[0])),
            "first_layer_share": float(first[0]), "first_ci": (float(lo[1]), float(hi[1])),
            "total": float(total[0]), "total_ci": (float(t_lo), float(t_hi)),
            "total_rel": float(rel[0]), "total_rel_ci": (float(lo[2]), float(hi[2])),
            "uniform_share": 1 / L, "n_prompts": B, "undefined": float(np.isnan(centre[1:]).mean()),
            "boot": boots}


def screen_quality(estimate: np.ndarray, exact: np.ndarray, k: int = 10) -> dict:
    """How well attribution patching ranks heads against the exact sweep."""
    from scipy.stats import spearmanr
    e, x = estimate.ravel(), exact.ravel()
    k = min(k, len(x))
    top_est = set(np.argsort(-e)[:k].tolist())
    top_exact = set(np.argsort(-x)[:k].tolist())
    rho = spearmanr(e, x).statistic
    return {"spearman": float(rho), "top_k_overlap": len(top_est & top_exact) / k, "k": k}
