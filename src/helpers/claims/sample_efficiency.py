"""Lin (2024): the fine-tuned model needs far fewer training trials than the same architecture
trained from scratch (claim ``lin-sample-efficiency`` of ``claims.yaml``).

The input is every learning-curve run's per-trial correctness on the *shared* test set (a long
table: arm, n_train, seed, trial, correct).  The two arms are scored on the same trials, so the
difference is paired over trials.  The claim is about the training procedure, so seeds are its
unit: with at least two seeds per arm the intervals are t intervals with the seeds' spread and the
trials' (:mod:`helpers.stats.seeds`); with one seed they are the paired bootstrap over trials,
shown but not judged (the claim's ``seeds`` in ``claims.yaml``: with fewer seeds it is
inconclusive).  Intervals are simultaneous over the training-set sizes (Bonferroni).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.claims.verdict import Verdict, alpha, claim, verdict
from helpers.stats.bootstrap import two_way_bootstrap_diff, two_way_bootstrap_means
from helpers.stats.multiplicity import bonferroni_level
from helpers.stats.seeds import seed_diff_interval, seed_mean_interval

ID = "lin-sample-efficiency"
N_BOOT = 2000


def _matrix(d: pd.DataFrame) -> np.ndarray:
    """(seeds, trials) correctness of one arm at one N, trials in test-set order."""
    m = d.pivot_table(index="seed", columns="trial", values="correct", aggfunc="first")
    return m.to_numpy(dtype=float)


def sample_efficiency_table(correct: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Per N: each arm's accuracy (mean over seeds and trials) with its interval, and the
    fine-tuned minus scratch difference with its interval; all intervals simultaneous over the
    sizes at level ``1 - alpha`` of ``claims.yaml``.  Columns: n_train, seeds, fine-tuned, ft_lo,
    ft_hi, scratch, sc_lo, sc_hi, difference, diff_lo, diff_hi, level."""
    sizes = sorted(set(correct["n_train"]))
    both = [n for n in sizes if {"fine-tuned", "scratch"} <= set(correct.loc[correct["n_train"] == n, "arm"])]
    level = bonferroni_level(1 - alpha(), max(len(both), 1))
    rows = []
    for n in both:
        d = correct[correct["n_train"] == n]
        ft, sc = _matrix(d[d["arm"] == "fine-tuned"]), _matrix(d[d["arm"] == "scratch"])
        if ft.shape[1] != sc.shape[1]:
            raise ValueError(f"N={n}: the arms were scored on different test sets ({ft.shape[1]} vs {sc.shape[1]} trials)")
        if min(len(ft), len(sc)) >= 2:          # seeds as the unit
            f, f_lo, f_hi = seed_mean_interval(ft, level)
            s, s_lo, s_hi = seed_mean_interval(sc, level)
            diff, lo, hi = seed_diff_interval(ft, sc, level)
        else:                                   # one seed: the trials' bootstrap, shown, not judged
            f, f_lo, f_hi = two_way_bootstrap_means(ft[:1], n_boot=n_boot, seed=seed, level=level)
            s, s_lo, s_hi = two_way_bootstrap_means(sc[:1], n_boot=n_boot, seed=seed, level=level)
            diff, lo, hi = two_way_bootstrap_diff(ft[:1], sc[:1], n_boot=n_boot, seed=seed, level=level)
        rows.append({"n_train": int(n), "seeds": int(min(len(ft), len(sc))), "fine-tuned": f, "ft_lo": f_lo,
                     "ft_hi": f_hi, "scratch": s, "sc_lo": s_lo, "sc_hi": s_hi, "difference": diff,
                     "diff_lo": lo, "diff_hi": hi, "level": level})
    return pd.DataFrame(rows)


def convergence_gate(curves: pd.DataFrame) -> str | None:
    """The ``converged`` gate: None when every run of the learning curves stopped early (its
    validation loss stopped improving); otherwise the runs that hit the step cap."""
    if "converged" not in curves:
        return "the runs do not report whether they converged (trained before early stopping existed)"
    capped = curves[~curves["converged"].astype(bool)]
    if capped.empty:
        return None
    runs = ", ".join(f"{r.arm} N={int(r.n_train)} seed={int(r.seed)}" for r in capped.itertuples())
    return f"{len(capped)} of {len(curves)} runs hit the step cap before their validation loss stopped improving ({runs})"


def sample_efficiency_verdict(correct: pd.DataFrame, curves: pd.DataFrame | None = None,
                              n_boot: int = N_BOOT, seed: int = 0, claim_id: str = ID) -> Verdict:
    """The verdict on ``lin-sample-efficiency`` (criterion in ``claims.yaml``), or on `claim_id`, a
    claim with the same criterion (``lin-et-sample-efficiency``: the question asked of entity
    tracking in chapter 9).  `correct` is the long per-trial table (see the module docstring);
    `curves` (one row per run, with ``converged``) gives the convergence gate, which fails
    (closed) when `curves` is None.  With fewer seeds per arm and size than the claim's
    ``seeds``, the verdict is inconclusive and says how many it rests on."""
    c = claim(claim_id)
    t = sample_efficiency_table(correct, n_boot, seed)
    gate = convergence_gate(curves) if curves is not None else \
        "whether the runs converged was not given (the learning curves are missing): not judged"
    sizes = sorted(set(correct["n_train"])) if len(correct) else []
    if t.empty:
        return verdict(c.id, "fine-tuned vs scratch", np.nan, np.nan, np.nan,
                       "Both arms are needed at the same training-set sizes.", gate=gate, status="inconclusive")
    unpaired = [n for n in sizes if n not in set(t["n_train"])]
    better = t[(t["diff_lo"] > 0) & (t["difference"] >= c.material)]["n_train"].tolist()
    worse = t[t["diff_hi"] < 0]["n_train"].tolist()
    absent = bool((t["diff_hi"] < c.material).all())

    def first_reaching(lo_col):
        hit = t[t[lo_col] >= c.threshold]["n_train"]
        return int(hit.min()) if len(hit) else None
    n_ft, n_sc = first_reaching("ft_lo"), first_reaching("sc_lo")
    faster = n_ft is not None and (n_sc is None or n_ft < n_sc)
    seeds = int(t["seeds"].min())
    need = int(c.seeds or 1)
    if seeds < need:
        status = "inconclusive"
    elif better and not worse and faster:
        status = "replicated"
    elif absent:
        status = "not replicated"
    else:
        status = "inconclusive"
    head = t.loc[t["difference"].idxmax()]
    unit = (f"{seeds} seeds per arm and size, seeds as the unit (t intervals with the seeds' spread and the test "
            f"trials')" if seeds > 1 else
            "one seed per arm and size; intervals resample test trials")
    if seeds < need:
        unit += (f". The claim is about training, so it is decided only with at least {need} seeds per arm and size: "
                 f"with {'one seed' if seeds == 1 else f'{seeds} seeds'} it is inconclusive, whatever the runs show")
    parts = [f"At N = {int(r.n_train)}: fine-tuned {r['fine-tuned']:.1%} ({r.ft_lo:.1%} to {r.ft_hi:.1%}), "
             f"scratch {r['scratch']:.1%} ({r.sc_lo:.1%} to {r.sc_hi:.1%}), difference {r.difference:+.1%} "
             f"({r.diff_lo:+.1%} to {r.diff_hi:+.1%})." for _, r in t.iterrows()]
    reach = (f"The fine-tuned arm is confidently at {c.threshold:.0%} (lower interval end) from N = {n_ft}"
             if n_ft else f"The fine-tuned arm is never confidently at {c.threshold:.0%} in the sizes tried") + "; " + (
             f"scratch from N = {n_sc}." if n_sc else "scratch never is.")
    evidence = (f"Intervals are {t['level'].iloc[0]:.1%} (simultaneous 95% over {len(t)} sizes); {unit}. "
                + " ".join(parts) + " " + reach)
    if worse:
        evidence += f" The fine-tuned arm is significantly worse at N = {', '.join(map(str, worse))}."
    if unpaired:
        evidence += f" Sizes with one arm only, not compared: N = {', '.join(map(str, unpaired))}."
    return verdict(c.id, "fine-tuned vs scratch", float(head.difference), float(head.diff_lo), float(head.diff_hi),
                   evidence, statistic=f"largest accuracy difference (at N = {int(head.n_train)})",
                   gate=gate, status=status, level=float(t["level"].iloc[0]), seeds=seeds)


def correct_table(runs) -> pd.DataFrame:
    """The long per-trial table from finished runs (objects with ``config`` and
    ``predictions('test')``, e.g. :class:`helpers.training.runs.Run`)."""
    parts = []
    for run in runs:
        p = run.predictions("test")
        parts.append(pd.DataFrame({"arm": run.config.arm, "n_train": run.config.n_train, "seed": run.config.seed,
                                   "trial": np.arange(len(p)), "correct": p["correct"].to_numpy(dtype=bool)}))
    return pd.concat(parts, ignore_index=True)
