"""Permutation (shuffle) tests: the p-value of an observed statistic against its values under
shuffles, and how many shuffles a test at level alpha needs."""
from __future__ import annotations

import math

import numpy as np

from helpers.stats.tests import welch_weighted


def permutation_p(observed: float, null, alternative: str = "greater") -> float:
    """Permutation p-value of `observed` against the statistics of the shuffles in `null`,
    counting the observed arrangement as one of them (so p is never 0):
    ``(1 + #(null >= observed)) / (len(null) + 1)`` for ``alternative="greater"`` and
    ``(1 + #(null <= observed)) / (len(null) + 1)`` for ``"less"``."""
    null = np.asarray(null, dtype=float).ravel()
    if np.isnan(null).any() or np.isnan(observed):
        raise ValueError("permutation_p needs finite statistics: the observed value or a shuffle's is nan")
    if alternative == "greater":
        k = int(np.sum(null >= observed))
    elif alternative == "less":
        k = int(np.sum(null <= observed))
    else:
        raise ValueError(f"alternative={alternative!r} is not accepted: accepted values are 'greater', 'less'")
    return (1 + k) / (len(null) + 1)


def min_shuffles(alpha: float) -> int:
    """The fewest shuffles n with which a permutation test can reach `alpha`: the smallest n with
    ``1 / (n + 1) <= alpha`` (19 at alpha = 0.05, 99 at 0.01).  With fewer, p can never be at or
    below alpha and a claim tested that way is inconclusive."""
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha={alpha!r} is not accepted: it lies in (0, 1]")
    n = max(math.ceil(1 / alpha) - 1, 0)
    while 1 / (n + 1) > alpha:                      # guard floating-point rounding of 1 / alpha
        n += 1
    while n > 0 and 1 / n <= alpha:
        n -= 1
    return n


def _welch(values: np.ndarray, member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per permutation (rows of `member`, 0/1 of length n) and column of `values` (n, m): the
    difference of the two groups' means and its Welch standard error.  (k, m) each."""
    member = np.atleast_2d(member).astype(float)
    return welch_weighted(member, values, 1.0 - member, values)


def max_t_two_groups(values, group, n_perm: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Many columns (heads), one two-group comparison each, with the family-wise error controlled
    by the max-T permutation method (Westfall & Young 1993): the group labels are permuted across
    rows (prompts), the same permutation for every column, so whatever the columns share per row
    (a prompt that moves every head) is kept, and each column's difference of means is studentized
    (Welch) so that columns with wide noise do not dominate the maximum.

    Exact under the null that each row's values do not depend on its group (exchangeable rows),
    whatever their distribution (skewed, heavy-tailed, unequal across columns) and however
    unbalanced the groups; for a null of equal means only, the studentized statistic keeps it
    valid asymptotically (Janssen 1997; Chung & Romano 2013).

    `values`: (n, m); `group`: (n,) booleans.  Returns per column ``diff`` (mean of the True
    group minus the False group's), ``se`` (Welch), ``t``, ``p_adj`` (one-sided, diff > 0:
    ``(1 + #{max_j t*_j >= t}) / (n_perm + 1)``), and ``lo``, ``hi``: intervals simultaneous over
    the columns at `level`, ``diff +- c * se`` with c the `level` quantile of ``max_j |t*_j|``; and
    ``crit`` (c), ``n_perm``; ``lo_one``, ``hi_one``: each column's own interval at `level` (the
    quantile of ``|t*|`` over every column and permutation).  NaN throughout when a group has fewer than two rows."""
    x = np.asarray(values, float)
    g = np.asarray(group, bool)
    if x.ndim != 2 or len(g) != len(x):
        raise ValueError(f"values must be (rows, columns) with one group label per row: shapes {x.shape}, {g.shape}")
    m = x.shape[1]
    if min(g.sum(), (~g).sum()) < 2:
        nan = np.full(m, np.nan)
        return {"diff": nan, "se": nan, "t": nan, "p_adj": nan, "lo": nan, "hi": nan, "crit": np.nan,
                "lo_one": nan, "hi_one": nan, "n_perm": n_perm}
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(g) for _ in range(n_perm)])

    def t_of(d, se):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(se > 0, d / np.where(se > 0, se, 1.0), 0.0)
    diff, se = _welch(x, g)
    t = t_of(diff, se)[0]
    null_t = np.concatenate([t_of(*_welch(x, perms[i:i + 256])) for i in range(0, n_perm, 256)])
    max_t, max_abs = null_t.max(1), np.abs(null_t).max(1)
    p_adj = (1 + (max_t[:, None] >= t[None, :]).sum(0)) / (n_perm + 1)
    crit = float(np.quantile(max_abs, level))
    crit_one = float(np.quantile(np.abs(null_t), level))
    return {"diff": diff[0], "se": se[0], "t": t, "p_adj": p_adj, "lo": diff[0] - crit * se[0],
            "hi": diff[0] + crit * se[0], "crit": crit, "lo_one": diff[0] - crit_one * se[0],
            "hi_one": diff[0] + crit_one * se[0], "n_perm": n_perm}
