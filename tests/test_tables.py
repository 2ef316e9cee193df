"""The tables the chapters print, computed in the library (not in notebook cells), checked against
what they summarise on tiny models and hand-made inputs."""
import numpy as np
import pandas as pd
import pytest

from helpers.interventions import ablation
from helpers.models.sources import load_source
from helpers.readouts import activations, attention, geometry, selectivity
from helpers.stats.intervals import wilson_ci
from helpers.tasks import decision, tokens
from helpers.training import evaluation
from helpers.training.runs import RunConfig, get_run


@pytest.fixture(scope="module")
def trials():
    return decision.make_splits(decision.TaskConfig(n_samples=2), 0, 0, 24)["test"]


@pytest.fixture(scope="module")
def tiny(session_data_dir):
    return {n: load_source(n) for n in ("tiny-gpt2", "tiny-llama")}


def test_baseline_table_and_best_context_blind(trials):
    t = decision.baseline_table(trials)
    y = np.array([tr.choice for tr in trials])
    for name, pred in decision.baseline_predictions(trials).items():
        row = t.set_index("strategy").loc[name]
        k = int((pred == y).sum())
        assert row["accuracy"] == k / len(y)
        lo, hi = wilson_ci(k, len(y))
        assert row["95% CI"] == f"[{lo:.3f}, {hi:.3f}]"
    assert t.set_index("strategy").loc["ideal observer (sum of relevant samples)", "accuracy"] == 1.0
    blind = t[t["strategy"].str.startswith("ignore context")]["accuracy"].max()
    assert decision.best_context_blind(t) == blind < 1.0


def test_tokenizer_and_token_type_tables(gpt2_tok, trials):
    t = tokens.tokenizer_table({"gpt2": gpt2_tok}, trials)
    lengths = [len(gpt2_tok.encode(tr.prompt)) for tr in trials]
    row = t.iloc[0]
    assert row["answer ids (right, left)"] == (gpt2_tok.encode(" right")[0], gpt2_tok.encode(" left")[0])
    assert row["prompt tokens (mean)"] == pytest.approx(np.mean(lengths)) and row["min"] == min(lengths)
    types = tokens.token_type_table(gpt2_tok, trials[0].prompt)
    assert list(types.index) == list(tokens.TOKEN_TYPES)
    assert types["count"].sum() == len(gpt2_tok.encode(trials[0].prompt))
    assert types.loc["context word", "tokens"] == "\u2423" + trials[0].context      # ␣ marks the space
    assert types["share (uniform attention)"].sum() == pytest.approx(1.0, abs=0.002)


def test_query_type_table_is_the_mean_over_heads_of_the_first_and_last_layer(tiny, trials):
    stats = {name: attention.attention_stats(m, t, trials[:6]) for name, (m, t) in tiny.items()}
    table = attention.query_type_table(stats)
    for name, s in stats.items():
        q = s.query_table()
        for layer in (0, s.n_layers - 1):
            expect = q[q["layer"] == layer]
            got = table.loc[(name, layer)]
            mean = expect.groupby(["query_type", "type"])["mass"].mean().unstack()
            assert np.allclose(got.to_numpy(), mean.loc[got.index, list(tokens.TOKEN_TYPES)].to_numpy())
            assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)          # each query's mass sums to 1


def test_accuracy_by_table_counts_and_intervals():
    df = pd.DataFrame({"congruent": [True, True, False, False, False], "correct": [True, False, True, True, False]})
    t = evaluation.accuracy_by_table({"m": df}, "congruent").set_index("value")
    assert t.loc[False, "accuracy"] == pytest.approx(2 / 3) and t.loc[True, "n"] == 2
    assert (t.loc[False, "lo"], t.loc[False, "hi"]) == pytest.approx(wilson_ci(2, 3))


def test_bf16_agreement_rescores_in_fp32(session_data_dir):
    cfg = RunConfig("tiny-gpt2", n_train=16, max_steps=2, eval_every=2, batch_size=8, lr=1e-3, bf16=True, n_val=8, n_test=12,
                    task=decision.TaskConfig(n_samples=2))
    run = get_run(cfg, progress=False)
    test = decision.make_splits(cfg.task, 0, cfg.n_val, cfg.n_test)["test"]
    check = evaluation.bf16_agreement(run, test)
    bf = run.predictions("test")["logit_diff"].to_numpy()
    y = np.array([t.choice for t in test])
    assert check["accuracy bf16"] == pytest.approx(np.mean(np.sign(bf) == y))
    assert 0.0 <= check["same choice (share of test trials)"] <= 1.0
    assert check["max |logit diff fp32 - bf16|"] >= 0
    assert evaluation.bf16_agreement(get_run(cfg.replace(bf16=False), progress=False), test) is None


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_ablation_results_are_the_sweeps(tiny, trials, name):
    model, tok = tiny[name]
    res = ablation.ablation_results(model, tok, trials[:6], trials[6:12], ["zero", "mean"])
    arch = ablation.Arch(model)
    p = ablation.prepare(model, tok, trials[:6])
    means = ablation.head_means(arch, ablation.prepare(model, tok, trials[6:12]))
    assert np.allclose(res["clean"], ablation.clean_logit_diff(arch, p))
    assert np.allclose(res["mean"], ablation.sweep_heads(arch, p, "mean", means), atol=1e-5)
    assert res["zero_layers"].shape == (arch.n_layers, 6)
    assert res["attribution"]["zero"].shape == (arch.n_layers, arch.n_heads)
    choice = np.array([t.choice for t in trials[:6]])
    whole = ablation.layer_ablation_table({name: res}, choice, ["zero"])
    expect = (res["clean"] * choice).mean() - (res["zero_layers"] * choice).mean(1)
    assert np.allclose(whole[f"{name}, zero"].to_numpy(), expect)
    with pytest.raises(ValueError, match="accepted values"):
        ablation.ablation_results(model, tok, trials[:2], trials[2:4], ["half"])


def test_landmark_states_are_the_hidden_states_at_the_landmarks(tiny, trials):
    model, tok = tiny["tiny-llama"]
    states = activations.landmark_states(model, tok, trials[:5])
    positions = tokens.landmark_positions(tok, trials[0].prompt)
    H = activations.collect_hidden_states(model, tok, trials[:5], layers=[-1], positions="all")[:, 0]
    assert list(states) == list(tokens.LANDMARKS)
    for lm, pos in positions.items():
        assert np.allclose(states[lm], H[:, pos], atol=1e-5)


def test_structure_along_is_structure_table_per_position():
    rng = np.random.default_rng(0)
    variables = pd.DataFrame({"context": rng.integers(0, 2, 30), "choice": rng.integers(0, 2, 30)})
    states = {"m": {"a": rng.normal(size=(30, 6)), "b": rng.normal(size=(30, 6))}}
    along = geometry.structure_along(states, variables, ["b", "a"], cv_folds=3, n_shuffles=2)
    assert list(dict.fromkeys(along["position"])) == ["b", "a"]
    one = geometry.structure_table({"m": states["m"]["a"]}, variables, columns=("context", "choice"),
                                   cv_folds=3, n_shuffles=2)
    assert np.allclose(along[along["position"] == "a"]["probe_accuracy"], one["probe_accuracy"])


def test_selectivity_table_summarises_the_mixed_tables():
    t = pd.DataFrame({"n_variables": [0, 1, 2], "fraction": [0.2, 0.3, 0.5],
                      "shuffled_fraction": [0.9, 0.1, 0.0]})
    out = selectivity.selectivity_table({"m": t}, rotated=t).set_index("model")
    assert out.loc["m", "units selective for >= 1"] == pytest.approx(0.8)
    assert out.loc["m", "for >= 2 (mixed)"] == pytest.approx(0.5)
    assert out.loc["m", "shuffled: >= 2"] == pytest.approx(0.0)
    assert np.isnan(out.loc["fine-tuned, randomly rotated units", "shuffled: >= 2"])


def test_minimality_table_shows_the_drop_with_its_interval_or_says_the_circuit_is_empty():
    from types import SimpleNamespace

    import pandas as pd

    from helpers.book.tables import minimality_table
    assert "circuit is empty" in minimality_table(SimpleNamespace(minimality=None)).data
    m = pd.DataFrame({"group": ["g"], "layer": [1], "head": [2], "accuracy_without": [0.5], "accuracy_drop": [0.25],
                      "drop_lo": [0.1], "drop_hi": [0.4], "status": ["needed"], "extra": [0]})
    t = minimality_table(SimpleNamespace(minimality=m))
    assert list(t.columns) == ["group", "layer", "head", "accuracy_without", "accuracy drop [CI]", "status"]
    assert t["accuracy drop [CI]"].iloc[0] == "0.250 [0.100, 0.400]"
