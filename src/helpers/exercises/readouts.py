"""Chapter 5's and chapter 6's exercises: the two safeguards of the book's readouts.

* ``05-permutation-p``: ``permutation_p(observed, null) -> p``: the one-sided permutation p-value of
  a statistic against its label-shuffled values, counting the observed arrangement as one of them
  (:func:`helpers.stats.permutation.permutation_p`), so that p is never 0 and 19 shuffles are the
  fewest that can reach 0.05.
* ``06-standardize``: ``standardize(Xtr, Xte) -> (Xtr', Xte')``: each unit scaled with the training
  rows' mean and standard deviation only (:func:`helpers.readouts.probes.standardize`), so that the
  held-out fold does not leak into the decoder; a constant unit is only centred.
"""
from __future__ import annotations

import numpy as np

from helpers.exercises.checking import Result, call, where_different

P_CASES = [(0.9, [0.1, 0.2, 0.3, 0.4]), (0.25, [0.1, 0.2, 0.3, 0.4]), (0.3, [0.1, 0.2, 0.3, 0.4]),
           (0.5, np.linspace(0, 1, 19)), (1.5, np.linspace(0, 1, 19))]


def check_permutation_p(fn) -> Result:
    from helpers.stats.permutation import permutation_p
    name = "05-permutation-p"
    for observed, null in P_CASES:
        null = np.asarray(null, dtype=float)
        got = float(call(fn, observed, null.copy()))
        want = permutation_p(observed, null)
        if np.isclose(got, want):
            continue
        case = f"for observed {observed} and {len(null)} shuffles"
        if np.isclose(got, np.mean(null >= observed)):
            why = (f"you return {got:.3g}, the share of shuffles at or above it: count the observed arrangement as "
                   f"one of them, (1 + #) / (n + 1) = {want:.3g}, so that p is never 0")
        elif np.isclose(got, (1 + np.sum(null > observed)) / (len(null) + 1)):
            why = (f"you return {got:.3g}: a shuffle equal to the observed value counts against it (>=, not >); "
                   f"expected {want:.3g}")
        elif np.isclose(got, (1 + np.sum(null <= observed)) / (len(null) + 1)):
            why = f"you return {got:.3g}: that counts the shuffles at or below it; the test is one-sided, greater"
        else:
            why = f"you return {got:.3g}, expected {want:.3g}"
        return Result(name, False, f"{case}: {why}")
    return Result(name, True, f"equals helpers.stats.permutation.permutation_p on {len(P_CASES)} cases, ties included")


def check_standardize(fn) -> Result:
    from helpers.readouts.probes import standardize
    name = "06-standardize"
    rng = np.random.default_rng(2)
    Xtr = rng.normal(3.0, 2.0, (40, 5))
    Xtr[:, 4] = 7.0                                          # a constant unit
    Xte = rng.normal(5.0, 4.0, (10, 5))                      # a held-out fold that looks different
    got = call(fn, Xtr.copy(), Xte.copy())
    want = standardize(Xtr, Xte)
    if not isinstance(got, tuple) or len(got) != 2:
        return Result(name, False, "return the pair (training rows, held-out rows), both scaled")
    a = where_different(got[0], want[0], ("row", "unit"))
    b = where_different(got[1], want[1], ("row", "unit"))
    if not a and not b:
        return Result(name, True, "scales with the training rows' statistics only and leaves a constant unit finite")
    both = np.vstack([Xtr, Xte])
    mu, sd = both.mean(0), both.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    if not where_different(got[1][:, :4], ((Xte - mu) / sd)[:, :4], ("row", "unit")):
        why = ("the held-out rows were scaled with statistics of all rows: the decoder has then seen the test fold; "
               "compute the mean and standard deviation on the training rows only")
    elif not where_different(got[1][:, :4], ((Xte - Xte.mean(0)) / Xte.std(0))[:, :4], ("row", "unit")):
        why = "the held-out rows were scaled with their own statistics: use the training rows' mean and deviation"
    elif not np.isfinite(np.asarray(got[0])).all() or not np.isfinite(np.asarray(got[1])).all():
        why = "a constant unit became nan or inf (its deviation is 0): only centre it (divide by 1)"
    else:
        why = "training rows: " + (a or "equal") + "; held-out rows: " + (b or "equal")
    return Result(name, False, why)
