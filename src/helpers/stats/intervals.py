"""Intervals for binomial proportions.

* :func:`wilson_ci`: Wilson's score interval for one proportion (SciPy's
  ``binomtest(k, n).proportion_ci(method="wilson")``);
* :func:`newcombe_diff`: Newcombe's hybrid-score interval for the difference of two *independent*
  proportions (method 10 of Newcombe 1998a, built from the two Wilson intervals; SciPy has none);
* :func:`paired_diff_ci`: Newcombe's hybrid-score interval for the difference of two *paired*
  proportions, two 0/1 outcomes on the same trials (method 10 of Newcombe 1998b);
* :func:`rates_by_group`: one proportion per group (e.g. accuracy per query position) with Wilson
  intervals simultaneous over the groups (Bonferroni);
* :func:`z_for`: the two-sided normal quantile of a confidence level.
"""
from __future__ import annotations

import numpy as np
from scipy import special, stats

Z95 = 1.959964


def z_for(level: float) -> float:
    """The two-sided standard-normal quantile of confidence `level` (1.959964 at 0.95)."""
    if not 0 < level < 1:
        raise ValueError(f"level={level!r} is not accepted: a confidence level lies strictly between 0 and 1")
    return float(special.ndtri(0.5 + 0.5 * level))


def _level_for(z: float) -> float:
    """The two-sided confidence level whose normal quantile is `z` (the inverse of :func:`z_for`)."""
    return float(1.0 - 2.0 * special.ndtr(-abs(z)))


def wilson_ci(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n`` (95% at the default `z`; for
    another level pass ``z=z_for(level)``).  Computed by ``scipy.stats.binomtest(k, n)
    .proportion_ci(level, method="wilson")`` with ``level`` the two-sided level of `z`;
    ``(nan, nan)`` when ``n == 0``."""
    if n == 0:
        return (float("nan"), float("nan"))
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=_level_for(z), method="wilson")
    p = k / n
    # the interval always contains p (it is exactly 0 at k = 0 and exactly 1 at k = n)
    return (float(min(ci.low, p)), float(max(ci.high, p)))


def rates_by_group(outcomes, groups, level: float = 0.95, simultaneous: bool = True,
                   expected=None) -> list[dict]:
    """The rate of the 0/1 `outcomes` within each value of `groups` (sorted), one dict per group:
    ``group``, ``n``, ``k``, ``rate`` and its Wilson interval ``lo``, ``hi``, at `level` for each group
    or, with `simultaneous` (default), at ``1 - (1 - level) / groups`` so that the intervals hold
    together (Bonferroni): a reader who scans every group for one at chance is covered.  Groups in
    `expected` that have no outcome are listed with ``n = 0`` and nan rate and interval (missing,
    never silently dropped)."""
    outcomes = np.asarray(outcomes, dtype=bool)
    groups = np.asarray(groups)
    if outcomes.shape != groups.shape:
        raise ValueError(f"outcomes ({outcomes.shape}) and groups ({groups.shape}) must have one value per trial")
    keys = sorted(set(groups.tolist()) | set(expected if expected is not None else ()))
    if not keys:
        return []
    each = 1 - (1 - level) / len(keys) if simultaneous else level
    rows = []
    for g in keys:
        x = outcomes[groups == g]
        k, n = int(x.sum()), len(x)
        lo, hi = wilson_ci(k, n, z_for(each))
        rows.append({"group": g, "n": n, "k": k, "rate": k / n if n else float("nan"), "lo": lo, "hi": hi,
                     "level": each})
    return rows


def newcombe_diff(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """Difference of two independent proportions p1 - p2 with Newcombe's hybrid-score interval
    (Newcombe 1998a, method 10; 95% at the default `z`): ``(difference, lo, hi)``."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_ci(k1, n1, z)
    l2, u2 = wilson_ci(k2, n2, z)
    d = p1 - p2
    lo = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, float(lo), float(hi)


def paired_diff_ci(a_correct, b_correct, level: float = 0.95) -> tuple[float, float, float]:
    """Difference of two paired proportions, mean(a) - mean(b) for two 0/1 vectors on the same
    trials, with Newcombe's hybrid-score interval for paired data (Newcombe 1998b, Statistics in
    Medicine 17:2635, method 10): ``(difference, lo, hi)``.

    With the 2x2 table of the pairs (``n11`` both correct, ``n10`` only a, ``n01`` only b, ``n00``
    neither; margins r1 = n11 + n10, r0, c1 = n11 + n01, c0) and the Wilson intervals (l1, u1) of
    r1 / n and (l2, u2) of c1 / n, the interval is d - sqrt(dl1^2 - 2 phi dl1 du2 + du2^2) to
    d + sqrt(du1^2 - 2 phi du1 dl2 + dl2^2) (dl1 = p1 - l1, du2 = u2 - p2, ...), where phi is the
    correlation of the pairs with Newcombe's correction: A = n11 n00 - n10 n01, phi =
    (A - n/2) / sqrt(r1 r0 c1 c0) when A > n/2, 0 when 0 <= A <= n/2, A / sqrt(...) when A < 0, and
    0 when a margin is empty (as in Newcombe's paper and Fagerland, Lydersen & Laake 2017, ch. 8).
    ``(nan, nan, nan)`` for no trials."""
    a = np.asarray(a_correct, dtype=bool).ravel()
    b = np.asarray(b_correct, dtype=bool).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired_diff_ci needs the same trials for both: got {a.size} and {b.size} outcomes")
    n = a.size
    if n == 0:
        return (float("nan"),) * 3
    n11, n10 = int(np.sum(a & b)), int(np.sum(a & ~b))
    n01, n00 = int(np.sum(~a & b)), int(np.sum(~a & ~b))
    r1, r0, c1, c0 = n11 + n10, n01 + n00, n11 + n01, n10 + n00
    p1, p2 = r1 / n, c1 / n
    z = z_for(level)
    l1, u1 = wilson_ci(r1, n, z)
    l2, u2 = wilson_ci(c1, n, z)
    if min(r1, r0, c1, c0) == 0:
        phi = 0.0
    else:
        A = n11 * n00 - n10 * n01
        num = A - n / 2 if A > n / 2 else (0.0 if A >= 0 else A)
        phi = num / np.sqrt(float(r1) * r0 * c1 * c0)
    d = p1 - p2
    dl1, du1, dl2, du2 = p1 - l1, u1 - p1, p2 - l2, u2 - p2
    lo = d - np.sqrt(max(dl1 ** 2 - 2 * phi * dl1 * du2 + du2 ** 2, 0.0))
    hi = d + np.sqrt(max(du1 ** 2 - 2 * phi * du1 * dl2 + dl2 ** 2, 0.0))
    return float(d), float(lo), float(hi)
