"""Scoring a model on entity tracking: Prakash et al.'s accuracy and what a reader needs beside it.

* ``correct``: the answer (the queried box's object, with its leading space) is the top-1 token
  over the whole vocabulary at the last position: Prakash et al.'s metric.
* ``choice_correct``: among the context's objects, the answer has the largest logit: a forced
  choice whose chance level is 1 / boxes (what the reference note measured zero-shot).
* ``picked_last``: the forced choice falls on the last-mentioned object, the pull a model without
  a binding mechanism shows (chance: 1 / boxes).

Intervals are 95% Wilson intervals over trials (:mod:`helpers.stats.intervals`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from helpers.models.scoring import score_candidates
from helpers.stats.intervals import rates_by_group, wilson_ci
from helpers.tasks.entity import EntityConfig, EntityTrial, answer_ids, make_splits
from helpers.tasks.entity import object_ids as candidate_ids  # noqa: F401  (the forced choice's candidates)


def predictions_frame(trials: Sequence[EntityTrial], scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per trial: the trial's variables, ``correct`` (top-1 over the vocabulary),
    ``choice_correct``, ``pick`` (index of the chosen object), ``picked_last``, ``p_answer`` and
    ``margin`` (the answer's logit minus the best other object's)."""
    q = np.array([t.query_index for t in trials])
    n_boxes = np.array([t.n_boxes for t in trials])
    logits = scores["candidate_logits"]
    others = logits.copy()
    others[np.arange(len(trials)), q] = -np.inf
    df = pd.DataFrame({"context": [t.context for t in trials], "n_boxes": n_boxes, "query_index": q,
                       "query_label": [t.query_label for t in trials], "answer": [t.answer for t in trials],
                       "objects": [" ".join(t.objects) for t in trials], "prompt": [t.prompt for t in trials]})
    df["correct"] = scores["top1"]
    df["pick"] = scores["pick"]
    df["choice_correct"] = (logits[np.arange(len(trials)), q] > others.max(1))
    df["picked_last"] = df["pick"] == n_boxes - 1
    df["p_answer"] = scores["p_answer"]
    df["margin"] = logits[np.arange(len(trials)), q] - others.max(1)
    return df


def score_entity(model, tokenizer, trials: Sequence[EntityTrial], bf16: bool = False, batch_size: int = 32,
                 progress: bool = False, desc: str = "evaluate", name: str = "tokenizer") -> pd.DataFrame:
    """:func:`predictions_frame` of `model` on `trials`."""
    scores = score_candidates(model, tokenizer, [t.prompt for t in trials], answer_ids(tokenizer, trials, name),
                              candidate_ids(tokenizer, trials, name), batch_size=batch_size, bf16=bf16,
                              progress=progress, desc=desc)
    return predictions_frame(trials, scores)


def _rate(x) -> tuple[float, tuple[float, float]]:
    x = np.asarray(x, dtype=bool)
    k, n = int(x.sum()), len(x)
    return (k / n if n else float("nan")), wilson_ci(k, n)


RATES = ("accuracy", "choice_accuracy", "picked_last")
_COLUMN = {"accuracy": "correct", "choice_accuracy": "choice_correct", "picked_last": "picked_last"}


def summarize(preds: pd.DataFrame) -> dict:
    """Accuracy (Prakash's), forced-choice accuracy and the share picking the last-mentioned
    object, each with its Wilson interval (``<rate>_ci``); chance (1 / boxes), the mean
    probability of the answer, and forced-choice accuracy per queried box.  Same layout as the
    decision task's summary (``accuracy``, ``accuracy_ci``, ``n``)."""
    out: dict = {"n": len(preds)}
    for rate in RATES:
        out[rate], out[f"{rate}_ci"] = _rate(preds[_COLUMN[rate]])
    out["chance"] = float(np.mean(1 / preds["n_boxes"])) if len(preds) else float("nan")
    out["p_answer"] = float(preds["p_answer"].mean()) if len(preds) else float("nan")
    out["by_query_index"] = {}
    for i, d in preds.groupby("query_index"):
        acc, ci = _rate(d["choice_correct"])
        out["by_query_index"][str(int(i))] = {"n": len(d), "choice_accuracy": acc, "ci": ci}
    return out


def by_query_position(preds: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Top-1 accuracy (Prakash et al.'s metric) at each query position of one box count: one row per
    queried box (``box``, 1-based, every box of the count listed, ``n = 0`` where no prompt queries
    it) with ``n``, ``accuracy`` and its Wilson interval ``lo``, ``hi`` simultaneous over the boxes
    (Bonferroni, as the entity gate judges them), and ``chance`` (1 / boxes).  An average far above
    chance can hide a box the model never answers; this table shows it."""
    boxes = preds["n_boxes"].unique()
    if len(boxes) != 1:
        raise ValueError(f"by_query_position reads one box count at a time; these predictions have {sorted(boxes)}")
    n_boxes = int(boxes[0])
    rows = rates_by_group(preds["correct"].to_numpy(dtype=bool), preds["query_index"].to_numpy(), level=level,
                          expected=range(n_boxes))
    return pd.DataFrame([{"box": int(r["group"]) + 1, "n": r["n"], "accuracy": r["rate"], "lo": r["lo"],
                          "hi": r["hi"], "chance": 1 / n_boxes} for r in rows])


def box_count_table(model, tokenizer, box_counts: Sequence[int], n: int, seed: int = 0, bf16: bool = False,
                    progress: bool = False, name: str = "tokenizer") -> pd.DataFrame:
    """The model on `n` test trials of each box count: one row per count with accuracy, forced-
    choice accuracy, chance and the share of last-mentioned picks, each with a 95% Wilson
    interval."""
    rows = []
    for b in box_counts:
        trials = make_splits(EntityConfig(n_boxes=int(b), seed=seed), 0, 0, n)["test"]
        s = summarize(score_entity(model, tokenizer, trials, bf16=bf16, progress=progress,
                                   desc=f"{b} boxes", name=name))
        row = {"boxes": int(b), "n": s["n"], "chance": 1 / b}
        for key in RATES:
            row.update({key: s[key], f"{key}_lo": s[f"{key}_ci"][0], f"{key}_hi": s[f"{key}_ci"][1]})
        rows.append(row)
    return pd.DataFrame(rows)
