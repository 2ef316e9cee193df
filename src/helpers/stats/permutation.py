"""Permutation (shuffle) tests: the p-value of an observed statistic against its values under
shuffles, and how many shuffles a test at level alpha needs."""
from __future__ import annotations

import math

import numpy as np


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
