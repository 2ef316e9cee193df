"""Summaries of a scored run: accuracy with Wilson intervals, mean logit difference toward the
correct answer with a bootstrap interval, accuracy per coherence level, congruency and context."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from helpers.stats.bootstrap import bootstrap_ci
from helpers.stats.intervals import wilson_ci
from helpers.tasks.decision import Trial


def summarize(trials: Sequence[Trial], logit_diff: np.ndarray, top1: np.ndarray | None = None) -> dict:
    """Accuracy (Wilson CI), mean logit difference toward the correct answer (bootstrap CI),
    and accuracy per relevant coherence level and per congruency."""
    choice = np.array([t.choice for t in trials])
    correct = np.sign(logit_diff) == choice
    signed = logit_diff * choice          # positive = toward the correct answer
    k, n = int(correct.sum()), len(trials)
    out = {
        "n": n,
        "accuracy": k / n if n else float("nan"),
        "accuracy_ci": wilson_ci(k, n),
        "logit_diff": float(signed.mean()) if n else float("nan"),
        "logit_diff_ci": bootstrap_ci(signed),
    }
    if top1 is not None:
        out["top1_accuracy"] = float(np.mean(top1)) if n else float("nan")
    rel = np.array([abs(t.relevant_coh) for t in trials])
    out["by_relevant_level"] = {}
    for level in sorted(set(rel.tolist())):
        m = rel == level
        out["by_relevant_level"][f"{level:.2f}"] = _acc(correct[m])
    cong = np.array([t.congruent for t in trials])
    out["by_congruency"] = {"congruent": _acc(correct[cong]), "incongruent": _acc(correct[~cong])}
    ctx = np.array([t.context for t in trials])
    out["by_context"] = {c: _acc(correct[ctx == c]) for c in ("motion", "color")}
    return out


def _acc(correct: np.ndarray) -> dict:
    k, n = int(correct.sum()), len(correct)
    return {"n": n, "accuracy": k / n if n else float("nan"), "ci": wilson_ci(k, n)}


def predictions_frame(trials: Sequence[Trial], scores: dict[str, np.ndarray]):
    """One row per trial: latent variables, logit difference, choice and correctness.  A tie (logit
    difference exactly 0, which bf16 scoring produces now and then) is no choice (``model_choice``
    0) and not correct, as in :func:`summarize`'s accuracy."""
    import pandas as pd
    df = pd.DataFrame([t.to_dict() for t in trials]).drop(columns=["motion_samples", "color_samples"])
    df["logit_diff"] = scores["logit_diff"]
    df["top1"] = scores["top1"]
    return with_choices(df)


def with_choices(df):
    """`df` (with ``logit_diff`` and ``choice``) with ``model_choice`` (the sign of the logit
    difference; 0 for a tie) and ``correct``."""
    df["model_choice"] = np.sign(df["logit_diff"].to_numpy()).astype(int)
    df["correct"] = df["model_choice"] == df["choice"]
    return df


def accuracy_by_table(preds: dict, column: str):
    """Accuracy with a 95% Wilson interval per model (the keys of `preds`, prediction frames of
    :func:`predictions_frame`) and value of `column` (e.g. ``congruent``): columns model, column,
    value, n, accuracy, lo, hi."""
    import pandas as pd
    values = sorted(set().union(*(set(df[column].unique()) for df in preds.values())), key=str)
    rows = []
    for v in values:
        for name, df in preds.items():
            d = df[df[column] == v]
            acc = d["correct"].mean() if len(d) else np.nan
            lo, hi = wilson_ci(int(d["correct"].sum()), len(d))
            rows.append({"model": name, "column": column, "value": v, "n": len(d), "accuracy": acc,
                         "lo": lo, "hi": hi})
    return pd.DataFrame(rows)


def bf16_agreement(run, trials) -> dict | None:
    """Re-score a run trained and scored with bf16 autocast in fp32 on `trials` (its test set):
    the share of trials with the same choice, both accuracies and the largest logit-difference gap.
    None for a run without bf16."""
    from helpers.models.scoring import score_trials
    if not run.config.bf16:
        return None
    model, tok = run.load_model()
    fp32 = score_trials(model, tok, trials, bf16=False)["logit_diff"]
    bf = run.predictions("test")["logit_diff"].to_numpy()
    y = np.array([t.choice for t in trials])
    return {"same choice (share of test trials)": float(np.mean(np.sign(fp32) == np.sign(bf))),
            "accuracy fp32": float(np.mean(np.sign(fp32) == y)),
            "accuracy bf16": float(np.mean(np.sign(bf) == y)),
            "max |logit diff fp32 - bf16|": float(np.max(np.abs(fp32 - bf)))}
