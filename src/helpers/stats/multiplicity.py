"""Multiplicity corrections over many heads or units: Holm (family-wise error rate) and
Benjamini-Hochberg (false discovery rate)."""
from __future__ import annotations

import numpy as np


def holm(p: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (family-wise error control over all entries)."""
    p = np.asarray(p, dtype=float)
    flat = p.ravel()
    order = np.argsort(flat)
    m = len(flat)
    adj = np.maximum.accumulate((m - np.arange(m)) * flat[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out.reshape(p.shape)


def benjamini_hochberg(p: np.ndarray, alpha: float) -> np.ndarray:
    """Benjamini-Hochberg: which of the p-values (any shape) are discoveries at FDR `alpha`."""
    p = np.asarray(p, dtype=float)
    flat = p.ravel()
    order = np.argsort(flat)
    m = len(flat)
    below = flat[order] <= alpha * np.arange(1, m + 1) / m
    k = np.nonzero(below)[0].max() + 1 if below.any() else 0
    out = np.zeros(m, dtype=bool)
    out[order[:k]] = True
    return out.reshape(p.shape)
