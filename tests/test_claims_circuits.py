"""The verdicts of chapters 7-8 (:mod:`helpers.claims.circuits`) reach each of their statuses on
hand-made measurements with known answers: ``prakash-circuit-faithful`` (faithfulness against 0.8,
small circuits only), ``prakash-cmap-circuit`` (the circuit's patch against random head sets) and
``lin-cmap-pretrained`` (the share of the donor's advantage moved into the pretrained against the
scratch model)."""
import types

import numpy as np
import pytest

from helpers.claims.circuits import (MAX_SHARE_OF_HEADS, cmap_circuit_verdict, cmap_reliance_verdict,
                                     faithfulness_verdict)
from helpers.claims.verdict import claim


# ---- prakash-circuit-faithful ------------------------------------------------------------------

def _evaluation(f, n_heads=3, random=None, n=4000, p_model=0.9, floor=0.5):
    """A circuit right only where the model is, with faithfulness above `floor` exactly `f`:
    accuracy floor + f * (p_model - floor) on `n` prompts (deterministic outcomes)."""
    heads = {(i // 4, i % 4) for i in range(n_heads)}
    model = np.arange(n) < round(p_model * n)
    circuit = np.arange(n) < round((floor + f * (p_model - floor)) * n)
    return types.SimpleNamespace(circuit=types.SimpleNamespace(heads=heads), faithfulness=circuit.mean() / model.mean(),
                                 n=n, accuracy=circuit.mean(), model_accuracy=model.mean(), random=random,
                                 correct=circuit, model_correct=model)


def test_faithfulness_claim_is_against_0_75_with_a_5_point_margin():
    c = claim("prakash-circuit-faithful")
    assert float(c.threshold) == 0.75 and c.material == 0.05 and "context-blind" in c.floor


@pytest.mark.parametrize("f,status", [(0.95, "replicated"), (0.60, "not replicated"), (0.40, "not replicated"),
                                      (0.78, "inconclusive")])
def test_faithfulness_verdict_statuses(f, status):
    v = faithfulness_verdict(_evaluation(f), n_model_heads=144, floor=0.5, n_boot=500)
    assert v.status == status and v.gate is None
    assert v.claim == "prakash-circuit-faithful" and v.model == "fine-tuned"
    assert v.value == pytest.approx(f - 0.75, abs=1e-9) and v.lo < v.value < v.hi
    assert "3 of the model's 144 heads (2%)" in v.evidence and "Floor (" in v.evidence
    assert "Random circuits" not in v.evidence


def test_faithfulness_is_above_the_floor_not_above_zero():
    """A circuit at 80% of a 94% model, where a context-blind strategy gets 75%: Prakash et al.'s
    plain ratio is 0.85; above the floor it is 0.26, and the claim is not replicated."""
    ev = _evaluation((0.80 - 0.75) / (0.94 - 0.75), p_model=0.94, floor=0.75)
    assert ev.accuracy / ev.model_accuracy == pytest.approx(0.851, abs=1e-3)
    v = faithfulness_verdict(ev, n_model_heads=144, floor=0.75, n_boot=500)
    assert v.status == "not replicated" and v.value + 0.75 == pytest.approx(0.263, abs=1e-3)


def test_faithfulness_verdict_reports_random_circuits():
    rnd = types.SimpleNamespace(mean=0.12, sd=0.05, faithfulness=np.array([0.1, 0.2, 0.06]))
    v = faithfulness_verdict(_evaluation(0.95, random=rnd), n_model_heads=144, floor=0.5, n_boot=300)
    assert v.status == "replicated"
    assert "Random circuits of the same group sizes: mean plain ratio 0.12 (sd 0.05, 3 draws)." in v.evidence


def test_a_large_circuit_is_not_judged():
    assert MAX_SHARE_OF_HEADS == 0.10
    v = faithfulness_verdict(_evaluation(0.99, n_heads=15), n_model_heads=144, floor=0.5, n_boot=300)     # 10.4%
    assert v.status == "inconclusive" and v.gate is None
    assert "not small" in v.evidence
    at_limit = faithfulness_verdict(_evaluation(0.99, n_heads=14), n_model_heads=140, floor=0.5, n_boot=300)
    assert at_limit.status == "replicated"
    big_and_bad = faithfulness_verdict(_evaluation(0.3, n_heads=30), n_model_heads=144, floor=0.5, n_boot=300)
    assert big_and_bad.status == "inconclusive"


def test_a_failed_gate_makes_the_faithfulness_verdict_inconclusive():
    gate = "the fine-tuned model does not solve the task: 55.0% correct"
    v = faithfulness_verdict(_evaluation(0.95), n_model_heads=144, gate=gate, floor=0.5, n_boot=300)
    assert v.status == "inconclusive" and v.gate == gate
    assert v.value == pytest.approx(0.20)


# ---- prakash-cmap-circuit ----------------------------------------------------------------------

N = 100


def _half(n=N, shift=0):
    """Outcomes right on every other prompt (50%)."""
    return ((np.arange(n) + shift) % 2).astype(float)


def test_cmap_circuit_verdict_replicated_when_the_circuit_beats_random_heads():
    out = {"A": _half(), "B": np.ones(N), "circuit": np.ones(N),
           "random 0": _half(), "random 1": _half(shift=1), "random 2": _half()}
    v = cmap_circuit_verdict(out, n_boot=500)
    assert v.status == "replicated" and v.claim == "prakash-cmap-circuit" and v.model == "pretrained"
    # per prompt: 1 - mean of the random draws, which is 1/3 or 2/3, half the prompts each
    assert v.value == pytest.approx(0.5)
    assert 0 < v.lo < 0.5 < v.hi < 1
    assert "Pretrained model alone 50.0%, fine-tuned model 100.0%" in v.evidence
    assert "patched in 100.0%; with 3 random head sets" in v.evidence
    assert "on 100 held-out prompts" in v.evidence


def test_cmap_circuit_verdict_not_replicated_when_the_circuit_is_random():
    out = {"A": _half(), "B": np.ones(N), "circuit": _half(), "random 0": _half()}
    v = cmap_circuit_verdict(out, n_boot=500)
    assert v.status == "not replicated"
    assert (v.value, v.lo, v.hi) == (0.0, 0.0, 0.0)
    # a near-random circuit on many prompts: the interval lies below the 5 points
    rng = np.random.default_rng(0)
    draws = [rng.integers(0, 2, 2000).astype(float) for _ in range(4)]
    out = {"A": draws[0], "B": np.ones(2000), "circuit": draws[1], "random 0": draws[2], "random 1": draws[3]}
    v = cmap_circuit_verdict(out, n_boot=500)
    assert v.status == "not replicated" and v.hi < 0.05


def test_cmap_circuit_verdict_inconclusive():
    v = cmap_circuit_verdict({"A": _half(), "B": np.ones(N)})                      # no circuit head
    assert v.status == "inconclusive" and np.isnan(v.value) and "nothing to patch" in v.evidence
    v = cmap_circuit_verdict({"A": _half(), "B": np.ones(N), "circuit": np.ones(N)})   # no random set
    assert v.status == "inconclusive"
    # a small edge on few prompts: the interval straddles
    out = {"A": _half(20), "B": np.ones(20), "circuit": np.r_[np.ones(12), np.zeros(8)],
           "random 0": _half(20)}
    v = cmap_circuit_verdict(out, n_boot=500)
    assert v.status == "inconclusive" and v.value == pytest.approx(0.1) and v.lo < 0 < v.hi
    gate = "the fine-tuned model does not solve the task"
    v = cmap_circuit_verdict({"A": _half(), "B": np.ones(N), "circuit": np.ones(N), "random 0": _half()},
                             gate=gate, n_boot=500)
    assert v.status == "inconclusive" and v.gate == gate and v.value == pytest.approx(0.5)


# ---- lin-cmap-pretrained -----------------------------------------------------------------------

M = 400


def test_reliance_replicated_when_only_the_pretrained_model_receives_the_advantage():
    pre = {"A": _half(M), "B": np.ones(M), "circuit": np.ones(M)}
    scr = {"A": _half(M, 1), "B": np.ones(M), "circuit": _half(M, 1)}
    v = cmap_reliance_verdict(pre, scr, n_boot=500)
    assert v.status == "replicated" and v.claim == "lin-cmap-pretrained" and v.model == "pretrained vs scratch"
    assert (v.value, v.lo, v.hi) == pytest.approx((1.0, 1.0, 1.0))
    assert "share of the advantage moved: 100%" in v.evidence and "(0%)" in v.evidence
    assert "0 dropped" in v.evidence


def test_reliance_not_replicated_when_both_receive_the_same_share():
    same = {"A": _half(M), "B": np.ones(M), "circuit": np.r_[np.ones(M // 2), _half(M // 2)]}
    v = cmap_reliance_verdict(same, dict(same), n_boot=500)
    assert v.status == "not replicated" and (v.value, v.lo, v.hi) == pytest.approx((0.0, 0.0, 0.0))
    # different receivers, each moved half of the donor's advantage: an interval around 0, below 25 points
    rng = np.random.default_rng(1)
    a1, a2 = (rng.integers(0, 2, M).astype(float) for _ in range(2))

    def half_moved(a):
        c = a.copy()
        wrong = np.flatnonzero(a == 0)
        c[wrong[: len(wrong) // 2]] = 1.0
        return c
    pre = {"A": a1, "B": np.ones(M), "circuit": half_moved(a1)}
    scr = {"A": a2, "B": np.ones(M), "circuit": half_moved(a2)}
    v = cmap_reliance_verdict(pre, scr, n_boot=500)
    assert v.value == pytest.approx(0.0, abs=0.01)
    assert v.lo < 0 < v.hi < 0.25
    assert v.status == "not replicated"


def test_reliance_inconclusive_when_a_receiver_is_not_worse_than_the_donor():
    pre = {"A": _half(M), "B": np.r_[np.ones(300), np.zeros(100)],
           "circuit": np.r_[np.ones(300), np.zeros(100)]}
    scr = {"A": np.r_[np.ones(350), np.zeros(50)], "B": pre["B"].copy(), "circuit": _half(M)}
    v = cmap_reliance_verdict(pre, scr, n_boot=500)
    assert v.status == "inconclusive" and np.isnan(v.value)
    assert "not confidently better than the scratch model" in v.gate and "pretrained model" not in v.gate
    assert "share of the advantage moved: 100%" in v.evidence and "(undefined)" in v.evidence
    v = cmap_reliance_verdict({"A": np.ones(M), "B": np.ones(M), "circuit": np.ones(M)},
                              {"A": np.ones(M), "B": np.ones(M), "circuit": np.ones(M)}, n_boot=500)
    assert v.status == "inconclusive" and "than the pretrained model" in v.gate and "than the scratch model" in v.gate


def test_reliance_inconclusive_without_a_circuit_or_with_a_failed_gate():
    pre = {"A": _half(M), "B": np.ones(M), "circuit": np.ones(M)}
    scr = {"A": _half(M, 1), "B": np.ones(M), "circuit": _half(M, 1)}
    v = cmap_reliance_verdict({"A": pre["A"], "B": pre["B"]}, scr)
    assert v.status == "inconclusive" and "nothing to patch" in v.evidence
    v = cmap_reliance_verdict(pre, scr, gate="the fine-tuned model does not solve the task", n_boot=500)
    assert v.status == "inconclusive" and v.value == pytest.approx(1.0)


def test_reliance_needs_the_same_prompts():
    pre = {"A": _half(M), "B": np.ones(M), "circuit": np.ones(M)}
    other_donor = {"A": _half(M), "B": np.r_[np.zeros(1), np.ones(M - 1)], "circuit": np.ones(M)}
    with pytest.raises(ValueError, match="same prompts"):
        cmap_reliance_verdict(pre, other_donor)
    shorter = {k: v[:-1] for k, v in pre.items()}
    with pytest.raises(ValueError, match="same prompts"):
        cmap_reliance_verdict(pre, shorter)


def _fake_run(task, correct):
    import pandas as pd
    return types.SimpleNamespace(config=types.SimpleNamespace(task=task),
                                 predictions=lambda split: pd.DataFrame({"correct": correct}))


def test_learned_gate_judges_an_improvement_only_on_a_variant_that_learned_its_task():
    """An arithmetic variant at chance on arithmetic (1 in 10), or above it by less than the gate's
    material margin (0.30 in claims.yaml), cannot test whether learning arithmetic improves entity
    tracking: the gate names the task and the numbers; a variant whose interval clears chance plus
    the margin passes; a variant given as a model source (no run) is its makers' and passes."""
    from helpers.claims.circuits import improvement_verdict, learned_gate
    from helpers.tasks.arithmetic import ArithmeticConfig
    from helpers.tasks.entity import EntityConfig
    at_chance = _fake_run(ArithmeticConfig(), np.arange(150) % 10 == 0)            # 10%
    gate = learned_gate("arithmetic", at_chance)
    assert gate is not None and "has not learned the task it was fine-tuned on (arithmetic)" in gate
    assert "chance, 10.0%, plus 30%" in gate
    # 40% (interval 32% to 48%) is above chance but not materially: the margin is the gate's
    gate40 = learned_gate("arithmetic", _fake_run(ArithmeticConfig(), np.arange(150) % 10 < 4))
    assert gate40 is not None and "40.0% correct on 150" in gate40
    assert learned_gate("arithmetic", _fake_run(ArithmeticConfig(), np.arange(150) % 10 < 6)) is None   # 60%: 52% to 68%
    # the entity-tracking variant's chance is 1 / boxes: 50% of 5-box prompts is not above 20% + 30% by enough
    assert learned_gate("more entity tracking", _fake_run(EntityConfig(n_boxes=5), np.arange(40) % 10 < 5))
    assert learned_gate("Goat-7B", None) is None
    v = improvement_verdict(np.zeros(150), np.ones(150), "arithmetic", gate=gate, n_boot=200)
    assert v.status == "inconclusive" and v.gate == gate


def test_the_control_is_shown_beside_the_improvement_never_folded_into_it():
    """A variant 20 points above the base whose control is 18 points above it too: the verdict is
    still Prakash's (variant against base), and the evidence gives the 2 points beyond the control
    with an interval that holds 0; prompts of another length are refused."""
    from helpers.claims.circuits import improvement_verdict
    rng = np.random.default_rng(0)
    base = rng.random(400) < 0.5
    var = base | (rng.random(400) < 0.4)
    ctrl = var.copy()
    ctrl[np.flatnonzero(var & ~base)[:8]] = False
    alone = improvement_verdict(base, var, "arithmetic", n_boot=500)
    beside = improvement_verdict(base, var, "arithmetic", n_boot=500, control_correct=ctrl, control="the control")
    assert (beside.status, beside.value, beside.lo, beside.hi) == (alone.status, alone.value, alone.lo, alone.hi)
    assert "the control variant" in beside.evidence
    assert f"{(var.astype(float) - ctrl).mean():+.1%}" in beside.evidence
    with pytest.raises(ValueError, match="the control must be scored on the variant's prompts"):
        improvement_verdict(base, var, "arithmetic", control_correct=ctrl[:10])


def test_the_improvement_is_a_claim_about_training_decided_on_seeds():
    """One seed of a variant 20 points better is shown, never decided (claims.yaml: seeds 3); three
    seeds with little spread replicate with the t interval over seeds; three seeds of which one
    is much worse are not confidently better; a model given as it is (the paper profile's Goat-7B)
    is judged as that model, without seeds."""
    from helpers.claims.circuits import improvement_verdict
    rng = np.random.default_rng(1)
    base = rng.random(300) < 0.5
    better = lambda p: np.where(rng.random(300) < 0.5, base, rng.random(300) < p)     # noqa: E731
    one = improvement_verdict(base, better(0.9), "arithmetic", n_boot=500)
    assert one.status == "inconclusive" and one.seeds == 1 and one.gate is None and one.lo > 0.05
    three = improvement_verdict(base, np.stack([better(0.9) for _ in range(3)]), "arithmetic", n_boot=500)
    assert three.status == "replicated" and three.seeds == 3 and "3 seeds of the variant" in three.evidence
    from helpers.stats.seeds import seed_mean_interval
    table = np.stack([better(0.9), better(0.9), base.copy()]).astype(float)
    mixed = improvement_verdict(base, table, "arithmetic", n_boot=500)
    assert (mixed.value, mixed.lo, mixed.hi) == pytest.approx(seed_mean_interval(table - base[None]))
    assert mixed.status == "inconclusive" and mixed.lo < 0
    given = improvement_verdict(base, better(0.9), "Goat-7B", n_boot=500, given=True)
    assert given.status == "replicated" and given.seeds is None and "a given model" in given.evidence
    with pytest.raises(ValueError, match="a given model is one model"):
        improvement_verdict(base, table, "Goat-7B", given=True)
