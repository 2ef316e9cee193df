"""The learning-curve verdict: computed from the numbers, with the CI logic it claims."""
import pandas as pd
import pytest

from helpers.claims import sample_efficiency as efficiency
from helpers.stats.intervals import newcombe_diff
from helpers.study import Study

# every study parameter (helpers.config.parameters.STUDY_PARAMETERS), tiny models
STUDY = dict(task_seed=0, n_samples=4, noise=0.2, pretrained_source="tiny-gpt2",
             scratch_source="scratch:tiny-gpt2", grid_lrs_finetune=[0.001], grid_lrs_scratch=[0.003],
             grid_n_train=16, train_sizes=[16], seeds=[0], epochs=1, min_steps=0, batch_size=8,
             n_val=10, n_test=10, bf16=False)


def _curves(rows):
    return pd.DataFrame([{"arm": a, "n_train": n, "test_accuracy": acc, "n_test": n_test, "seed": s,
                          "source": a} for a, n, acc, n_test, s in rows])


def test_difference_interval_contains_the_difference_and_shrinks_with_n():
    d, lo, hi = newcombe_diff(90, 100, 60, 100)
    assert d == pytest.approx(0.3) and lo < d < hi
    d2, lo2, hi2 = newcombe_diff(900, 1000, 600, 1000)
    assert hi2 - lo2 < hi - lo


def test_table_pools_seeds():
    c = _curves([("fine-tuned", 32, 0.9, 100, 0), ("fine-tuned", 32, 0.8, 100, 1),
                 ("scratch", 32, 0.5, 100, 0), ("scratch", 32, 0.6, 100, 1)])
    t = efficiency.sample_efficiency_table(c)
    assert t.iloc[0]["fine-tuned"] == pytest.approx(0.85) and t.iloc[0]["scratch"] == pytest.approx(0.55)


def test_replicated_when_fine_tuned_is_better_and_reaches_threshold_first():
    c = _curves([("fine-tuned", 32, 0.85, 300, 0), ("scratch", 32, 0.5, 300, 0),
                 ("fine-tuned", 512, 0.95, 300, 0), ("scratch", 512, 0.6, 300, 0)])
    verdict, evidence = efficiency.sample_efficiency_verdict(c)
    assert verdict == "replicated"
    assert "N = 32" in evidence and "first reaches 80% at N = 32" in evidence


def test_not_replicated_when_never_significantly_better():
    c = _curves([("fine-tuned", 32, 0.52, 100, 0), ("scratch", 32, 0.50, 100, 0),
                 ("fine-tuned", 512, 0.55, 100, 0), ("scratch", 512, 0.56, 100, 0)])
    assert efficiency.sample_efficiency_verdict(c)[0] == "not replicated"


def test_inconclusive_when_better_but_neither_reaches_threshold():
    c = _curves([("fine-tuned", 32, 0.70, 1000, 0), ("scratch", 32, 0.50, 1000, 0)])
    verdict, evidence = efficiency.sample_efficiency_verdict(c)
    assert verdict == "inconclusive" and "never reaches 80%" in evidence


def test_needs_both_arms():
    c = _curves([("fine-tuned", 32, 0.9, 100, 0)])
    assert efficiency.sample_efficiency_verdict(c)[0] == "inconclusive"


def test_load_analysed_names_the_accepted_models():
    study = Study(profile="smoke", params=dict(STUDY), overrides={})
    with pytest.raises(ValueError) as e:
        study.load("finetuned", runs={"fine-tuned": None, "scratch": None})
    assert "'finetuned'" in str(e.value) and "'pretrained', 'fine-tuned', 'scratch'" in str(e.value)


def test_load_analysed_pretrained_is_the_source_in_eval_mode():
    study = Study(profile="smoke", params=dict(STUDY), overrides={})
    model, tok = study.load("pretrained", runs={})
    assert not model.training and tok is not None
