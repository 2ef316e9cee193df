"""The Verdict type, the claims file, the decision rule and the solves-the-task gate."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from helpers.claims import verdict as v
from helpers.core.errors import ParameterError
from helpers.tasks.decision import TaskConfig, baseline_table, best_context_blind, make_splits, one_factor_baseline, task_variables


def test_decide_follows_the_rule():
    assert v.decide(0.10, 0.02, 0.18, material=0.05) == "replicated"
    assert v.decide(0.03, 0.01, 0.05, material=0.05) == "inconclusive"    # significant, not material
    assert v.decide(0.01, 0.005, 0.04, material=0.05) == "not replicated"  # excludes a material effect
    assert v.decide(0.00, -0.08, 0.08, material=0.05) == "inconclusive"   # not significant is not absence
    assert v.decide(-0.10, -0.2, -0.01, material=0.05) == "not replicated"
    assert v.decide(float("nan"), 0, 1, material=0.05) == "inconclusive"


def test_a_gate_overrides_the_status_and_is_kept():
    out = v.verdict("lin-attention-numbers", "scratch", 0.1, 0.05, 0.15, "e", gate="it does not solve the task")
    assert out.status == "inconclusive" and out.gate == "it does not solve the task"
    d = out.to_dict()
    assert json.loads(json.dumps(d)) == d


def test_to_dict_writes_missing_numbers_as_null():
    out = v.verdict("lin-decoding", "fine-tuned", math.nan, math.nan, math.nan, "none")
    assert out.to_dict()["value"] is None and out.status == "inconclusive"


def test_every_verdict_function_reads_an_existing_claim():
    ids = set(v.claims())
    for path in ("ablation", "attention", "decoding", "representations", "sample_efficiency"):
        src = open(f"src/helpers/claims/{path}.py").read()
        for cid in [w.strip('"') for w in src.split() if w.strip('",()').startswith("lin-")]:
            assert cid.strip('",()') in ids, (path, cid)


def test_unknown_claim_names_the_accepted_ids():
    with pytest.raises(ParameterError, match="lin-decoding"):
        v.claim("lin-nope")


def test_unknown_status_is_refused():
    with pytest.raises(ValueError, match="accepted values"):
        v.Verdict("lin-decoding", "m", "maybe", "s", 0, 0, 0, "c", "e")


def test_markdown_shows_criterion_and_gate():
    out = v.verdict("lin-decoding", "fine-tuned", 0.1, 0.05, 0.15, "evidence", gate="no")
    md = out.markdown()
    assert v.claim("lin-decoding").criterion in md and "Gate failed" in md and "evidence" in md


def test_solves_task_gate_compares_the_lower_interval_end_with_the_baseline():
    ok, text = v.solves_task(np.r_[np.ones(270), np.zeros(30)].astype(bool), 0.75)
    assert ok and "above" in text
    ok, _ = v.solves_task(np.r_[np.ones(230), np.zeros(70)].astype(bool), 0.75)   # 76.7%, CI from 71.6%
    assert not ok


def test_task_gate_uses_the_context_blind_baseline_of_the_same_trials():
    trials = make_splits(TaskConfig(), 0, 10, 400)["test"]
    base = best_context_blind(baseline_table(trials))
    assert 0.6 < base < 0.9
    assert v.task_gate("m", np.ones(len(trials), bool), trials) is None
    # answering like a context-blind strategy does not pass
    blind = np.array([(1 if t.motion_sum + t.color_sum > 0 else -1) == t.choice for t in trials])
    assert v.task_gate("m", blind, trials) is not None


def test_one_factor_baseline_is_about_a_half_for_the_response_type():
    trials = make_splits(TaskConfig(), 0, 10, 400)["test"]
    b = one_factor_baseline(task_variables(trials))
    assert 0.45 < b < 0.6
    df = pd.DataFrame({"context": [0, 0, 1, 1], "choice": [0, 1, 0, 1], "response_type": ["a", "b", "c", "d"]})
    assert one_factor_baseline(df) == 0.5


def test_markdown_names_the_level_of_a_simultaneous_interval():
    out = v.verdict("lin-decoding", "fine-tuned", 0.1, 0.05, 0.15, "e", level=1 - 0.05 / 3)
    assert "98.3% CI" in out.markdown()
    assert "(95% CI" in v.verdict("lin-decoding", "fine-tuned", 0.1, 0.05, 0.15, "e").markdown()


def test_gate_note_names_the_failed_gate_and_says_the_verdicts_are_about_one_run():
    note = v.gate_note({"fine-tuned": None, "scratch": "the scratch model does not solve the task: 70%"})
    assert "passed by fine-tuned" in note and "The scratch model does not solve the task" in note
    assert "about these runs" in note


def test_robustness_names_the_method_that_flips_a_verdict():
    from helpers.claims.verdict import verdict, with_robustness
    main = [verdict("lin-decoding", "fine-tuned", 0.2, 0.1, 0.3, "e"), verdict("lin-decoding", "other", 0.0, -0.1, 0.1, "e")]
    same = [verdict("lin-decoding", "fine-tuned", 0.3, 0.2, 0.4, "e")]
    flip = [verdict("lin-decoding", "fine-tuned", 0.01, -0.1, 0.02, "e")]
    out = with_robustness(main, {"zero-ablation": same, "accuracy": flip})
    assert out[0].status == "replicated" and out[0].robustness == (("zero-ablation", "replicated"),
                                                                     ("accuracy", "not replicated"))
    assert out[0].robust == "depends on the method (accuracy: not replicated)"
    assert "not computed" in out[1].robust                     # no alternative judged that model
    assert with_robustness(main[:1], {"zero-ablation": same})[0].robust == "robust"
    d = out[0].to_dict()
    assert d["robust"].startswith("depends") and d["robustness"][1] == ["accuracy", "not replicated"]
    assert "*Robustness:* depends on the method" in out[0].markdown()
    assert main[0].robust == "" and "Robustness" not in main[0].markdown()
    gated = with_robustness([verdict("lin-decoding", "fine-tuned", 0.2, 0.1, 0.3, "e", gate="g")], {"zero": same})
    assert gated[0].robust == ""
