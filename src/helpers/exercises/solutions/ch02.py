"""Chapter 2's solutions."""
import numpy as np

from helpers.stats.bootstrap import resample_indices


def wilson_interval(k, n, z=1.96):
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_bootstrap_diff(a, b, n_boot=2000, seed=0):
    idx = resample_indices(len(a), n_boot, seed)       # (n_boot, n): the same prompts for both arms
    diffs = (b[idx] - a[idx]).mean(axis=1)
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    return (b - a).mean(), lo, hi
