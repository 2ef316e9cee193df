"""Intervals for binomial proportions: Wilson's score interval and Newcombe's interval for the
difference of two independent proportions (built from the two Wilson intervals)."""
from __future__ import annotations

import numpy as np

Z95 = 1.959964


def wilson_ci(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # clamp rounding: the interval always contains p (exactly 0 or 1 at k = 0 or k = n)
    return (float(min(centre - half, p)), float(max(centre + half, p)))


def newcombe_diff(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """Difference of two independent proportions p1 - p2 with a 95% Newcombe (Wilson-score)
    interval: ``(difference, lo, hi)``."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_ci(k1, n1, z)
    l2, u2 = wilson_ci(k2, n2, z)
    d = p1 - p2
    lo = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, float(lo), float(hi)
