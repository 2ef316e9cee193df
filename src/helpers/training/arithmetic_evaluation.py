"""Scoring a model on synthetic arithmetic (:mod:`helpers.tasks.arithmetic`).

* ``correct``: the value's digit is the top-1 token over the whole vocabulary after ``=``;
* ``choice_correct``: among the ten digits, the value's has the largest logit (chance 0.1).

Intervals are 95% Wilson intervals over trials (:mod:`helpers.stats.intervals`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from helpers.models.scoring import score_candidates
from helpers.stats.intervals import wilson_ci
from helpers.tasks.arithmetic import ArithmeticTrial, answer_ids, digit_ids


def score_arithmetic(model, tokenizer, trials: Sequence[ArithmeticTrial], bf16: bool = False, batch_size: int = 64,
                     progress: bool = False, desc: str = "evaluate", name: str = "tokenizer") -> pd.DataFrame:
    """One row per trial: prompt, answer, ``correct``, ``choice_correct``, ``pick`` (the digit with
    the largest logit) and ``p_answer``."""
    digits = digit_ids(tokenizer, name)
    scores = score_candidates(model, tokenizer, [t.prompt for t in trials], answer_ids(tokenizer, trials, name),
                              np.tile(digits, (len(trials), 1)), batch_size=batch_size, bf16=bf16,
                              progress=progress, desc=desc)
    values = np.array([t.value for t in trials], dtype=int)
    return pd.DataFrame({"prompt": [t.prompt for t in trials], "answer": [t.answer for t in trials],
                         "correct": scores["top1"], "choice_correct": scores["pick"] == values,
                         "pick": scores["pick"], "p_answer": scores["p_answer"]})


def summarize(preds: pd.DataFrame) -> dict:
    """Top-1 and forced-choice accuracy with their Wilson intervals (``<rate>_ci``), chance, ``n``."""
    out: dict = {"n": len(preds), "chance": 0.1}
    for rate, column in (("accuracy", "correct"), ("choice_accuracy", "choice_correct")):
        x = np.asarray(preds[column], dtype=bool)
        out[rate] = float(x.mean()) if len(x) else float("nan")
        out[f"{rate}_ci"] = wilson_ci(int(x.sum()), len(x))
    return out
