"""Decoding task variables from hidden states, mixed selectivity, and per-head SVM decoding.

**Task variables** (:func:`task_variables`), one row per trial:

* ``context`` 0 = motion, 1 = color;
* ``motion_sign``, ``color_sign``: 1 when the stream's mean coherence is positive, else 0;
* ``choice``: the correct answer, 1 = `` right``, 0 = `` left`` (sign of the relevant stream's
  *shown* sum; it equals the relevant coherence sign on most but not all trials);
* ``congruent``: 1 when both streams' mean coherences have the same sign;
* ``response_type``: context x choice, four classes ``motion-left``, ``motion-right``,
  ``color-left``, ``color-right`` (what the model has to do on the trial: which stream it must
  read and which answer that stream gives).

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

**Mixed selectivity** (:func:`unit_selectivity`, :func:`mixed_selectivity`): see there.
**Head decoding** (:func:`head_decoding`): a linear SVM per attention head.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from .evaluation import wilson_ci

DECODED = ("context", "motion_sign", "color_sign", "choice")
CS = (0.001, 0.01, 0.1, 1.0, 10.0)
INNER_FOLDS = 3
RESPONSE_TYPES = ("motion-left", "motion-right", "color-left", "color-right")
HEAD_TARGETS = {"response_type": "response type (context x choice, 4 classes)",
                "congruent": "congruent vs incongruent"}
MODEL_COLORS = {"pretrained": "#7f7f7f", "fine-tuned": "#1f77b4", "scratch": "#d62728"}
MIXED_MARGIN = 0.05   # how much more mixed than before fine-tuning / a random basis counts
MIN_MIXED_FRACTION = 0.10


# ---- variables ------------------------------------------------------------------------------------

def task_variables(trials) -> pd.DataFrame:
    """One row per trial with the decoded variables (0/1 codes, see the module docstring) and
    ``congruent``, ``response_type``, the signed coherences and the relevant / irrelevant signs."""
    rows = []
    for t in trials:
        rows.append({
            "context": int(t.context == "color"),
            "motion_sign": int(t.motion_coh > 0),
            "color_sign": int(t.color_coh > 0),
            "choice": int(t.choice > 0),
            "congruent": int(t.congruent),
            "response_type": f"{t.context}-{'right' if t.choice > 0 else 'left'}",
            "relevant_sign": int(t.relevant_coh > 0),
            "irrelevant_sign": int(t.irrelevant_coh > 0),
            "motion_coh": t.motion_coh, "color_coh": t.color_coh,
            "relevant_coh": t.relevant_coh, "irrelevant_coh": t.irrelevant_coh,
        })
    return pd.DataFrame(rows)


# ---- the solver ------------------------------------------------------------------------------------

def _standardize(Xtr: np.ndarray, Xte: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
        Ztr, Zva = _row_space(*_standardize(X[itr], X[iva]))
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
        Ztr, Zte = _row_space(*_standardize(X[tr], X[te]))
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


def _shuffles(n: int, n_shuffles: int, seed: int) -> list[np.ndarray]:
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
    from .progress import bar
    columns = list(columns)
    Y = variables[columns].to_numpy().astype(int)
    n = len(Y)
    perms = _shuffles(n, n_shuffles, seed)
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


def decoding_verdict(by_layer: pd.DataFrame, model: str = "fine-tuned", before: str = "pretrained",
                     columns=DECODED) -> tuple[str, str]:
    """Lin (2024): after fine-tuning, the last layer's states encode the task variables.  Uses the
    last layer at the answer position (a ``decode_by_layer`` table with a ``model`` column).  A
    variable is *decodable* when its 95% CI lies above 0.5 and its accuracy above the shuffled
    mean.  Replicated: all of `columns` decodable in `model`; not replicated: none; inconclusive
    otherwise.  The evidence also gives the model before fine-tuning (`before`)."""
    def last(m):
        d = by_layer[by_layer["model"] == m]
        return d[d["layer"] == d["layer"].max()].set_index("variable") if len(d) else None
    ft, pre = last(model), last(before)
    if ft is None:
        return "inconclusive", f"No decoding results for the {model!r} model."
    ok, parts = [], []
    for v in columns:
        r = ft.loc[v]
        ok.append(bool(r.lo > 0.5 and r.accuracy > r.shuffled_accuracy))
        s = (f"{v} {r.accuracy:.1%} (95% CI {r.lo:.1%}-{r.hi:.1%}, shuffled {r.shuffled_accuracy:.1%}")
        if pre is not None:
            s += f"; {before} {pre.loc[v].accuracy:.1%}"
        parts.append(s + ")")
    evidence = (f"Last layer, answer position, {model}: " + "; ".join(parts) + ".")
    if all(ok):
        return "replicated", evidence
    if not any(ok):
        return "not replicated", evidence
    return "inconclusive", evidence


# ---- mixed selectivity --------------------------------------------------------------------------

def _design(variables: pd.DataFrame, columns) -> np.ndarray:
    V = variables[list(columns)].to_numpy().astype(float)
    return np.hstack([np.ones((len(V), 1)), 2.0 * V - 1.0])        # intercept, +-1 codes


def variance_inflation(variables: pd.DataFrame, columns=DECODED) -> pd.Series:
    """Variance inflation factor of each variable in the joint regression (1 = uncorrelated)."""
    V = variables[list(columns)].to_numpy().astype(float)
    R = np.corrcoef(V, rowvar=False)
    return pd.Series(np.diag(np.linalg.inv(R)), index=list(columns))


def _bh(p: np.ndarray, alpha: float) -> np.ndarray:
    """Benjamini-Hochberg: which of the p-values (any shape) are discoveries at FDR `alpha`."""
    flat = p.ravel()
    order = np.argsort(flat)
    m = len(flat)
    below = flat[order] <= alpha * np.arange(1, m + 1) / m
    k = np.nonzero(below)[0].max() + 1 if below.any() else 0
    out = np.zeros(m, dtype=bool)
    out[order[:k]] = True
    return out.reshape(p.shape)


def unit_selectivity(X: np.ndarray, variables: pd.DataFrame, columns=DECODED, alpha: float = 0.05) -> dict:
    """Which units are selective for which variables.

    The four variables are correlated by construction (the choice is the sign of the relevant
    stream, so it agrees with the motion sign on about 3/4 of the trials, and so on), so testing
    each variable on its own would credit a unit that encodes only the choice with motion and
    color selectivity too.  We therefore fit, for every unit, **one** linear regression on all
    variables at once (±1 codes plus an intercept) and test each coefficient (two-sided t-test,
    n - 5 degrees of freedom): a unit is selective for a variable when that variable explains
    activity that the others do not.  The p-values of all units x variables are corrected together
    by Benjamini-Hochberg at `alpha`.  Returns ``pvalues``, ``coef`` (units x variables),
    ``selective`` (bool, same shape) and ``count`` (variables per unit, 0..len(columns))."""
    from scipy import stats
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    D = _design(variables, columns)
    n, p = D.shape
    XtX_inv = np.linalg.inv(D.T @ D)
    B = XtX_inv @ D.T @ X                                 # (p, units)
    resid = X - D @ B
    dof = n - p
    sigma2 = (resid ** 2).sum(0) / dof
    se = np.sqrt(np.outer(np.diag(XtX_inv)[1:], sigma2))   # (variables, units)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 1e-12 * (1 + np.abs(X).max(0)), B[1:] / se, 0.0)
    pvals = (2 * stats.t.sf(np.abs(t), dof)).T            # (units, variables)
    sel = _bh(pvals, alpha)
    return {"pvalues": pvals, "coef": B[1:].T, "selective": sel, "count": sel.sum(1), "columns": list(columns)}


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
    for perm in _shuffles(len(variables), n_shuffles, seed):
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


def mixed_selectivity_verdict(tables: dict[str, pd.DataFrame], model: str = "fine-tuned",
                              shuffled_mixed: Sequence[float] | None = None,
                              min_fraction: float = MIN_MIXED_FRACTION, before: str = "pretrained",
                              rotated: float | None = None, margin: float = MIXED_MARGIN) -> tuple[str, str]:
    """Lin (2024): *after fine-tuning*, single units encode several task variables.  `tables` maps
    a model name to its :func:`mixed_selectivity` table; `shuffled_mixed` are the mixed fractions
    of the individual shuffles of `model` (default: the table's shuffled mean); `rotated` is the
    mixed fraction of `model` in a random rotation of its units.

    Not replicated: the fraction of units selective for >= 2 variables does not exceed every
    shuffle.  Replicated: it exceeds every shuffle, is at least `min_fraction`, and exceeds by
    `margin` both the model before fine-tuning (`before`, when given) and the random-rotation
    reference (when given) -- otherwise the mixing is not something fine-tuning produced, or not
    something about single units, and the verdict is inconclusive."""
    if model not in tables:
        return "inconclusive", f"No selectivity results for the {model!r} model."
    s = mixed_summary(tables[model])
    null = max(shuffled_mixed) if shuffled_mixed is not None and len(shuffled_mixed) else s["shuffled_mean"]
    parts = [f"{model}: {s['mixed']:.1%} of units are selective for two or more variables "
             f"(label shuffles: at most {null:.1%})"]
    for m, t in tables.items():
        if m != model:
            parts.append(f"{m}: {mixed_summary(t)['mixed']:.1%}")
    evidence = "; ".join(parts) + "."
    if s["mixed"] <= null:
        return "not replicated", evidence
    if s["mixed"] < min_fraction:
        return "inconclusive", evidence + f" (above the shuffles but below {min_fraction:.0%})"
    if before in tables and s["mixed"] - mixed_summary(tables[before])["mixed"] < margin:
        return "inconclusive", evidence + (f" Units were as mixed before fine-tuning ({before}, within "
                                           f"{margin:.0%}): mixing is not something fine-tuning produced here.")
    if rotated is not None and s["mixed"] - rotated < margin:
        return "inconclusive", evidence + (f" A random rotation of the same units is as mixed ({rotated:.1%}, "
                                           f"within {margin:.0%}): this is not a property of single units.")
    return "replicated", evidence


def shuffled_mixed_fractions(X: np.ndarray, variables: pd.DataFrame, columns=DECODED, alpha: float = 0.05,
                             n_shuffles: int = 5, seed: int = 0, min_variables: int = 2) -> list[float]:
    """The mixed fraction (>= `min_variables`) of each label shuffle (same permutations as
    :func:`mixed_selectivity`)."""
    out = []
    for perm in _shuffles(len(variables), n_shuffles, seed):
        c = unit_selectivity(X, variables.iloc[perm].reset_index(drop=True), columns, alpha)["count"]
        out.append(float(np.mean(c >= min_variables)))
    return out


# ---- per-head SVM -------------------------------------------------------------------------------

def head_decoding(Z: np.ndarray, y, cv_folds: int = 5, seed: int = 0, C: float = 1.0,
                  alpha: float = 0.05) -> pd.DataFrame:
    """Cross-validated accuracy of a linear SVM (``sklearn.svm.LinearSVC``, one-vs-rest, fixed `C`,
    units standardised on the training folds) decoding `y` from each head's output ``z`` at one
    position.  `Z` is (n_trials, n_layers, n_heads, d_head) (``collect_activations(...)['z']``).

    Rows: layer, head, accuracy (mean over outer stratified folds), lo, hi (95% Wilson on pooled
    held-out predictions), chance (share of the most frequent class), p (one-sided binomial test
    of the pooled held-out hits against chance) and significant (Benjamini-Hochberg over heads at
    `alpha`).  Held-out predictions of different folds are not strictly independent, so p is a
    screening number."""
    from scipy import stats
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
                Xtr, Xte = _standardize(Z[tr, l, h], Z[te, l, h])
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
            p = stats.binomtest(int(hits.sum()), n, chance, alternative="greater").pvalue
            rows.append({"layer": l, "head": h, "accuracy": acc, "lo": lo, "hi": hi, "chance": chance, "p": p})
    df = pd.DataFrame(rows)
    df["significant"] = _bh(df["p"].to_numpy(), alpha)
    return df


def head_table(df: pd.DataFrame) -> np.ndarray:
    """(n_layers, n_heads) array of accuracies from a :func:`head_decoding` table."""
    return df.pivot(index="layer", columns="head", values="accuracy").to_numpy()


def head_summary(results: dict[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    """Per (model, target): chance, best head and its accuracy, share of heads significantly above
    chance (BH), and the mean accuracy of the heads of the last layer."""
    rows = []
    for (model, target), df in results.items():
        best = df.loc[df["accuracy"].idxmax()]
        L = df["layer"].max()
        rows.append({"model": model, "target": target, "chance": float(df["chance"].iloc[0]),
                     "best_head": f"L{int(best['layer'])}H{int(best['head'])}", "best_accuracy": float(best["accuracy"]),
                     "share_significant": float(df["significant"].mean()),
                     "last_layer_mean": float(df[df["layer"] == L]["accuracy"].mean())})
    return pd.DataFrame(rows)


def head_verdict(results: dict[tuple[str, str], pd.DataFrame], model: str = "fine-tuned",
                 target: str = "response_type") -> tuple[str, str]:
    """Lin (2024): single heads of the fine-tuned model carry the response type.  Replicated when
    at least one head of `model` decodes `target` significantly above the majority-class rate
    (binomial test, Benjamini-Hochberg over heads); not replicated otherwise.  The evidence gives
    every model's best head and count of significant heads."""
    if (model, target) not in results:
        return "inconclusive", f"No head results for {model!r} and {target!r}."
    parts = []
    for (m, t), df in results.items():
        if t != target:
            continue
        best = df.loc[df["accuracy"].idxmax()]
        parts.append(f"{m}: {int(df['significant'].sum())} of {len(df)} heads above chance, best "
                     f"L{int(best['layer'])}H{int(best['head'])} {best['accuracy']:.1%} "
                     f"(95% CI {best['lo']:.1%}-{best['hi']:.1%}; chance {best['chance']:.1%})")
    evidence = f"{HEAD_TARGETS.get(target, target)}: " + "; ".join(parts) + "."
    return ("replicated" if results[(model, target)]["significant"].any() else "not replicated"), evidence


# ---- figures -------------------------------------------------------------------------------------

def _colour(model: str, i: int) -> str:
    return MODEL_COLORS.get(model, f"C{i}")


def plot_by_position(df: pd.DataFrame, labels: Sequence[str] | None = None, columns=DECODED):
    """Accuracy against token position, one panel per variable, one line per model (band: 95% CI;
    dashed: mean over label shuffles)."""
    import matplotlib.pyplot as plt
    models = list(dict.fromkeys(df["model"]))
    P = int(df["position"].max()) + 1
    fig, axes = plt.subplots(len(columns), 1, figsize=(max(8.0, 0.2 * P + 2), 2.1 * len(columns) + 0.8),
                             sharex=True, squeeze=False)
    for ax, var in zip(axes[:, 0], columns):
        for i, m in enumerate(models):
            d = df[(df["model"] == m) & (df["variable"] == var)].sort_values("position")
            c = _colour(m, i)
            ax.plot(d["position"], d["accuracy"], "-", color=c, lw=1.4, label=m)
            ax.fill_between(d["position"], d["lo"], d["hi"], color=c, alpha=0.18, lw=0)
            ax.plot(d["position"], d["shuffled_accuracy"], "--", color=c, lw=0.8, alpha=0.8)
        ax.axhline(0.5, color="k", lw=0.6, ls=":")
        ax.set_ylim(0.3, 1.02)
        ax.set_ylabel("accuracy")
        ax.set_title(var, fontsize=9, loc="left")
    axes[0, 0].legend(fontsize=8, ncol=len(models), loc="lower right")
    ax = axes[-1, 0]
    ax.set_xticks(range(P))
    if labels is not None:
        ax.set_xticklabels([repr(s)[1:-1] for s in labels], rotation=90, fontsize=7, family="monospace")
    ax.set_xlabel("token position (dashed: shuffled labels)")
    fig.tight_layout()
    return fig


def plot_by_layer(df: pd.DataFrame, columns=DECODED):
    """Accuracy at the answer position against layer (0 = embeddings), one panel per variable."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    models = list(dict.fromkeys(df["model"]))
    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 3.0), sharey=True, squeeze=False)
    for ax, var in zip(axes[0], columns):
        for i, m in enumerate(models):
            d = df[(df["model"] == m) & (df["variable"] == var)].sort_values("layer")
            c = _colour(m, i)
            ax.plot(d["layer"], d["accuracy"], "-o", ms=3, color=c, label=m)
            ax.fill_between(d["layer"], d["lo"], d["hi"], color=c, alpha=0.18, lw=0)
            ax.plot(d["layer"], d["shuffled_accuracy"], "--", color=c, lw=0.8, alpha=0.8)
        ax.axhline(0.5, color="k", lw=0.6, ls=":")
        ax.set_title(var, fontsize=9)
        ax.set_xlabel("layer (0 = embeddings)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0.3, 1.02)
    axes[0, 0].set_ylabel("accuracy at the answer position")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_mixed_selectivity(tables: dict[str, pd.DataFrame]):
    """Share of units selective for 0..4 variables, models side by side; black marks with bars:
    the label-shuffle baseline (mean +- sd)."""
    import matplotlib.pyplot as plt
    names = list(tables)
    fig, ax = plt.subplots(figsize=(7, 3.4))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        t = tables[name]
        x = t["n_variables"].to_numpy() + (i - (len(names) - 1) / 2) * width
        ax.bar(x, t["fraction"], width, color=_colour(name, i), label=name)
        ax.errorbar(x, t["shuffled_fraction"], yerr=t["shuffled_sd"], fmt="_", color="k", ms=8, capsize=2,
                    label="label shuffles" if i == len(names) - 1 else None)
    ax.set_xticks(tables[names[0]]["n_variables"])
    ax.set_xlabel("number of variables a unit is selective for")
    ax.set_ylabel("share of units")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_head_heatmaps(results: dict[tuple[str, str], pd.DataFrame]):
    """Layer x head heatmaps of SVM accuracy: one row per target, one column per model; the colour
    scale runs from chance to 1; dots mark heads significantly above chance."""
    import matplotlib.pyplot as plt
    models = list(dict.fromkeys(m for m, _ in results))
    targets = list(dict.fromkeys(t for _, t in results))
    some = next(iter(results.values()))
    L, H = int(some["layer"].max()) + 1, int(some["head"].max()) + 1
    fig, axes = plt.subplots(len(targets), len(models), layout="constrained", squeeze=False,
                             figsize=(1.2 + 2.4 * len(models) * max(1.0, H / 9), 0.6 + len(targets) * max(2.4, 0.13 * L)))
    for i, target in enumerate(targets):
        for j, m in enumerate(models):
            ax = axes[i, j]
            df = results[(m, target)]
            chance = float(df["chance"].iloc[0])
            im = ax.imshow(head_table(df), aspect="auto", origin="lower", cmap="viridis", vmin=chance, vmax=1.0)
            sig = df[df["significant"]]
            ax.plot(sig["head"], sig["layer"], "w.", ms=3)
            ax.set_title(f"{m}: {target}", fontsize=8)
            ax.set_xticks(range(H) if H <= 12 else range(0, H, 2))
            ax.set_yticks(range(L) if L <= 12 else range(0, L, 2))
            ax.tick_params(labelsize=7)
            if i == len(targets) - 1:
                ax.set_xlabel("head")
            if j == 0:
                ax.set_ylabel("layer")
        fig.colorbar(im, ax=list(axes[i]), fraction=0.03, pad=0.02, label="accuracy")
    return fig
