"""The learning-curve verdict: computed from the numbers, with the CI logic it claims."""
import numpy as np
import pandas as pd
import pytest

from helpers.claims import sample_efficiency as efficiency
from helpers.stats.intervals import newcombe_diff
from helpers.study import Study

# every study parameter (helpers.config.parameters.STUDY_PARAMETERS), tiny models
STUDY = dict(task_seed=0, n_samples=4, noise=0.2, pretrained_source="tiny-gpt2",
             scratch_source="scratch:tiny-gpt2", grid_lrs_finetune=[0.001], grid_lrs_scratch=[0.003],
             grid_n_train=16, train_sizes=[16], seeds=[0], max_steps=4, eval_every=2, patience=2, batch_size=8,
             n_val=10, n_test=10, bf16=False)


def _long(rows):
    """Per-trial correctness: (arm, n_train, k correct, n_test, seed); the first k trials are right."""
    return pd.concat([pd.DataFrame({"arm": a, "n_train": n, "seed": s, "trial": np.arange(nt), "correct": np.arange(nt) < k})
                      for a, n, k, nt, s in rows], ignore_index=True)


def test_difference_interval_contains_the_difference_and_shrinks_with_n():
    d, lo, hi = newcombe_diff(90, 100, 60, 100)
    assert d == pytest.approx(0.3) and lo < d < hi
    d2, lo2, hi2 = newcombe_diff(900, 1000, 600, 1000)
    assert hi2 - lo2 < hi - lo


def test_table_averages_seeds_and_makes_intervals_simultaneous_over_sizes():
    c = _long([("fine-tuned", 32, 90, 100, 0), ("fine-tuned", 32, 80, 100, 1),
               ("scratch", 32, 50, 100, 0), ("scratch", 32, 60, 100, 1),
               ("fine-tuned", 64, 90, 100, 0), ("scratch", 64, 50, 100, 0)])
    t = efficiency.sample_efficiency_table(c, n_boot=500)
    assert t.iloc[0]["fine-tuned"] == pytest.approx(0.85) and t.iloc[0]["scratch"] == pytest.approx(0.55)
    assert t.iloc[0]["seeds"] == 2 and t["level"].iloc[0] == pytest.approx(0.975)


def _seeds(rows, spread=(0, 3, -3)):
    """Each (arm, n_train, k, n_test) row for three seeds whose counts differ by `spread`."""
    return _long([(a, n, k + d, nt, s) for a, n, k, nt in rows for s, d in enumerate(spread)])


def _converged(c):
    return c[["arm", "n_train", "seed"]].drop_duplicates().assign(converged=True)


def test_replicated_when_fine_tuned_is_better_and_reaches_threshold_first():
    c = _seeds([("fine-tuned", 32, 255, 300), ("scratch", 32, 150, 300),
                ("fine-tuned", 512, 285, 300), ("scratch", 512, 180, 300)])
    v = efficiency.sample_efficiency_verdict(c, _converged(c), n_boot=500)
    assert v.status == "replicated", v.evidence
    assert v.seeds == 3 and "3 seeds per arm and size, seeds as the unit" in v.evidence
    assert "N = 32" in v.evidence and "at 80% (lower interval end) from N = 32" in v.evidence
    one = _long([("fine-tuned", 32, 255, 300, 0), ("scratch", 32, 150, 300, 0)])
    assert efficiency.sample_efficiency_verdict(one, _converged(one), n_boot=500).status == "inconclusive"


def test_not_replicated_only_when_the_interval_excludes_a_material_advantage():
    small = _seeds([("fine-tuned", 32, 52, 100), ("scratch", 32, 50, 100),
                    ("fine-tuned", 512, 55, 100), ("scratch", 512, 56, 100)])
    assert efficiency.sample_efficiency_verdict(small, _converged(small), n_boot=500).status == "inconclusive"
    large = _seeds([("fine-tuned", 32, 5100, 10000), ("scratch", 32, 5000, 10000),
                    ("fine-tuned", 512, 5500, 10000), ("scratch", 512, 5600, 10000)], spread=(0, 10, -10))
    assert efficiency.sample_efficiency_verdict(large, _converged(large), n_boot=500).status == "not replicated"


def test_inconclusive_when_better_but_neither_reaches_threshold():
    c = _seeds([("fine-tuned", 32, 700, 1000), ("scratch", 32, 500, 1000)])
    v = efficiency.sample_efficiency_verdict(c, _converged(c), n_boot=500)
    assert v.status == "inconclusive" and "never confidently at 80%" in v.evidence


def test_needs_both_arms():
    c = _seeds([("fine-tuned", 32, 90, 100)])
    assert efficiency.sample_efficiency_verdict(c, _converged(c)).status == "inconclusive"


def test_load_analysed_names_the_accepted_models():
    study = Study(profile="smoke", params=dict(STUDY), overrides={})
    with pytest.raises(ValueError) as e:
        study.load("finetuned", runs={"fine-tuned": None, "scratch": None})
    assert "'finetuned'" in str(e.value) and "'pretrained', 'fine-tuned', 'scratch'" in str(e.value)


def test_load_analysed_pretrained_is_the_source_in_eval_mode():
    study = Study(profile="smoke", params=dict(STUDY), overrides={})
    model, tok = study.load("pretrained", runs={})
    assert not model.training and tok is not None
