"""Chapter 5's solutions."""
import numpy as np


def permutation_p(observed, null):
    k = np.sum(np.asarray(null) >= observed)       # shuffles at least as extreme as what we saw
    return (1 + k) / (len(null) + 1)               # the observed arrangement counts as one of them


def holm(p):
    p = np.asarray(p, dtype=float)
    m = len(p)
    order = np.argsort(p)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])    # k-th smallest times m - k + 1
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out
