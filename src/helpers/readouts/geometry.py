"""The geometry of hidden states: standardised PCA, a seeded UMAP, silhouettes against label
shuffles, and the table that puts them next to a linear probe.

UMAP pictures are persuasive and easy to over-read, so each one comes with numbers computed on the
*same* points: the silhouette of the labelled groups (against label shuffles) and a cross-validated
linear probe (:func:`helpers.readouts.probes.linear_probe_accuracy`).  Points are standardised per
unit and reduced to their first 50 principal components before UMAP and the silhouette
(:func:`preprocess`): residual streams have a few "massive" dimensions that would otherwise
dominate every Euclidean distance.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from helpers.readouts.probes import linear_probe_accuracy

N_PCA = 50


def preprocess(X: np.ndarray, n_pca: int = N_PCA) -> np.ndarray:
    """Standardise each unit (constant units stay 0), then keep the first `n_pca` principal
    components (fewer when there are fewer points or units).  Unsupervised: no labels involved."""
    X = np.asarray(X, dtype=np.float64)
    sd = X.std(0)
    Xs = (X - X.mean(0)) / np.where(sd > 1e-8 * (1 + np.abs(X).max(0)), sd, 1.0)
    k = min(n_pca, X.shape[0] - 1, X.shape[1])
    if k < 1:
        return Xs
    U, s, _ = np.linalg.svd(Xs - Xs.mean(0), full_matrices=False)
    return U[:, :k] * s[:k]


def embed_umap(X: np.ndarray, n_neighbors: int = 15, seed: int = 0, min_dist: float = 0.1,
               n_pca: int = N_PCA) -> np.ndarray:
    """Seeded 2-D UMAP of the points in `X` (after :func:`preprocess`).  A `seed` makes UMAP
    single-threaded and reproducible; `n_neighbors` is capped at n_points - 1."""
    import warnings

    import umap   # imported here: numba compiles it on first use (about 40 s per process)
    X = preprocess(X, n_pca)
    k = int(min(n_neighbors, len(X) - 1))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*overridden.*")
        warnings.filterwarnings("ignore", category=FutureWarning)
        reducer = umap.UMAP(n_components=2, n_neighbors=k, min_dist=min_dist, random_state=seed)
        return reducer.fit_transform(X)


def silhouette_by(X: np.ndarray, labels, n_pca: int = N_PCA, preprocessed: bool = False) -> float:
    """Silhouette of the groups given by `labels` (Euclidean, on :func:`preprocess`-ed points):
    near 0 for unstructured groups, up to 1 for tight, well separated ones."""
    from sklearn.metrics import silhouette_score
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return float("nan")
    Z = X if preprocessed else preprocess(X, n_pca)
    return float(silhouette_score(Z, labels))


def silhouette_samples_by(X: np.ndarray, labels, n_pca: int = N_PCA, preprocessed: bool = False) -> np.ndarray:
    """Each point's silhouette (as :func:`silhouette_by`, whose value is their mean): the per-trial
    numbers that a paired comparison of two models on the same trials resamples."""
    from sklearn.metrics import silhouette_samples
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return np.full(len(labels), np.nan)
    Z = X if preprocessed else preprocess(X, n_pca)
    return silhouette_samples(Z, labels)


def shuffled_silhouettes(X: np.ndarray, labels, n_shuffles: int, seed: int = 0, n_pca: int = N_PCA) -> np.ndarray:
    """Silhouettes of the same points with the labels permuted (`n_shuffles` times): the chance level."""
    rng = np.random.default_rng([seed, 2713])
    Z = preprocess(X, n_pca)
    labels = np.asarray(labels)
    return np.array([silhouette_by(Z, rng.permutation(labels), preprocessed=True) for _ in range(n_shuffles)])


def structure_table(states: dict[str, np.ndarray], variables: pd.DataFrame,
                    columns: Sequence[str] = ("context", "choice", "relevant_sign", "irrelevant_sign"),
                    cv_folds: int = 5, n_shuffles: int = 5, seed: int = 0) -> pd.DataFrame:
    """Per model and variable: silhouette of the groups, its shuffled chance level (mean and max
    over `n_shuffles` label permutations) and the cross-validated linear probe accuracy (95% CI).
    `states[model]` is (n_trials, d_model); `variables` comes from
    :func:`helpers.tasks.decision.task_variables`."""
    rows = []
    for model, X in states.items():
        Z = preprocess(X)
        for col in columns:
            y = variables[col].to_numpy()
            sh = shuffled_silhouettes(X, y, n_shuffles, seed)
            probe = linear_probe_accuracy(X, y, cv_folds, seed)
            rows.append({"model": model, "variable": col, "silhouette": silhouette_by(Z, y, preprocessed=True),
                         "silhouette_shuffled": float(sh.mean()), "silhouette_shuffled_max": float(sh.max()),
                         "probe_accuracy": probe["accuracy"], "probe_lo": probe["lo"], "probe_hi": probe["hi"]})
    return pd.DataFrame(rows)


def structure_along(states: dict[str, dict[str, np.ndarray]], variables: pd.DataFrame, positions: Sequence[str],
                    columns: Sequence[str] = ("context", "choice"), cv_folds: int = 5, n_shuffles: int = 5,
                    seed: int = 0) -> pd.DataFrame:
    """:func:`structure_table` at each of several positions: `states[model][position]` is
    (n_trials, d_model); rows gain a ``position`` column, in the order of `positions`."""
    return pd.concat([structure_table({m: states[m][pos] for m in states}, variables, columns=columns,
                                      cv_folds=cv_folds, n_shuffles=n_shuffles, seed=seed).assign(position=pos)
                      for pos in positions], ignore_index=True)
