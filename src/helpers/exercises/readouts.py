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


def check_holm(fn) -> Result:
    """``05-holm``: ``holm(p) -> adjusted``: Holm's step-down adjusted p-values of a family (the
    book's one multiplicity correction, :func:`helpers.stats.multiplicity.holm`), for the many
    layers, positions and heads a chapter tests at once."""
    from helpers.stats.multiplicity import holm
    name = "05-holm"
    cases = [np.array([0.01, 0.04, 0.03, 0.005]), np.array([0.2, 0.01, 0.6, 0.02, 0.04]), np.array([0.5, 0.4, 0.9])]
    for p in cases:
        got = np.asarray(call(fn, p.copy()), dtype=float)
        want = holm(p)
        if got.shape == want.shape and np.allclose(got, want):
            continue
        shown = f"for p = {p.tolist()} you return {np.round(got, 4).tolist()}, expected {np.round(want, 4).tolist()}"
        m = len(p)
        if got.shape == want.shape and np.allclose(got, np.minimum(p * m, 1)):
            why = "that is Bonferroni (every p times m); Holm multiplies the k-th smallest by m - k + 1"
        elif got.shape == want.shape and np.allclose(np.sort(got), np.sort(want)) and not np.allclose(got, want):
            why = "the adjusted values are right but in sorted order: return them in the order of the input"
        else:
            order = np.argsort(p)
            raw = np.empty(m)
            raw[order] = (m - np.arange(m)) * p[order]
            if got.shape == want.shape and np.allclose(got, raw):
                why = ("the adjusted p-values must not decrease along the sorted order: take the running maximum "
                       "(and cap at 1)")
            elif got.shape == want.shape and np.allclose(got, np.maximum.accumulate(raw[order])[np.argsort(order)]):
                why = "cap the adjusted p-values at 1"
            else:
                why = "compare with the step-down rule: sort, multiply the k-th smallest by m - k + 1, running maximum, cap at 1"
        return Result(name, False, f"{shown}: {why}")
    return Result(name, True, f"equals helpers.stats.multiplicity.holm on {len(cases)} families, ties to the running "
                              "maximum and the cap at 1 included")


def check_regression_t(fn) -> Result:
    """``06-regression-t``: ``regression_t(design, Y) -> (coef, pvalues)``: ordinary least squares
    of every unit (column of `Y`) on the task variables (`design`, intercept column first) and the
    two-sided t-test p-values of the non-intercept coefficients, each ``(units, variables)``; as
    :func:`helpers.stats.tests.regression_t`, which decides a unit's selectivity in chapter 6."""
    from helpers.stats.tests import regression_t
    name = "06-regression-t"
    rng = np.random.default_rng(3)
    n = 40
    X = rng.choice([-1.0, 1.0], size=(n, 3))
    design = np.column_stack([np.ones(n), X])
    Y = X @ rng.normal(0, 1, (3, 6)) * np.array([1, 0, 1, 0.3, 0, 1]) + rng.normal(0, 1, (n, 6))
    got = call(fn, design.copy(), Y.copy())
    coef, pv, dof = regression_t(design, Y)
    if not isinstance(got, tuple) or len(got) < 2:
        return Result(name, False, "return the pair (coefficients, p-values), each (units, variables)")
    g_coef, g_p = np.asarray(got[0], float), np.asarray(got[1], float)
    if g_coef.shape != coef.shape:
        if g_coef.shape == (coef.shape[0], coef.shape[1] + 1) or g_coef.T.shape == (coef.shape[1] + 1, coef.shape[0]):
            why = "drop the intercept's coefficient: one column per task variable"
        else:
            why = f"shape {g_coef.shape}, expected {coef.shape} (units, variables)"
        return Result(name, False, f"the coefficients: {why}")
    if not np.allclose(g_coef, coef, atol=1e-8):
        return Result(name, False, "the coefficients: " + where_different(g_coef, coef, ("unit", "variable"), atol=1e-8))
    if np.allclose(g_p, pv, atol=1e-10):
        return Result(name, True, "coefficients and p-values equal helpers.stats.tests.regression_t on 6 units")
    from scipy import stats
    XtX_inv = np.linalg.inv(design.T @ design)
    resid = Y - design @ np.linalg.lstsq(design, Y, rcond=None)[0]
    for wrong_dof, what in ((n, "n"), (n - 1, "n - 1")):
        se = np.sqrt(np.outer(np.diag(XtX_inv)[1:], (resid ** 2).sum(0) / wrong_dof))
        t = coef.T / se
        if np.allclose(g_p, (2 * stats.t.sf(np.abs(t), wrong_dof)).T, atol=1e-10) or \
                np.allclose(g_p, (2 * stats.t.sf(np.abs(t), dof)).T, atol=1e-10):
            return Result(name, False, f"the p-values use {what} where the residual degrees of freedom are n - p = "
                                       f"{dof} (observations minus fitted coefficients, the intercept included)")
    se = np.sqrt(np.outer(np.diag(XtX_inv)[1:], (resid ** 2).sum(0) / dof))
    if np.allclose(g_p, (stats.t.sf(np.abs(coef.T / se), dof)).T, atol=1e-10):
        return Result(name, False, "the p-values are one-sided: the test is two-sided (2 * sf(|t|))")
    return Result(name, False, "the p-values: " + where_different(g_p, pv, ("unit", "variable"), atol=1e-10))
