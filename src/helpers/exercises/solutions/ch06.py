"""Chapter 6's solutions."""
import numpy as np


def standardize(Xtr, Xte):
    mu, sd = Xtr.mean(0), Xtr.std(0)               # the training rows only
    sd = np.where(sd > 1e-7 * (1.0 + np.abs(mu)), sd, 1.0)   # a constant unit is only centred
    return (Xtr - mu) / sd, (Xte - mu) / sd


def regression_t(design, Y):
    from scipy import stats
    n, p = design.shape
    XtX_inv = np.linalg.inv(design.T @ design)
    B = XtX_inv @ design.T @ Y                              # (p, units)
    resid = Y - design @ B
    dof = n - p                                             # the intercept is a fitted coefficient too
    se = np.sqrt(np.outer(np.diag(XtX_inv)[1:], (resid ** 2).sum(0) / dof))
    t = B[1:] / se
    return B[1:].T, (2 * stats.t.sf(np.abs(t), dof)).T
