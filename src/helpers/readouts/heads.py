"""Per-head decoding: a linear SVM reads a task variable from each attention head's output."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from helpers.readouts.probes import standardize, outer_folds
from helpers.stats.intervals import wilson_ci
from helpers.stats.multiplicity import holm_significant
from helpers.stats.tests import binomial_greater


def head_decoding(Z: np.ndarray, y, cv_folds: int = 5, seed: int = 0, C: float = 1.0,
                  alpha: float = 0.05) -> pd.DataFrame:
    """Cross-validated accuracy of a linear SVM (``sklearn.svm.LinearSVC``, one-vs-rest, fixed `C`,
    units standardised on the training folds) decoding `y` from each head's output ``z`` at one
    position.  `Z` is (n_trials, n_layers, n_heads, d_head) (``collect_activations(...)['z']``).

    Rows: layer, head, accuracy (mean over outer stratified folds), lo, hi (95% Wilson on pooled
    held-out predictions: ``hits`` correct of ``n``), chance (share of the most frequent class), p
    (one-sided binomial test of the pooled held-out hits against chance) and significant (Holm over
    the heads at family-wise error rate `alpha`).  Held-out predictions of different folds are not
    strictly independent, so p is a screening number."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y)
    n, L, H, _ = Z.shape
    folds = outer_folds(y, cv_folds, seed)
    pred = np.empty((L, H, n), dtype=y.dtype)
    for tr, te in folds:
        for l in range(L):
            for h in range(H):
                Xtr, Xte = standardize(Z[tr, l, h], Z[te, l, h])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    if len(np.unique(y[tr])) < 2:
                        pred[l, h, te] = y[tr][0]
                        continue
                    clf = LinearSVC(C=C, dual=False, max_iter=5000).fit(Xtr, y[tr])
                pred[l, h, te] = clf.predict(Xte)
    _, counts = np.unique(y, return_counts=True)
    chance = counts.max() / n
    rows = []
    for l in range(L):
        for h in range(H):
            hits = pred[l, h] == y
            acc = float(np.mean([hits[te].mean() for _, te in folds]))
            lo, hi = wilson_ci(int(hits.sum()), n)
            p = binomial_greater(int(hits.sum()), n, chance)
            rows.append({"layer": l, "head": h, "accuracy": acc, "lo": lo, "hi": hi, "chance": chance, "p": p,
                         "hits": int(hits.sum()), "n": n})
    df = pd.DataFrame(rows)
    df["significant"] = holm_significant(df["p"].to_numpy(), alpha)
    return df


def head_table(df: pd.DataFrame) -> np.ndarray:
    """(n_layers, n_heads) array of accuracies from a :func:`head_decoding` table."""
    return df.pivot(index="layer", columns="head", values="accuracy").to_numpy()


def head_summary(results: dict[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    """Per (model, target): chance, best head and its accuracy, share of heads significantly above
    chance (Holm over heads), and the mean accuracy of the heads of the last layer."""
    rows = []
    for (model, target), df in results.items():
        best = df.loc[df["accuracy"].idxmax()]
        L = df["layer"].max()
        rows.append({"model": model, "target": target, "chance": float(df["chance"].iloc[0]),
                     "best_head": f"L{int(best['layer'])}H{int(best['head'])}", "best_accuracy": float(best["accuracy"]),
                     "share_significant": float(df["significant"].mean()),
                     "last_layer_mean": float(df[df["layer"] == L]["accuracy"].mean())})
    return pd.DataFrame(rows)
