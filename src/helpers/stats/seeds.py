"""Intervals for claims about training, with seeds (training runs) as the unit of replication.

Every seed of an arm is evaluated on the same test trials, so a (seeds, trials) table per arm.
Two sources of variation enter a claim about the training procedure: which seeds were drawn
(the spread of the per-seed accuracies) and which test trials were drawn.  The interval is a t
interval whose variance adds the two: Welch's variance of the per-seed means (seeds as the unit)
and the sampling variance over trials of the per-trial means (paired over trials for a difference
of two arms), with Satterthwaite's degrees of freedom.  The trial term also holds some of the
seeds' noise, so the sum is slightly conservative.

Why not the two-way bootstrap (:func:`helpers.stats.bootstrap.two_way_bootstrap_diff`): with the
3 seeds a book can afford per arm, resampling seeds has only 10 distinct draws and a variance
(n - 1) / n of the seeds' own, and with a normal-like percentile quantile it said "replicated" for
two equal arms about twice as often as alpha (the calibration suite); a t quantile with the
seeds' few degrees of freedom is what small samples need.
"""
from __future__ import annotations

import numpy as np
from scipy import stats as sps


def _table(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"a seeds x trials table needs shape (n_seeds, n_trials), both at least 1; got {x.shape}")
    return x


def _interval(est: float, parts: list[tuple[float, float]], level: float) -> tuple[float, float, float]:
    """``est +- t * sqrt(sum v)`` with Satterthwaite's df from ``(variance, df)`` parts."""
    v = sum(p[0] for p in parts)
    if not np.isfinite(v):
        return est, float("nan"), float("nan")
    if v <= 0:
        return est, est, est
    den = sum(p[0] ** 2 / p[1] for p in parts if p[0] > 0)
    df = v ** 2 / den
    half = float(sps.t.ppf(1 - (1 - level) / 2, df)) * np.sqrt(v)
    return est, est - half, est + half


def seed_mean_interval(x, level: float = 0.95) -> tuple[float, float, float]:
    """Grand mean of one arm's (seeds, trials) table and its interval: ``(mean, lo, hi)``; the
    interval is NaN with one seed (no spread of seeds to estimate)."""
    x = _table(x)
    S, T = x.shape
    if S < 2 or T < 2:
        return float(x.mean()), float("nan"), float("nan")
    per_seed, per_trial = x.mean(1), x.mean(0)
    return _interval(float(x.mean()), [(per_seed.var(ddof=1) / S, S - 1), (per_trial.var(ddof=1) / T, T - 1)], level)


def seed_diff_interval(a, b, level: float = 0.95) -> tuple[float, float, float]:
    """Difference of the grand means of two arms evaluated on the same trials, ``(mean(a) -
    mean(b), lo, hi)``; each arm has its own seeds (independent runs), the trials are shared
    (paired).  NaN interval when an arm has fewer than two seeds."""
    a, b = _table(a), _table(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"both arms must be evaluated on the same trials: got {a.shape[1]} and {b.shape[1]}")
    (Sa, T), Sb = a.shape, b.shape[0]
    est = float(a.mean() - b.mean())
    if min(Sa, Sb) < 2 or T < 2:
        return est, float("nan"), float("nan")
    paired = a.mean(0) - b.mean(0)
    return _interval(est, [(a.mean(1).var(ddof=1) / Sa, Sa - 1), (b.mean(1).var(ddof=1) / Sb, Sb - 1),
                           (paired.var(ddof=1) / T, T - 1)], level)
