"""Decoders, mixed selectivity and per-head SVMs on planted signals (synthetic data, tiny models)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.claims import decoding as claims
from helpers.figures import decoding as figs
from helpers.models.arch import Arch
from helpers.models.sources import load_source
from helpers.readouts import activations as act
from helpers.readouts import heads
from helpers.readouts import probes
from helpers.readouts import selectivity as sel
from helpers.tasks import decision
from helpers.tasks.decision import TaskConfig, make_splits


def planted(n=120, d=40, seed=0, strength=3.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, d))
    X[:, 3] += strength * (2 * y - 1)
    X[:, 7] *= 500                                   # a massive unit: standardisation handles it
    return X, y


def random_variables(n, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: rng.integers(0, 2, n) for c in decision.DECODED})


# ---- the solver -------------------------------------------------------------------------------

@pytest.mark.parametrize("C", [0.001, 0.1, 10.0])
def test_solver_matches_sklearn_logistic_regression(C):
    from sklearn.linear_model import LogisticRegression
    X, y = planted(n=60, d=90, strength=0.7)         # more units than trials, as in the book
    Xs, _ = probes.standardize(X, X)
    Ztr, Z = probes._row_space(Xs, Xs)
    W = probes.fit_logistic(Ztr, y[:, None], [C])
    ref = LogisticRegression(C=C, tol=1e-12, max_iter=100_000).fit(Xs, y)
    np.testing.assert_allclose(Z @ W[:-1, 0] + W[-1, 0], ref.decision_function(Xs), atol=2e-4)


def test_batched_columns_are_independent_problems():
    X, y = planted(n=50, d=20)
    Xs, _ = probes.standardize(X, X)
    Z, _ = probes._row_space(Xs, Xs)
    y2 = 1 - y
    both = probes.fit_logistic(Z, np.column_stack([y, y2, y]), [0.1, 1.0, 1.0])
    for j, (target, C) in enumerate(((y, 0.1), (y2, 1.0), (y, 1.0))):
        np.testing.assert_allclose(both[:, j], probes.fit_logistic(Z, target[:, None], [C])[:, 0], atol=1e-6)


def test_constant_features_and_one_class_folds_are_finite():
    X = np.ones((12, 5))
    Z, _ = probes._row_space(*probes.standardize(X, X))
    assert Z.shape == (12, 0)                      # identical states: nothing but an intercept
    W = probes.fit_logistic(Z, np.ones((12, 1)), [1.0])
    assert np.all(np.isfinite(W))
    r = probes.decode(X, np.arange(12) % 2, cv_folds=3, seed=0)
    assert r.accuracy <= 0.5 + 1e-9             # nothing to decode from identical states


# ---- decode ------------------------------------------------------------------------------------

def test_decode_recovers_a_planted_signal():
    X, y = planted()
    r = probes.decode(X, y, cv_folds=5, seed=0)
    assert r.accuracy > 0.9 and r.lo > 0.8
    assert len(r.C) == 5 and set(r.C) <= set(probes.CS)
    assert r.predictions.shape == y.shape


def test_decode_is_at_chance_on_shuffled_labels():
    X, y = planted()
    rng = np.random.default_rng(5)
    accs = [probes.decode(X, rng.permutation(y), cv_folds=5, seed=s).accuracy for s in range(4)]
    assert abs(np.mean(accs) - 0.5) < 0.1


def test_decode_is_deterministic_and_C_comes_from_the_grid():
    X, y = planted(strength=0.8)
    a = probes.decode(X, y, cv_folds=4, seed=3, Cs=(0.01, 1.0))
    b = probes.decode(X, y, cv_folds=4, seed=3, Cs=(0.01, 1.0))
    assert a.accuracy == b.accuracy and a.C == b.C
    np.testing.assert_array_equal(a.predictions, b.predictions)
    assert set(a.C) <= {0.01, 1.0}


def test_regularisation_is_chosen_without_the_held_out_fold():
    """Scrambling the held-out fold's states and labels changes nothing that fold's C depends on."""
    X, y = planted(strength=0.6)
    folds = probes.outer_folds(y, 4, seed=0)
    a = probes.decode(X, y, folds=folds, seed=0)
    rng = np.random.default_rng(1)
    for k, (tr, te) in enumerate(folds):
        X2, y2 = X.copy(), y.copy()
        X2[te] = rng.normal(size=X2[te].shape) * 100
        y2[te] = rng.integers(0, 2, len(te))
        b = probes.decode(X2, y2, folds=folds, seed=0)
        assert b.C[k] == a.C[k]
    # and select_C sees only what it is given
    C1 = probes.select_C(X[folds[0][0]], y[folds[0][0]][:, None], seed=0)
    assert C1[0] == a.C[0]


def test_decode_rejects_more_than_two_classes():
    with pytest.raises(ValueError, match="binary"):
        probes.decode(np.zeros((9, 2)), np.arange(9) % 3)


def test_decode_by_position_and_layer():
    rng = np.random.default_rng(0)
    n, P, d = 60, 4, 12
    v = random_variables(n)
    H = rng.normal(size=(n, P, d))
    H[:, 2, 0] += 3 * (2 * v["choice"] - 1)        # choice appears at position 2 only
    H[:, 3, 1] += 3 * (2 * v["context"] - 1)
    df = probes.decode_by_position(H, v, labels=list("abcd"), cv_folds=3, n_shuffles=2, seed=0)
    assert len(df) == P * 4 and set(df["token"]) == set("abcd")
    acc = df.set_index(["variable", "position"])["accuracy"]
    assert acc[("choice", 2)] > 0.9 and acc[("context", 3)] > 0.9
    assert acc[("choice", 0)] < 0.75
    assert df["shuffled_accuracy"].between(0.25, 0.75).all()
    assert (df["lo"] <= df["accuracy"] + 0.05).all() and (df["hi"] >= df["accuracy"] - 0.05).all()
    lay = probes.decode_by_layer(H[:, :, None, :], v, cv_folds=3, n_shuffles=1)   # (n, layers, 1, d)
    assert "layer" in lay.columns and len(lay) == P * 4
    full = probes.decode_along(H[:, 2:3], v, "position", columns=["choice"], cv_folds=3, n_shuffles=2,
                           reselect_C_for_shuffles=True)
    assert full["accuracy"].iloc[0] > 0.9 and 0.25 < full["shuffled_accuracy"].iloc[0] < 0.75


def test_decoding_verdict_is_a_paired_contrast_with_the_pretrained_model():
    n = 200
    right = np.ones(n, bool)
    half = np.arange(n) % 2 == 0
    correct = {"fine-tuned": {v: right for v in decision.DECODED},
               "pretrained": {v: (right if v != "choice" else half) for v in decision.DECODED}}
    v = claims.decoding_verdict(correct, n_boot=500)
    assert v.status == "replicated" and "pretrained 50.0%" in v.evidence and v.value == pytest.approx(0.5)
    # as good before fine-tuning: the contrast excludes a material gain
    same = {"fine-tuned": correct["fine-tuned"], "pretrained": correct["fine-tuned"]}
    assert claims.decoding_verdict(same, n_boot=500).status == "not replicated"
    # a variable not decodable after fine-tuning keeps it from replicating
    correct["fine-tuned"] = {**correct["fine-tuned"], "motion_sign": half}
    v = claims.decoding_verdict(correct, n_boot=500)
    assert v.status == "inconclusive" and "Not every variable" in v.evidence


# ---- mixed selectivity ------------------------------------------------------------------------

def test_mixed_selectivity_counts_a_planted_two_variable_unit():
    rng = np.random.default_rng(0)
    n = 200
    v = random_variables(n, seed=1)
    X = rng.normal(size=(n, 200))
    X[:, 0] += 1.5 * (2 * v["context"] - 1) + 1.5 * (2 * v["choice"] - 1)
    X[:, 1] += 1.5 * (2 * v["motion_sign"] - 1)
    s = sel.unit_selectivity(X, v)
    assert s["count"][0] == 2 and set(np.array(s["columns"])[s["selective"][0]]) == {"context", "choice"}
    assert s["count"][1] == 1
    assert np.mean(s["count"][2:] > 0) <= 0.05     # noise units: false positives controlled
    table = sel.mixed_selectivity(X, v, n_shuffles=3, seed=0)
    assert np.isclose(table["fraction"].sum(), 1) and np.isclose(table["shuffled_fraction"].sum(), 1)
    assert sel.mixed_summary(table)["mixed"] == pytest.approx(1 / 200)


def test_mixed_selectivity_controls_for_correlated_variables():
    """A unit that encodes only the choice must not be counted as motion- or color-selective,
    although the choice agrees with each stream's sign on most trials."""
    trials = make_splits(TaskConfig(), 0, 0, 300)["test"]
    v = decision.task_variables(trials)
    assert v[["motion_sign", "choice"]].corr().iloc[0, 1] > 0.2
    rng = np.random.default_rng(0)
    X = rng.normal(size=(len(v), 50))
    X[:, 0] += 2 * (2 * v["choice"] - 1)
    s = sel.unit_selectivity(X, v)
    assert list(np.array(s["columns"])[s["selective"][0]]) == ["choice"]
    assert (sel.variance_inflation(v) < 5).all()


def test_mixed_selectivity_false_positive_rate_on_noise():
    rng = np.random.default_rng(3)
    v = random_variables(150, seed=4)
    X = rng.normal(size=(150, 300))
    s = sel.unit_selectivity(X, v, alpha=0.05)
    assert s["selective"].mean() <= 0.05
    assert sel.mixed_summary(sel.mixed_selectivity(X, v, n_shuffles=2))["mixed"] <= 0.01


def test_mixed_selectivity_verdict_and_rotation():
    rng = np.random.default_rng(0)
    n = 160
    v = random_variables(n, seed=2)
    X = rng.normal(size=(n, 60))
    X[:, :30] += (2 * v[list(decision.DECODED)].to_numpy() - 1) @ rng.normal(size=(4, 30)) * 1.5
    tables = {"fine-tuned": sel.mixed_selectivity(X, v, n_shuffles=3),
              "pretrained": sel.mixed_selectivity(rng.normal(size=(n, 60)), v, n_shuffles=3)}
    frac = {m: sel.mixed_summary(t)["mixed"] for m, t in tables.items()}
    boot = sel.mixed_difference_bootstrap(X, rng.normal(size=(n, 60)), v, n_boot=200)
    assert frac["fine-tuned"] > 0.3 and np.percentile(boot, 2.5) > 0.2
    sh = sel.shuffled_mixed_fractions(X, v, n_shuffles=19)
    out = claims.mixed_selectivity_verdict(frac, boot, sh, rotated=0.0)
    assert out.status == "replicated", out.evidence
    Q = sel.random_rotation(60, seed=0)
    np.testing.assert_allclose(Q @ Q.T, np.eye(60), atol=1e-10)


# ---- heads --------------------------------------------------------------------------------------

def test_z_capture_matches_the_adapter(gpt2_tok):
    trials = make_splits(TaskConfig(n_samples=2), 0, 0, 6)["test"]
    for name in ("tiny-gpt2", "tiny-llama"):
        model, tok = load_source(name)
        arch = Arch(model)
        z = act.collect_activations(model, tok, trials, heads_position=-1, batch_size=4)["z"]
        ids = act.encode_equal_length(tok, [t.prompt for t in trials])
        seen = {}
        with torch.no_grad(), arch.hooks({("z", l): (lambda l: lambda t: seen.__setitem__(l, t.clone()))(l)
                                          for l in range(arch.n_layers)}):
            model(input_ids=ids)
        for l in range(arch.n_layers):
            np.testing.assert_allclose(z[:, l], seen[l][:, -1].numpy(), atol=1e-6)
        # z is what the output projection receives: its product with W_O is the attention output
        W = arch.head_weights_out(arch.n_layers - 1).detach().numpy()
        assert np.einsum("bhd,hdm->bm", z[:, -1], W).shape == (len(trials), arch.d_model)


def test_head_svm_finds_a_planted_head():
    rng = np.random.default_rng(0)
    n, L, H, dh = 120, 2, 3, 8
    labels = rng.choice(np.array(decision.RESPONSE_TYPES), n)
    Z = rng.normal(size=(n, L, H, dh))
    for k, rt in enumerate(decision.RESPONSE_TYPES[:3]):
        Z[:, 1, 2, k] += 4 * (labels == rt)
    df = heads.head_decoding(Z, labels, cv_folds=3, seed=0)
    assert len(df) == L * H
    acc = heads.head_table(df)
    assert acc.shape == (L, H)
    assert acc[1, 2] > 0.85
    others = np.delete(acc.ravel(), 1 * H + 2)
    assert np.all(others < 0.5)
    sig = df[df["significant"]]
    assert list(zip(sig["layer"], sig["head"])) == [(1, 2)]
    assert 0.25 <= df["chance"].iloc[0] < 0.4
    summary = heads.head_summary({("m", "response_type"): df})
    assert summary["best_head"].iloc[0] == "L1H2"
    noise = heads.head_decoding(rng.normal(size=(n, L, H, dh)), labels, cv_folds=3, seed=0)
    ctx = np.array([t.startswith("color") for t in labels]).astype(int)
    choice = np.array([t.endswith("right") for t in labels]).astype(int)
    baseline = decision.one_factor_baseline(pd.DataFrame({"context": ctx, "choice": choice, "response_type": labels}))
    v = claims.head_verdict({("fine-tuned", "response_type"): df, ("pretrained", "response_type"): noise}, baseline)
    assert v.status == "replicated" and "L1H2" in v.evidence and "pretrained: 0 of 6" in v.evidence
    assert claims.head_verdict({("fine-tuned", "response_type"): noise}, baseline).status != "replicated"


def test_figures_draw():
    import matplotlib
    matplotlib.use("Agg")
    rows = []
    for m in ("pretrained", "fine-tuned"):
        for v in decision.DECODED:
            for p in range(5):
                rows.append({"model": m, "variable": v, "position": p, "layer": p, "accuracy": 0.6,
                             "lo": 0.5, "hi": 0.7, "shuffled_accuracy": 0.5})
    df = pd.DataFrame(rows)
    assert figs.plot_by_position(df, labels=list("abcde")) is not None
    assert figs.plot_by_layer(df) is not None
    rng = np.random.default_rng(0)
    v = random_variables(60)
    tables = {m: sel.mixed_selectivity(rng.normal(size=(60, 10)), v, n_shuffles=2) for m in ("a", "b")}
    assert figs.plot_mixed_selectivity(tables) is not None
    Z = rng.normal(size=(60, 2, 2, 3))
    res = {(m, "congruent"): heads.head_decoding(Z, v["choice"].to_numpy(), cv_folds=3) for m in ("a", "b")}
    assert figs.plot_head_heatmaps(res) is not None
