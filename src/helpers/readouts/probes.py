"""Linear probes: decoding task variables from hidden states, along the prompt and across layers.

The variables are those of :func:`helpers.tasks.decision.task_variables` (0/1 codes; see there).

**The decoder** (:func:`decode`): L2-regularised logistic regression on standardised units.  The
outer loop is a stratified ``cv_folds``-fold cross-validation; inside each outer training fold the
regularisation ``C`` is chosen from ``Cs`` by an inner ``inner_folds``-fold cross-validation *of
that training fold only* (standardisation is re-fitted on every inner training split); the model
is then re-fitted on the whole outer training fold with that ``C`` and scored on the held-out
fold, which never influenced any choice.  We report the mean outer-fold accuracy and a 95% Wilson
interval on the pooled held-out predictions (every trial is predicted exactly once).

The solver is exact, not approximate: with standardised units ``X`` (n trials x d units, n < d)
the L2 solution lies in the row space of ``X``, so we fit in the basis of its principal axes
(at most n coordinates, the same penalty) and solve all targets, label shuffles and values of
``C`` at once with Newton's method.  ``tests/test_decoding.py`` checks that the coefficients are
those of ``sklearn.linear_model.LogisticRegression`` (same objective: C x sum of log-losses +
||w||^2 / 2, unpenalised intercept) to 1e-5.  It makes the per-token decoding with label shuffles
affordable on a CPU (thousands of nested cross-validations).

**Chance.**  ``shuffled_accuracy`` is the same decoder on labels permuted across trials (the whole
table of variables permuted jointly, ``n_shuffles`` times, the same permutations at every position
and layer), with the same outer folds and, in each outer fold, the C selected for the real labels
(``reselect_C_for_shuffles=True`` re-runs the inner selection on every shuffle as well).

Mixed selectivity of single units is in :mod:`helpers.readouts.selectivity`, per-head SVMs in
:mod:`helpers.readouts.heads`, the verdicts in :mod:`helpers.claims.decoding`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from helpers.stats.intervals import wilson_ci
from helpers.tasks.decision import DECODED

CS = (0.001, 0.01, 0.1, 1.0, 10.0)
INNER_FOLDS = 3


# ---- the solver ------------------------------------------------------------------------------------

def standardize(Xtr: np.ndarray, Xte: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale with the training rows only; constant units (up to rounding) are only centred."""
    mu = Xtr.mean(0)
    sd = Xtr.std(0)
    sd = np.where(sd > 1e-7 * (1.0 + np.abs(mu)), sd, 1.0)
    return (Xtr - mu) / sd, (Xte - mu) / sd


def _row_space(Xtr: np.ndarray, Xte: np.ndarray, rtol: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of both sets in the principal axes of the (centred) training rows.

    With ``Xtr = U S V^T``: ``Ztr = U S`` and ``Zte = Xte V``.  Computed from the Gram matrix (n x n),
    which is cheaper than an SVD when there are more units than trials."""
    G = Xtr @ Xtr.T
    evals, U = np.linalg.eigh(G)
    keep = evals > rtol * max(evals.max(), 1e-300)
    if not keep.any():
        return np.zeros((len(Xtr), 0)), np.zeros((len(Xte), 0))
    s = np.sqrt(evals[keep])
    U = U[:, keep]
    return U * s, (Xte @ Xtr.T) @ U / s


def fit_logistic(Z: np.ndarray, Y: np.ndarray, Cs, W0: np.ndarray | None = None, tol: float = 1e-10,
                 max_iter: int = 100, outer: np.ndarray | None = None) -> np.ndarray:
    """L2 logistic regressions sharing the design `Z` (n, r): column ``m`` of `Y` (n, M, values 0/1)
    with regularisation ``Cs[m]`` (a scalar applies to all).  Minimises ``C * sum(log-loss) +
    ||w||^2 / 2`` with an unpenalised intercept (sklearn's objective) by damped Newton steps from
    `W0` (default 0).  Returns (r + 1, M), intercept last.  The Hessians are built and solved in
    float32 (``outer``: the rows' outer products, :func:`_outer`, reusable along a path); the
    gradient and objective stay float64, so the fixed point is the float64 optimum."""
    Z = np.asarray(Z, dtype=np.float64)
    S = 2.0 * np.asarray(Y, dtype=np.float64) - 1.0
    n, r = Z.shape
    M = S.shape[1]
    lam = 1.0 / np.broadcast_to(np.asarray(Cs, dtype=np.float64), (M,))
    Z1 = np.hstack([Z, np.ones((n, 1))])
    outer = _outer(Z) if outer is None else outer                 # Hessians by one GEMM
    pen = np.empty((M, r + 1))
    pen[:, :r] = lam[:, None]
    pen[:, r] = 1e-10                      # keeps one-class training folds finite
    W = np.zeros((r + 1, M)) if W0 is None else np.array(W0, dtype=np.float64)

    def objective(W, cols):
        m = (Z1 @ W) * S[:, cols]
        return np.logaddexp(0.0, -m).sum(0) + 0.5 * (pen[cols].T * W * W).sum(0)

    active = np.arange(M)
    f = objective(W, active)
    diag = np.arange(r + 1)
    for _ in range(max_iter):
        Wa, Sa = W[:, active], S[:, active]
        m = (Z1 @ Wa) * Sa
        p = 0.5 * (1.0 + np.tanh(0.5 * m))            # sigmoid(margin)
        g = Z1.T @ (-(1.0 - p) * Sa) + pen[active].T * Wa
        H = ((p * (1.0 - p)).T.astype(np.float32) @ outer).reshape(len(active), r + 1, r + 1)
        H[:, diag, diag] += pen[active]
        step = np.linalg.solve(H, g.T[:, :, None].astype(np.float32))[:, :, 0].T.astype(np.float64)
        dec = (g * step).sum(0)                       # Newton decrement^2
        t = np.ones(len(active))
        fa = f[active]
        for _ in range(30):                           # backtracking (Armijo)
            Wn = Wa - step * t
            fn = objective(Wn, active)
            bad = fn > fa - 1e-4 * t * dec
            if not bad.any():
                break
            t = np.where(bad, 0.5 * t, t)
        W[:, active] = Wn
        f[active] = fn
        active = active[dec > tol * (1.0 + np.abs(fn))]
        if not len(active):
            break
    return W


def _outer(Z: np.ndarray) -> np.ndarray:
    """Outer products of the rows of [Z, 1], (n, (r + 1)^2), float32."""
    Z1 = np.hstack([Z, np.ones((len(Z), 1))]).astype(np.float32)
    return (Z1[:, :, None] * Z1[:, None, :]).reshape(len(Z), -1)


def _predict(Z: np.ndarray, W: np.ndarray) -> np.ndarray:
    return (Z @ W[:-1] + W[-1] > 0).astype(int)


def _log_loss(Z: np.ndarray, W: np.ndarray, Y: np.ndarray) -> np.ndarray:
    m = (Z @ W[:-1] + W[-1]) * (2.0 * Y - 1.0)
    return np.logaddexp(0.0, -m).mean(0)


def _inner_splits(n: int, inner_folds: int, seed: int):
    from sklearn.model_selection import KFold
    return list(KFold(min(inner_folds, n), shuffle=True, random_state=seed).split(np.zeros(n)))


def select_C(X: np.ndarray, Y: np.ndarray, Cs=CS, inner_folds: int = INNER_FOLDS, seed: int = 0) -> np.ndarray:
    """For each column of `Y` (n, T): the C of `Cs` with the best mean inner cross-validated
    accuracy on (`X`, `Y`) (ties: the lower held-out log-loss).  Sees only what it is given, which
    in :func:`nested_cv` is one outer training fold."""
    Cs = np.asarray(Cs, dtype=np.float64)
    Y = np.asarray(Y)
    T, K = Y.shape[1], len(Cs)
    acc = np.zeros((T, K))
    loss = np.zeros((T, K))
    for itr, iva in _inner_splits(len(X), inner_folds, seed):
        Ztr, Zva = _row_space(*standardize(X[itr], X[iva]))
        W, outer = None, _outer(Ztr)
        for k in np.argsort(Cs):              # the regularisation path, warm-started
            W = fit_logistic(Ztr, Y[itr], Cs[k], W0=W, outer=outer)
            acc[:, k] += (_predict(Zva, W) == Y[iva]).mean(0)
            loss[:, k] += _log_loss(Zva, W, Y[iva])
    best = np.isclose(acc, acc.max(1, keepdims=True), rtol=0, atol=1e-12)
    return Cs[np.where(best, loss, np.inf).argmin(1)]


def nested_cv(X: np.ndarray, Y: np.ndarray, folds, Cs=CS, inner_folds: int = INNER_FOLDS,
              seed: int = 0, c_from: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Held-out predictions (n, T) for every column of `Y` and the C used per outer fold
    (n_folds, T).  `folds` is a list of (train, test) index arrays covering every trial once.

    ``c_from[j]`` names the column whose selected C column ``j`` uses (default: its own); C is
    selected (inner cross-validation of the outer training fold) only for the columns named."""
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    Y = np.asarray(Y).reshape(len(X), -1).astype(int)
    T = Y.shape[1]
    c_from = np.arange(T) if c_from is None else np.asarray(c_from)
    own = np.unique(c_from)
    pred = np.full(Y.shape, -1)
    chosen = np.zeros((len(folds), T))
    for k, (tr, te) in enumerate(folds):
        C = np.zeros(T)
        C[own] = select_C(X[tr], Y[tr][:, own], Cs, inner_folds, seed)
        C = C[c_from]
        Ztr, Zte = _row_space(*standardize(X[tr], X[te]))
        pred[te] = _predict(Zte, fit_logistic(Ztr, Y[tr], C))
        chosen[k] = C
    return pred, chosen


def outer_folds(y: np.ndarray, cv_folds: int, seed: int):
    """Stratified folds on the labels in `y` (a 1-D array, or one column per variable, stratified
    on their joint value) when every class has at least `cv_folds` members; plain folds otherwise."""
    from sklearn.model_selection import KFold, StratifiedKFold
    y = np.asarray(y)
    code = y if y.ndim == 1 else np.unique(y, axis=0, return_inverse=True)[1].ravel()
    _, counts = np.unique(code, return_counts=True)
    if counts.min() >= cv_folds:
        return list(StratifiedKFold(cv_folds, shuffle=True, random_state=seed).split(np.zeros(len(code)), code))
    return list(KFold(cv_folds, shuffle=True, random_state=seed).split(np.zeros(len(code))))


# ---- decoding --------------------------------------------------------------------------------------

@dataclass
class Decoded:
    accuracy: float                 # mean held-out accuracy over the outer folds
    lo: float                       # 95% Wilson interval on the pooled held-out predictions
    hi: float
    n: int
    C: list = field(default_factory=list)               # C chosen in each outer fold
    predictions: np.ndarray | None = None                # held-out prediction of every trial
    folds: list = field(default_factory=list)


def _score(pred: np.ndarray, y: np.ndarray, folds) -> tuple[float, float, float]:
    acc = float(np.mean([np.mean(pred[te] == y[te]) for _, te in folds]))
    lo, hi = wilson_ci(int((pred == y).sum()), len(y))
    return acc, lo, hi


def decode(X, y, cv_folds: int = 5, seed: int = 0, Cs=CS, inner_folds: int = INNER_FOLDS,
           folds=None) -> Decoded:
    """Cross-validated L2 logistic regression of the binary labels `y` from `X` (n, d), with C chosen
    by inner cross-validation on each outer training fold only (see the module docstring).
    `folds` overrides the stratified outer folds (a list of (train, test) index arrays)."""
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    y = np.asarray(y)
    classes = np.unique(y)
    if len(classes) > 2:
        raise ValueError(f"decode needs binary labels; got {len(classes)} classes {classes[:5]}")
    yb = (y == classes[-1]).astype(int)
    folds = outer_folds(yb, cv_folds, seed) if folds is None else folds
    pred, chosen = nested_cv(X, yb[:, None], folds, Cs, inner_folds, seed)
    acc, lo, hi = _score(pred[:, 0], yb, folds)
    return Decoded(acc, lo, hi, len(y), chosen[:, 0].tolist(), classes[pred[:, 0]], folds)


def label_shuffles(n: int, n_shuffles: int, seed: int) -> list[np.ndarray]:
    """The permutations of the trials shared by every shuffled baseline of the decoders (seeded)."""
    rng = np.random.default_rng([seed, 9973])
    return [rng.permutation(n) for _ in range(n_shuffles)]


def decode_along(H: np.ndarray, variables: pd.DataFrame, axis_name: str, columns=DECODED,
                 cv_folds: int = 5, seed: int = 0, n_shuffles: int = 5, Cs=CS,
                 inner_folds: int = INNER_FOLDS, reselect_C_for_shuffles: bool = False,
                 progress: bool = False) -> pd.DataFrame:
    """Decode every variable in `columns` from ``H[:, i]`` for each index ``i`` of axis 1 of `H`
    (n_trials, n_index, d); `n_shuffles` label permutations give the chance level.  Tidy rows:
    variable, <axis_name>, accuracy, lo, hi, shuffled_accuracy, shuffled_sd, C (median chosen).

    The shuffles use the same outer folds and, by default, in each outer fold the C selected for
    the real variable: on permuted labels every C is equally uninformative, so selecting it again
    would not move the chance level, and it would cost (1 + n_shuffles) times as much.
    ``reselect_C_for_shuffles=True`` runs the full selection on every shuffle as well."""
    from helpers.core.progress import bar
    columns = list(columns)
    Y = variables[columns].to_numpy().astype(int)
    n = len(Y)
    perms = label_shuffles(n, n_shuffles, seed)
    Yall = np.hstack([Y] + [Y[p] for p in perms])
    T = len(columns)
    folds = outer_folds(Y, cv_folds, seed)
    rows = []
    c_from = None if reselect_C_for_shuffles else np.tile(np.arange(T), 1 + n_shuffles)
    for i in bar(range(H.shape[1]), show=progress, desc=f"decode by {axis_name}", leave=False):
        pred, chosen = nested_cv(H[:, i], Yall, folds, Cs, inner_folds, seed, c_from)
        accs = np.array([_score(pred[:, j], Yall[:, j], folds)[0] for j in range(Yall.shape[1])])
        sh = accs[T:].reshape(n_shuffles, T) if n_shuffles else np.full((1, T), np.nan)
        for j, col in enumerate(columns):
            acc, lo, hi = _score(pred[:, j], Y[:, j], folds)
            rows.append({"variable": col, axis_name: i, "accuracy": acc, "lo": lo, "hi": hi,
                         "shuffled_accuracy": float(np.mean(sh[:, j])), "shuffled_sd": float(np.std(sh[:, j])),
                         "C": float(np.median(chosen[:, j]))})
    return pd.DataFrame(rows)


def decode_by_position(H: np.ndarray, variables: pd.DataFrame, labels: Sequence[str] | None = None,
                       **kwargs) -> pd.DataFrame:
    """Decoding accuracy at every token position of one layer; `H` is (n_trials, n_pos, d_model)
    (or (n_trials, 1, n_pos, d_model) as returned by ``collect_hidden_states``).  `labels` (one per
    position) adds a ``token`` column.  Keywords: see :func:`decode_along`."""
    H = np.asarray(H)
    if H.ndim == 4:
        H = H[:, 0]
    df = decode_along(H, variables, "position", **kwargs)
    if labels is not None:
        df["token"] = [labels[p] for p in df["position"]]
    return df


def decode_by_layer(H: np.ndarray, variables: pd.DataFrame, **kwargs) -> pd.DataFrame:
    """Decoding accuracy at the answer position of every layer; `H` is (n_trials, n_layers + 1,
    d_model) (or (n_trials, n_layers + 1, 1, d_model)); layer 0 is the embeddings, layer l the
    output of decoder layer l - 1.  Keywords: see :func:`decode_along`."""
    H = np.asarray(H)
    if H.ndim == 4:
        H = H[:, :, -1]
    return decode_along(H, variables, "layer", **kwargs)


# ---- figures -------------------------------------------------------------------------------------


def linear_probe_accuracy(X: np.ndarray, y, cv_folds: int = 5, seed: int = 0, **kwargs) -> dict:
    """Cross-validated accuracy of an L2 logistic-regression probe (the decoder of
    :func:`decode`: standardised units, C chosen on the training folds only),
    with a 95% Wilson interval over the held-out predictions."""
    from helpers.readouts.probes import decode
    r = decode(X, y, cv_folds=cv_folds, seed=seed, **kwargs)
    return {"accuracy": r.accuracy, "lo": r.lo, "hi": r.hi}


def held_out_correct(X: np.ndarray, variables: pd.DataFrame, columns=DECODED, cv_folds: int = 5,
                     seed: int = 0) -> dict[str, np.ndarray]:
    """Per variable, whether the cross-validated probe (:func:`decode`) predicted each trial right:
    the per-trial numbers that a paired comparison of two models on the same trials needs."""
    out = {}
    for col in columns:
        y = variables[col].to_numpy()
        out[col] = np.asarray(decode(X, y, cv_folds=cv_folds, seed=seed).predictions == y, dtype=bool)
    return out
