"""Significance tests used by the book (vectorised over many heads or units at once)."""
from __future__ import annotations

import numpy as np
from scipy import stats


def t_greater(values: np.ndarray) -> np.ndarray:
    """One-sided one-sample t-test p-values (mean > 0) for each column of `values` (n, m)."""
    n = values.shape[0]
    mean = values.mean(0)
    sd = values.std(0, ddof=1) if n > 1 else np.zeros(values.shape[1])
    p = np.where(mean > 0, 0.0, 1.0)            # zero variance: certain either way
    ok = sd > 1e-12
    if ok.any():
        t = mean[ok] / (sd[ok] / np.sqrt(n))
        p[ok] = stats.t.sf(t, df=n - 1)
    return p


def t_two_sided(values: np.ndarray) -> np.ndarray:
    """Two-sided one-sample t-test p-values (mean != 0) for each column of `values` (n, m); a
    column with no spread gets 1 when its mean is 0 and 0 otherwise."""
    n = values.shape[0]
    mean = values.mean(0)
    sd = values.std(0, ddof=1) if n > 1 else np.zeros(values.shape[1])
    p = np.where(mean == 0, 1.0, 0.0)           # zero variance: certain either way
    ok = sd > 1e-12
    if ok.any():
        t = mean[ok] / (sd[ok] / np.sqrt(n))
        p[ok] = 2 * stats.t.sf(np.abs(t), df=n - 1)
    return p


def binomial_greater(k: int, n: int, p: float) -> float:
    """One-sided exact binomial test p-value of `k` successes in `n` against rate `p`."""
    return float(stats.binomtest(int(k), int(n), p, alternative="greater").pvalue)


def regression_t(design: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Ordinary least squares of every column of `Y` (n, m) on `design` (n, p, with an intercept
    column first) and two-sided t-test p-values of the non-intercept coefficients.  Returns
    ``(coef, pvalues, dof)`` with coef and pvalues of shape (m, p - 1)."""
    n, p = design.shape
    XtX_inv = np.linalg.inv(design.T @ design)
    B = XtX_inv @ design.T @ Y                               # (p, m)
    resid = Y - design @ B
    dof = n - p
    sigma2 = (resid ** 2).sum(0) / dof
    se = np.sqrt(np.outer(np.diag(XtX_inv)[1:], sigma2))     # (p - 1, m)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 1e-12 * (1 + np.abs(Y).max(0)), B[1:] / se, 0.0)
    pvals = (2 * stats.t.sf(np.abs(t), dof)).T
    return B[1:].T, pvals, dof


def welch_weighted(w1: np.ndarray, x1: np.ndarray, w0: np.ndarray, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Difference of two groups' means and its Welch standard error, per column of `x1` (n1, m)
    and `x0` (n0, m), for many weightings at once: row k of `w1` (k, n1) and `w0` (k, n0) says how
    often each row counts in group 1 and group 0 (0/1 for a permutation, counts for a bootstrap
    resample).  Returns ``(diff, se)``, each (k, m)."""
    n1, n0 = w1.sum(1, keepdims=True), w0.sum(1, keepdims=True)
    m1, m0 = (w1 @ x1) / n1, (w0 @ x0) / n0
    v1 = np.clip(w1 @ x1 ** 2 - n1 * m1 ** 2, 0, None) / (n1 - 1)
    v0 = np.clip(w0 @ x0 ** 2 - n0 * m0 ** 2, 0, None) / (n0 - 1)
    return m1 - m0, np.sqrt(v1 / n1 + v0 / n0)
