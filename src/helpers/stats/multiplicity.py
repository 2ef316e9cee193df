"""Multiplicity over a family of tests (heads, units, training-set sizes): the book's one policy is
family-wise error control, Holm for tests (:func:`holm`, :func:`holm_significant`) and
Bonferroni for simultaneous intervals (:func:`bonferroni_level`)."""
from __future__ import annotations

import numpy as np


def holm(p: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (family-wise error control over all entries, any shape)."""
    p = np.asarray(p, dtype=float)
    flat = p.ravel()
    order = np.argsort(flat)
    m = len(flat)
    adj = np.maximum.accumulate((m - np.arange(m)) * flat[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out.reshape(p.shape)


def holm_significant(p: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Which of the p-values (any shape) Holm's step-down procedure rejects at family-wise error
    rate `alpha`: Holm-adjusted p <= `alpha`."""
    return holm(p) <= alpha


def bonferroni_level(level: float, m: int) -> float:
    """Per-interval confidence level that makes `m` intervals simultaneous at `level`:
    ``1 - (1 - level) / m`` (0.95 over 10 intervals -> 0.995 each)."""
    if m < 1:
        raise ValueError(f"m={m!r} is not accepted: a family has at least one member")
    return 1 - (1 - level) / m
