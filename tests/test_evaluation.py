"""Scoring: padding, last-position logits, logit differences, accuracy and its uncertainty."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers.models import scoring
from helpers.models.scoring import last_position_logits, pad_batch
from helpers.models.sources import load_source
from helpers.stats.bootstrap import bootstrap_ci
from helpers.stats.intervals import wilson_ci
from helpers.tasks.decision import TaskConfig, make_splits
from helpers.training import evaluation
from helpers.training.evaluation import summarize


@pytest.fixture(scope="module")
def tiny_gpt2(gpt2_tok):
    model, tok = load_source("tiny-gpt2", seed=0)
    return model, tok


@pytest.fixture(scope="module")
def trials():
    return make_splits(TaskConfig(n_samples=3), 0, 0, 40)["test"]


# ---- confidence intervals ---------------------------------------------------------------------

@pytest.mark.parametrize("k, n", [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (50, 100), (999, 1000), (1, 3)])
def test_wilson_ci_contains_p_and_stays_in_unit_interval(k, n):
    lo, hi = wilson_ci(k, n)
    p = k / n
    eps = 1e-12   # wilson_ci(n, n) returns an upper bound of 1 - 1 ulp (floating point)
    assert -eps <= lo <= p + eps
    assert p - eps <= hi <= 1 + eps
    assert hi > lo


def test_wilson_ci_known_value_and_shrinks_with_n():
    lo, hi = wilson_ci(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    lo2, hi2 = wilson_ci(500, 1000)
    assert hi2 - lo2 < hi - lo
    assert all(math.isnan(x) for x in wilson_ci(0, 0))


def test_bootstrap_ci_brackets_the_mean():
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 1.0, size=200)
    lo, hi = bootstrap_ci(x)
    assert lo < x.mean() < hi
    assert hi - lo < 0.5                     # ~ 2 * 1.96 / sqrt(200) = 0.28
    assert bootstrap_ci(x) == (lo, hi), "deterministic for a given seed"
    assert bootstrap_ci(x, seed=1) != (lo, hi)
    lo_m, hi_m = bootstrap_ci(x, stat=np.median)
    assert lo_m < np.median(x) < hi_m
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([])))


def test_bootstrap_ci_of_a_constant_is_the_constant():
    assert bootstrap_ci(np.full(20, 3.5)) == (3.5, 3.5)


# ---- padding and last-position logits ---------------------------------------------------------

def test_pad_batch():
    ids, last = pad_batch([[5, 6, 7], [8], [1, 2]], pad_id=0)
    assert ids.dtype == torch.long
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [1, 2, 0]]
    assert last.tolist() == [2, 0, 1]
    assert [ids[i, last[i]].item() for i in range(3)] == [7, 8, 2]


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_last_position_logits_match_full_forward(name, gpt2_tok):
    model, tok = load_source(name, seed=0)
    prompts = ["Context: motion. Answer:",
               "Context: color. Motion: +0.10 -0.20. Color: +0.30. Answer:",
               "Hello world!"]
    seqs = [tok.encode(p) for p in prompts]
    assert len({len(s) for s in seqs}) == 3, "test premise: different lengths"
    ids, last = pad_batch(seqs, tok.pad_token_id)
    with torch.no_grad():
        got = last_position_logits(model, ids, last)
        full = model(ids).logits
    assert got.shape == (3, 50257) and got.dtype == torch.float32
    for i, s in enumerate(seqs):
        torch.testing.assert_close(got[i], full[i, len(s) - 1], atol=1e-5, rtol=1e-5)
        # right padding does not change the real positions: same as the unpadded sequence alone
        with torch.no_grad():
            alone = model(torch.tensor([s])).logits[0, -1]
        torch.testing.assert_close(got[i], alone, atol=1e-4, rtol=1e-4)


# ---- scoring ---------------------------------------------------------------------------------------

def test_score_trials_matches_manual_logit_difference(tiny_gpt2, trials):
    model, tok = tiny_gpt2
    scores = scoring.score_trials(model, tok, trials, batch_size=7)
    assert scores["logit_diff"].shape == (len(trials),)
    assert scores["top1"].dtype == bool and scores["top1"].shape == (len(trials),)
    with torch.no_grad():
        for i in (0, 13, len(trials) - 1):
            logits = model(torch.tensor([tok.encode(trials[i].prompt)])).logits[0, -1]
            assert scores["logit_diff"][i] == pytest.approx(float(logits[826] - logits[1364]), abs=1e-4)
            target = 826 if trials[i].choice == 1 else 1364
            assert scores["top1"][i] == (int(logits.argmax()) == target)


def test_score_trials_independent_of_batch_size_and_restores_mode(tiny_gpt2, trials):
    model, tok = tiny_gpt2
    model.train()
    try:
        a = scoring.score_trials(model, tok, trials, batch_size=3)
        assert model.training, "score_trials restores the training flag"
    finally:
        model.eval()
    b = scoring.score_trials(model, tok, trials, batch_size=64)
    np.testing.assert_allclose(a["logit_diff"], b["logit_diff"], atol=1e-4)
    np.testing.assert_array_equal(a["top1"], b["top1"])
    # eval mode inside: dropout off, so repeated scoring is identical
    c = scoring.score_trials(model, tok, trials, batch_size=64)
    np.testing.assert_array_equal(b["logit_diff"], c["logit_diff"])


# ---- summaries ----------------------------------------------------------------------------------

def test_summarize_perfect_and_inverted(trials):
    choice = np.array([t.choice for t in trials], dtype=float)
    s = summarize(trials, choice * 1.0, top1=np.ones(len(trials), dtype=bool))
    assert s["n"] == len(trials)
    assert s["accuracy"] == 1.0
    assert s["logit_diff"] == pytest.approx(1.0)
    assert s["logit_diff_ci"] == (1.0, 1.0)
    assert s["top1_accuracy"] == 1.0
    lo, hi = s["accuracy_ci"]
    assert lo < 1.0 and hi == pytest.approx(1.0)
    assert all(v["accuracy"] == 1.0 for v in s["by_relevant_level"].values())
    assert sum(v["n"] for v in s["by_relevant_level"].values()) == len(trials)
    cong = s["by_congruency"]
    assert cong["congruent"]["n"] + cong["incongruent"]["n"] == len(trials)
    assert cong["congruent"]["n"] == sum(t.congruent for t in trials)
    ctx = s["by_context"]
    assert ctx["motion"]["n"] == sum(t.context == "motion" for t in trials)
    assert ctx["motion"]["n"] + ctx["color"]["n"] == len(trials)
    levels = {f"{abs(t.relevant_coh):.2f}" for t in trials}
    assert set(s["by_relevant_level"]) == levels

    inv = summarize(trials, -2.0 * choice)
    assert inv["accuracy"] == 0.0 and inv["logit_diff"] == pytest.approx(-2.0)
    assert "top1_accuracy" not in inv


def test_summarize_partial_accuracy(trials):
    choice = np.array([t.choice for t in trials], dtype=float)
    diff = choice.copy()
    diff[:10] *= -1                       # 10 wrong
    diff[10] = 0.0                        # a tie is not a correct choice
    s = summarize(trials, diff)
    assert s["accuracy"] == pytest.approx((len(trials) - 11) / len(trials))


def test_predictions_frame(trials):
    choice = np.array([t.choice for t in trials], dtype=float)
    diff = 0.5 * choice
    diff[0] *= -1
    top1 = np.zeros(len(trials), dtype=bool)
    df = evaluation.predictions_frame(trials, {"logit_diff": diff, "top1": top1})
    assert len(df) == len(trials)
    assert "motion_samples" not in df.columns and "prompt" in df.columns
    assert df["model_choice"].tolist() == [1 if d > 0 else -1 for d in diff]
    assert df["correct"].sum() == len(trials) - 1 and not df["correct"].iloc[0]
    assert df["top1"].tolist() == top1.tolist()


def test_a_tie_is_no_choice_and_not_correct():
    from helpers.tasks.decision import TaskConfig, make_splits
    from helpers.training.evaluation import predictions_frame, summarize
    trials = make_splits(TaskConfig(), 0, 4, 4)["test"]
    diff = np.array([0.0, 1.0, -1.0, 0.0])
    df = predictions_frame(trials, {"logit_diff": diff, "top1": np.zeros(4)})
    assert df["model_choice"].tolist() == [0, 1, -1, 0]
    assert not df["correct"].iloc[[0, 3]].any()
    assert df["correct"].mean() == summarize(trials, diff)["accuracy"]
