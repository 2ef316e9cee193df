"""The percentile bootstrap over prompts (rows), one implementation for the whole book.

Every bootstrap draws its resamples with :func:`resample_indices` (``n_boot`` rows of ``n``
indices drawn with replacement from a seeded generator), so two statistics computed with the same
seed over the same prompts use the same resamples: that is what makes a *paired* comparison
paired.  :func:`bootstrap_means` computes the means of every column of a table for all resamples
at once (through resample counts, so memory stays at ``n_boot x n``); :func:`bootstrap_ci` takes
any statistic; :func:`percentile_interval` turns resampled statistics into an interval.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def resample_indices(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """``(n_boot, n)`` row indices, each row a resample with replacement of ``range(n)``."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def resample_counts(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """``(n_boot, n)`` how often each row appears in each resample of :func:`resample_indices`."""
    idx = resample_indices(n, n_boot, seed)
    counts = np.zeros((n_boot, n))
    np.add.at(counts, (np.arange(n_boot)[:, None], idx), 1.0)
    return counts


def percentile_interval(boots: np.ndarray, level: float = 0.95, axis: int = 0,
                        ignore_nan: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The central `level` percentile interval of resampled statistics along `axis`."""
    a = (1 - level) / 2
    q = np.nanquantile if ignore_nan else np.quantile
    return q(boots, a, axis=axis), q(boots, 1 - a, axis=axis)


def bootstrap_ci(values: np.ndarray, stat: Callable = np.mean, n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of `stat` over the rows of `values`."""
    values = np.asarray(values)
    if len(values) == 0:
        return (float("nan"), float("nan"))
    stats = np.array([stat(values[i]) for i in resample_indices(len(values), n_boot, seed)])
    lo, hi = percentile_interval(stats, level)
    return (float(lo), float(hi))


def bootstrap_means(values: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95):
    """Mean over rows and its percentile bootstrap interval, for every column at once (the same
    resamples of rows for all columns): three arrays of shape ``values.shape[1:]``."""
    values = np.asarray(values, dtype=float)
    n = values.shape[0]
    flat = values.reshape(n, -1)
    if n == 0:
        nan = np.full(values.shape[1:], np.nan)
        return nan, nan, nan
    boots = resample_counts(n, n_boot, seed) @ flat / n                  # (n_boot, columns)
    lo, hi = percentile_interval(boots, level)
    shape = values.shape[1:]
    return flat.mean(0).reshape(shape), lo.reshape(shape), hi.reshape(shape)
