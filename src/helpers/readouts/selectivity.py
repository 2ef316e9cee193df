"""Mixed selectivity of single units: one joint regression per unit on all task variables, each
coefficient tested, corrected over units x variables; shuffles and a random-rotation control."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.readouts.probes import DECODED, label_shuffles
from helpers.stats.bootstrap import resample_indices
from helpers.stats.multiplicity import holm_significant
from helpers.stats.tests import regression_t


def _design(variables: pd.DataFrame, columns) -> np.ndarray:
    V = variables[list(columns)].to_numpy().astype(float)
    return np.hstack([np.ones((len(V), 1)), 2.0 * V - 1.0])        # intercept, +-1 codes


def variance_inflation(variables: pd.DataFrame, columns=DECODED) -> pd.Series:
    """Variance inflation factor of each variable in the joint regression (1 = uncorrelated)."""
    V = variables[list(columns)].to_numpy().astype(float)
    R = np.corrcoef(V, rowvar=False)
    return pd.Series(np.diag(np.linalg.inv(R)), index=list(columns))


def unit_selectivity(X: np.ndarray, variables: pd.DataFrame, columns=DECODED, alpha: float = 0.05) -> dict:
    """Which units are selective for which variables.

    The four variables are correlated by construction (the choice is the sign of the relevant
    stream, so it agrees with the motion sign on about 3/4 of the trials, and so on), so testing
    each variable on its own would credit a unit that encodes only the choice with motion and
    color selectivity too.  We therefore fit, for every unit, **one** linear regression on all
    variables at once (±1 codes plus an intercept) and test each coefficient (two-sided t-test,
    n - 5 degrees of freedom): a unit is selective for a variable when that variable explains
    activity that the others do not.  The p-values of all units x variables are corrected together
    by Holm at family-wise error rate `alpha` (the chance that any unit is called selective for a
    variable it does not encode is at most `alpha`).  Returns ``pvalues``, ``coef`` (units x variables),
    ``selective`` (bool, same shape) and ``count`` (variables per unit, 0..len(columns))."""
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    coef, pvals, _ = regression_t(_design(variables, columns), X)     # (units, variables)
    sel = holm_significant(pvals, alpha)
    return {"pvalues": pvals, "coef": coef, "selective": sel, "count": sel.sum(1), "columns": list(columns)}


def random_rotation(d: int, seed: int = 0) -> np.ndarray:
    """A random orthogonal d x d matrix (Haar), for the rotated-basis control."""
    rng = np.random.default_rng([seed, 31337])
    Q, R = np.linalg.qr(rng.normal(size=(d, d)))
    return Q * np.sign(np.diag(R))


def mixed_selectivity(X: np.ndarray, variables: pd.DataFrame, columns=DECODED, alpha: float = 0.05,
                      n_shuffles: int = 5, seed: int = 0) -> pd.DataFrame:
    """Share of units selective for 0, 1, ..., len(columns) variables (:func:`unit_selectivity`),
    and the same after permuting the trials' variables jointly (`n_shuffles` times; their mean and
    standard deviation).  Rows: n_variables, fraction, shuffled_fraction, shuffled_sd."""
    k = len(columns)
    real = unit_selectivity(X, variables, columns, alpha)["count"]
    sh = []
    for perm in label_shuffles(len(variables), n_shuffles, seed):
        c = unit_selectivity(X, variables.iloc[perm].reset_index(drop=True), columns, alpha)["count"]
        sh.append(np.bincount(c, minlength=k + 1) / len(c))
    sh = np.array(sh) if sh else np.full((1, k + 1), np.nan)
    return pd.DataFrame({"n_variables": np.arange(k + 1),
                         "fraction": np.bincount(real, minlength=k + 1) / len(real),
                         "shuffled_fraction": sh.mean(0), "shuffled_sd": sh.std(0),
                         "shuffled_max": sh.max(0)})


def mixed_summary(table: pd.DataFrame, min_variables: int = 2) -> dict:
    """Fraction of units selective for at least `min_variables` variables, real and shuffled."""
    t = table[table["n_variables"] >= min_variables]
    return {"mixed": float(t["fraction"].sum()), "shuffled_mean": float(t["shuffled_fraction"].sum())}


def shuffled_mixed_fractions(X: np.ndarray, variables: pd.DataFrame, columns=DECODED, alpha: float = 0.05,
                             n_shuffles: int = 5, seed: int = 0, min_variables: int = 2) -> list[float]:
    """The mixed fraction (>= `min_variables`) of each label shuffle (same permutations as
    :func:`mixed_selectivity`)."""
    out = []
    for perm in label_shuffles(len(variables), n_shuffles, seed):
        c = unit_selectivity(X, variables.iloc[perm].reset_index(drop=True), columns, alpha)["count"]
        out.append(float(np.mean(c >= min_variables)))
    return out


def mixed_difference_bootstrap(X_a: np.ndarray, X_b: np.ndarray, variables: pd.DataFrame, columns=DECODED,
                               alpha: float = 0.05, n_boot: int = 500, seed: int = 0,
                               min_variables: int = 2) -> np.ndarray:
    """The mixed fraction of `X_a`'s units minus `X_b`'s (two models' states on the same trials),
    over `n_boot` paired bootstrap resamples of the trials (the same rows for both models; the
    whole selectivity analysis re-run on each).  The interval of a "more mixed after fine-tuning"
    comparison is read from these draws."""
    out = np.empty(n_boot)
    for i, idx in enumerate(resample_indices(len(variables), n_boot, seed)):
        v = variables.iloc[idx].reset_index(drop=True)
        fa = np.mean(unit_selectivity(X_a[idx], v, columns, alpha)["count"] >= min_variables)
        fb = np.mean(unit_selectivity(X_b[idx], v, columns, alpha)["count"] >= min_variables)
        out[i] = fa - fb
    return out


def selectivity_table(mixed: dict[str, pd.DataFrame], rotated: pd.DataFrame | None = None,
                      rotated_name: str = "fine-tuned, randomly rotated units") -> pd.DataFrame:
    """Per model (:func:`mixed_selectivity` tables): the share of units selective for at least
    one variable, for two or more (mixed), and mixed under label shuffles; plus a row for the
    randomly rotated units when given (no shuffles there)."""
    rows = [{"model": m, "units selective for >= 1": 1 - t["fraction"].iloc[0],
             "for >= 2 (mixed)": mixed_summary(t)["mixed"], "shuffled: >= 2": mixed_summary(t)["shuffled_mean"]}
            for m, t in mixed.items()]
    if rotated is not None:
        rows.append({"model": rotated_name, "units selective for >= 1": 1 - rotated["fraction"].iloc[0],
                     "for >= 2 (mixed)": mixed_summary(rotated)["mixed"], "shuffled: >= 2": np.nan})
    return pd.DataFrame(rows)
