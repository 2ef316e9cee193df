"""Training and scoring on entity tracking (helpers.training.task_io, entity_evaluation): the same
run machinery as the decision task, with the decision task's runs and cache keys unchanged; the
entity readouts have known answers on constructed scores and agree with the validation set's own
forced choice on a tiny model."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.core.errors import ParameterError
from helpers.models.scoring import encode_prompts, score_candidates, score_trials
from helpers.models.sources import load_source
from helpers.tasks import decision
from helpers.tasks.entity import EntityConfig, make_splits, make_trial
from helpers.training import entity_evaluation as ee
from helpers.training.engine import ValidationSet
from helpers.training.runs import RunConfig, get_run
from helpers.training.task_io import task_from_dict, task_io, task_to_dict

# the quick profile's fine-tuned run at N = 128 (data/runs/a84b9b0ec20265ad/run_config.json): its
# key must not change when the run config learns about other tasks, or every cached run retrains
QUICK_RUN = {"source": "smollm2-135m", "n_train": 128,
             "task": {"n_samples": 4, "noise": 0.2, "motion_levels": [0.05, 0.15, 0.5],
                      "color_levels": [0.06, 0.18, 0.5], "seed": 0},
             "lr": 0.0001, "max_steps": 800, "eval_every": 16, "patience": 6, "min_delta": 0.0, "warmup_steps": 10,
             "batch_size": 8, "weight_decay": 0.0, "max_grad_norm": 1.0, "seed": 0, "bf16": True, "n_val": 100,
             "n_test": 300, "format_version": 2}


def test_decision_runs_keep_their_cache_keys():
    cfg = RunConfig.from_dict(QUICK_RUN)
    assert cfg.key() == "a84b9b0ec20265ad"
    assert json.loads(json.dumps(cfg.to_dict())) == QUICK_RUN


def test_entity_task_round_trips_with_its_name():
    cfg = RunConfig(source="tiny-gpt2", n_train=14, task=EntityConfig(n_boxes=3, seed=2))
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["task"]["name"] == "entity-tracking" and d["task"]["n_boxes"] == 3
    assert RunConfig.from_dict(d) == cfg and RunConfig.from_dict(d).key() == cfg.key()
    assert cfg.key() != cfg.replace(task=EntityConfig(n_boxes=4, seed=2)).key()
    assert task_from_dict(task_to_dict(decision.TaskConfig())) == decision.TaskConfig()
    with pytest.raises(ParameterError, match="accepted values are \\['decision', 'entity-tracking', 'arithmetic'\\]"):
        task_from_dict({"name": "geometry"})
    with pytest.raises(ParameterError, match="expected a task configuration"):
        task_io({"n_boxes": 3})


def _frame(logits, q, top1=None):
    trials = [make_trial(("cup", "key", "pen"), ("A", "B", "C"), int(i)) for i in q]
    logits = np.asarray(logits, dtype=float)
    scores = {"candidate_logits": logits, "top1": np.ones(len(q), bool) if top1 is None else np.asarray(top1),
              "p_answer": np.full(len(q), 0.5), "pick": logits.argmax(1)}
    return ee.predictions_frame(trials, scores)


def test_readouts_on_constructed_scores():
    # a model that always prefers the last-mentioned object: right only when the last box is queried
    last = _frame([[0, 1, 2]] * 3, q=[0, 1, 2], top1=[False, False, True])
    assert last["picked_last"].all() and last["choice_correct"].tolist() == [False, False, True]
    assert last["margin"].tolist() == [-2, -1, 1]
    s = ee.summarize(last)
    assert s["choice_accuracy"] == pytest.approx(1 / 3) and s["picked_last"] == 1.0 and s["chance"] == pytest.approx(1 / 3)
    assert s["accuracy"] == pytest.approx(1 / 3) and s["choice_accuracy_ci"][0] < 1 / 3 < s["choice_accuracy_ci"][1]
    assert s["by_query_index"]["2"]["choice_accuracy"] == 1.0 and s["by_query_index"]["0"]["choice_accuracy"] == 0.0
    # a tie with another object is not a correct choice
    tie = _frame([[1, 1, 0]], q=[0])
    assert not tie["choice_correct"].iloc[0] and tie["margin"].iloc[0] == 0


def test_accuracy_by_query_position_lists_every_box_with_simultaneous_intervals():
    """A model right only when the last box is queried: 0% at boxes 1-2, 100% at box 3, each
    interval Wilson's at the Bonferroni level over the 3 boxes (scipy's ``binomtest``); a box no
    prompt queries is listed with n = 0, not dropped; two box counts at once are refused."""
    from scipy import stats
    last = _frame([[0, 1, 2]] * 6, q=[0, 1, 2, 0, 1, 2], top1=[False, False, True] * 2)
    t = ee.by_query_position(last)
    assert t["box"].tolist() == [1, 2, 3] and t["n"].tolist() == [2, 2, 2]
    assert t["accuracy"].tolist() == [0.0, 0.0, 1.0] and np.allclose(t["chance"], 1 / 3)
    ref = stats.binomtest(2, 2).proportion_ci(confidence_level=1 - 0.05 / 3, method="wilson")
    assert t["lo"].iloc[2] == pytest.approx(ref.low, rel=1e-9) and t["hi"].iloc[2] == pytest.approx(1.0)
    wider = ee.by_query_position(last, level=0.99)
    assert wider["lo"].iloc[2] < t["lo"].iloc[2]
    some = ee.by_query_position(_frame([[0, 1, 2]] * 2, q=[0, 2], top1=[True, True]))
    assert some["n"].tolist() == [1, 0, 1] and np.isnan(some["accuracy"].iloc[1])
    mixed = pd.concat([last, last.assign(n_boxes=4)])
    with pytest.raises(ValueError, match="one box count"):
        ee.by_query_position(mixed)


@pytest.fixture(scope="module")
def tiny(session_data_dir):
    torch.manual_seed(0)
    return load_source("tiny-gpt2")


def test_candidate_scoring_is_the_decision_readout_with_two_candidates(tiny, gpt2_tok):
    model, tok = tiny
    trials = decision.make_splits(decision.TaskConfig(), 0, 0, 12)["test"]
    ids = decision.check_answer_tokens(tok)
    ref = score_trials(model, tok, trials)
    got = score_candidates(model, tok, [t.prompt for t in trials], [ids[t.choice] for t in trials],
                           [[ids[+1], ids[-1]]] * len(trials))
    np.testing.assert_allclose(got["candidate_logits"][:, 0] - got["candidate_logits"][:, 1], ref["logit_diff"],
                               atol=1e-5)
    assert (got["top1"] == ref["top1"]).all() and ((0 < got["p_answer"]) & (got["p_answer"] < 1)).all()
    with pytest.raises(ValueError, match="candidate ids"):
        score_candidates(model, tok, ["a"], [1], [1, 2])


def test_validation_accuracy_equals_the_scored_forced_choice(tiny):
    model, tok = tiny
    val = make_splits(EntityConfig(n_boxes=4, seed=5), 0, 20, 0)["val"]
    io = task_io(EntityConfig())
    vs = ValidationSet(encode_prompts(tok, [t.prompt for t in val]), torch.as_tensor(io.answer_ids(tok, val, "gpt2")),
                       *io.candidates(tok, val, "gpt2"), tok.pad_token_id or 0, torch.device("cpu"), batch_size=7)
    loss, acc = vs.evaluate(model, bf16=False)
    frame = ee.score_entity(model, tok, val)
    assert acc == pytest.approx(frame["choice_correct"].mean())
    assert loss == pytest.approx(float(np.mean(-np.log(frame["p_answer"]))), rel=1e-4)


def test_an_entity_run_trains_scores_and_reloads(fresh_data_dir):
    cfg = RunConfig(source="tiny-gpt2", n_train=12, task=EntityConfig(n_boxes=3, seed=1), max_steps=4,
                    eval_every=2, patience=2, batch_size=4, n_val=6, n_test=9, bf16=False)
    run = get_run(cfg, progress=False)
    m = run.metrics
    assert m["test"]["n"] == 9 and 0 <= m["test"]["choice_accuracy"] <= 1 and m["test"]["chance"] == pytest.approx(1 / 3)
    assert [r["step"] for r in m["val_loss_curve"]] == [2, 4][: len(m["val_loss_curve"])]
    preds = run.predictions("test")
    assert len(preds) == 9 and {"correct", "choice_correct", "picked_last", "pick"} <= set(preds.columns)
    assert "model_choice" not in preds.columns                 # the decision task's columns stay its own
    model, tok = run.load_model()
    again = ee.score_entity(model, tok, make_splits(cfg.task, 12, 6, 9)["test"])
    assert (again["choice_correct"].to_numpy() == preds["choice_correct"].to_numpy()).all()
    assert get_run(cfg, progress=False, train=False).path == run.path


def test_box_count_table(tiny):
    model, tok = tiny
    t = ee.box_count_table(model, tok, [2, 3], n=6, seed=0)
    assert t["boxes"].tolist() == [2, 3] and t["n"].tolist() == [6, 6]
    assert t["chance"].tolist() == pytest.approx([0.5, 1 / 3])
    for rate in ee.RATES:
        assert ((t[f"{rate}_lo"] <= t[rate]) & (t[rate] <= t[f"{rate}_hi"])).all()


def test_candidates_that_are_not_one_token_are_refused(gpt2_tok):
    t = make_trial(("eggnog", "key", "pen"), ("A", "B", "C"), 1)
    with pytest.raises(ParameterError, match="'eggnog'\\] are not one token in gpt2"):
        ee.candidate_ids(gpt2_tok, [t], "gpt2")


def test_a_run_tracks_a_second_task_at_every_evaluation(fresh_data_dir):
    """An arithmetic run that watches entity tracking (chapter 10's dose-response): every
    evaluation row has the tracked task's accuracy, and the last one equals the entity scoring of
    the finished model on the same validation prompts (lr so small that every evaluation's weights
    are the best's to the last bit that matters: patience never runs out, the last is kept or ties).
    The tracked task is never trained on and never stops the run; without it the keys are the old."""
    from helpers.tasks.arithmetic import ArithmeticConfig
    track = EntityConfig(n_boxes=3, seed=4)
    cfg = RunConfig(source="tiny-gpt2", n_train=8, task=ArithmeticConfig(seed=1), max_steps=4, eval_every=2,
                    patience=5, batch_size=4, n_val=6, n_test=6, bf16=False, lr=1e-7, track_task=track, n_track=9)
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.key() != cfg.replace(track_task=None, n_track=0).key()
    assert "track_task" not in cfg.replace(track_task=None, n_track=0).to_dict()
    run = get_run(cfg, progress=False)
    rows = run.val_log()
    assert rows["step"].tolist() == [2, 4] and rows["track_accuracy"].between(0, 1).all()
    assert [r["track_accuracy"] for r in run.metrics["val_loss_curve"]] == rows["track_accuracy"].tolist()
    model, tok = run.load_model()
    frame = ee.score_entity(model, tok, make_splits(track, 0, 9, 0)["val"])
    assert rows["track_accuracy"].iloc[-1] == pytest.approx(frame["choice_correct"].mean())
    # chapter 10's dose-response table and figure read it; a run that tracks nothing is left out
    from helpers.figures.entity import dose_response
    from helpers.training.experiments import tracked_curves
    from helpers.training.runs import tracked_trials
    assert [t.prompt for t in tracked_trials(cfg)] == [t.prompt for t in make_splits(track, 0, 9, 0)["val"]]
    curves = tracked_curves({"arithmetic": run, "given as a source": None})
    assert curves["name"].unique().tolist() == ["arithmetic"] and curves["step"].tolist() == [2, 4]
    assert curves["tracked_accuracy"].tolist() == rows["track_accuracy"].tolist()
    assert (curves["best_step"] == run.metrics["best_step"]).all() and (curves["n_track"] == 9).all()
    fig = dose_response(curves, base_accuracy=0.5, chance=1 / 3, own_chance=0.1)
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) >= 4
    with pytest.raises(ValueError, match="a tracked task needs n_track >= 1"):
        cfg.replace(n_track=0)
    with pytest.raises(ValueError, match="n_track >= 1 needs a track_task"):
        cfg.replace(track_task=None)
