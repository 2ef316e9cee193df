"""The decision task's counterfactual pairs, DCM desiderata, and the circuit tools of chapters 7-8
(:mod:`helpers.interventions.decision_circuit`), with known answers on tiny random models: the
pairs flip the answer and move only signs or the context word, the circuit search is cached by its
config, CMAP between a model and its exact copy changes nothing, every head kept is the full model,
and the ablation sweep is cached per run.

``decision_circuit.test_prompts`` / ``EvalPrompts`` are used through the module (``dc.``): imported
by name, pytest would try to collect them as tests."""
import copy
import dataclasses
import types

import numpy as np
import pytest
import torch

from helpers.core.errors import ParameterError
from helpers.interventions import decision_circuit as dc
from helpers.interventions.circuits import ALL, Circuit, run_circuit
from helpers.interventions.metrics import ForcedChoice
from helpers.models.arch import Arch
from helpers.models.sources import load_source
from helpers.tasks.decision import (ANSWERS, COUNTERFACTUALS, DESIDERATA, CounterfactualPair, TaskConfig,
                                    answer_under, counterfactual, counterfactual_pairs, dcm_pairs,
                                    desideratum_targets, make_prompt, make_splits, pair_token_ids,
                                    same_length_pairs)

N_TRIALS = 60


@pytest.fixture(scope="module")
def trials():
    return make_splits(TaskConfig(), 0, 0, N_TRIALS)["test"]


@pytest.fixture(scope="module")
def tiny():
    """A tiny random GPT-2 with GPT-2's offline tokenizer: ``(arch, tokenizer)``."""
    torch.manual_seed(0)
    model, tok = load_source("tiny-gpt2", seed=1)
    return Arch(model.eval()), tok


@pytest.fixture(scope="module", params=["tiny-gpt2", "tiny-llama"])
def tiny_any(request):
    torch.manual_seed(0)
    model, tok = load_source(request.param, seed=1)
    return Arch(model.eval()), tok


def _relevant(t):
    return t.motion_samples if t.context == "motion" else t.color_samples


def _shown_sum(samples) -> int:
    return sum(round(x * 100) for x in samples)


def _check_labels(t):
    """A trial's labels follow from its samples: choice = sign of the relevant shown sum."""
    rel = _shown_sum(_relevant(t))
    assert rel != 0
    assert t.choice == (1 if rel > 0 else -1)
    assert t.answer == ANSWERS[t.choice]
    assert t.prompt == make_prompt(t.context, t.motion_samples, t.color_samples)
    assert round(t.motion_sum * 100) == _shown_sum(t.motion_samples)
    assert round(t.color_sum * 100) == _shown_sum(t.color_samples)


# ---- counterfactuals ---------------------------------------------------------------------------

def test_evidence_counterfactual_negates_the_relevant_samples_only(trials):
    for t in trials:
        cf = counterfactual(t, "evidence")
        assert cf is not None                                  # negating the evidence always flips
        assert cf.choice == -t.choice and cf.answer != t.answer
        assert cf.context == t.context
        if t.context == "motion":
            assert cf.color_samples == t.color_samples and cf.color_coh == t.color_coh
            assert cf.motion_samples == tuple(-x if x else 0.0 for x in t.motion_samples)
            assert cf.motion_coh == -t.motion_coh
        else:
            assert cf.motion_samples == t.motion_samples and cf.motion_coh == t.motion_coh
            assert cf.color_samples == tuple(-x if x else 0.0 for x in t.color_samples)
            assert cf.color_coh == -t.color_coh
        # the prompt differs from the clean one only in sign characters, position for position
        assert len(cf.prompt) == len(t.prompt)
        diff = [(a, b) for a, b in zip(t.prompt, cf.prompt) if a != b]
        assert diff and all({a, b} == {"+", "-"} for a, b in diff)
        assert len(diff) == sum(1 for x in _relevant(t) if x != 0)
        _check_labels(cf)


def test_evidence_counterfactual_keeps_a_zero_sample_as_plus_zero(trials):
    with_zero = [t for t in trials if 0.0 in _relevant(t)]
    assert with_zero, "the fixture's trials should hold a relevant sample of 0.00"
    for t in with_zero:
        cf = counterfactual(t, "evidence")
        i = _relevant(t).index(0.0)
        assert _relevant(cf)[i] == 0.0 and str(_relevant(cf)[i]) == "0.0"     # not -0.0
        stream = "Motion" if t.context == "motion" else "Color"
        shown = cf.prompt.split(f"{stream}: ")[1].split(". ")[0].split(" ")
        clean_shown = t.prompt.split(f"{stream}: ")[1].split(". ")[0].split(" ")
        assert shown[i] == clean_shown[i] == "+0.00"
        assert [a == b for a, b in zip(shown, clean_shown)] == [x == 0 for x in _relevant(t)]


def test_context_counterfactual_swaps_only_the_context_word(trials):
    n_pairs = 0
    for t in trials:
        cf = counterfactual(t, "context")
        other = "color" if t.context == "motion" else "motion"
        opposite = t.motion_sum * t.color_sum < 0
        if not opposite:
            assert cf is None                                  # the answer would not flip
            continue
        n_pairs += 1
        assert cf.context == other
        assert cf.prompt == t.prompt.replace(f"Context: {t.context}.", f"Context: {other}.", 1)
        assert cf.prompt.split(".", 1)[1] == t.prompt.split(".", 1)[1]         # both streams unchanged
        assert (cf.motion_samples, cf.color_samples) == (t.motion_samples, t.color_samples)
        assert (cf.motion_coh, cf.color_coh) == (t.motion_coh, t.color_coh)
        assert cf.choice == -t.choice
        _check_labels(cf)
    assert 0 < n_pairs < len(trials)
    pairs = counterfactual_pairs(trials, "context")
    expected = [t for t in trials if t.motion_sum * t.color_sum < 0]
    assert [p.clean for p in pairs] == expected
    assert all(p.kind == "context" and p.counterfactual == counterfactual(p.clean, "context") for p in pairs)
    assert len(counterfactual_pairs(trials, "evidence")) == len(trials)


def test_context_counterfactual_is_none_when_the_streams_agree_or_the_other_sums_to_zero(trials):
    t = trials[0]
    agree = dataclasses.replace(t, context="motion", motion_samples=(0.1, 0.2, -0.05, 0.0),
                                color_samples=(0.3, -0.1, 0.0, 0.0), motion_sum=0.25, color_sum=0.2, choice=1)
    assert counterfactual(agree, "context") is None
    zero = dataclasses.replace(agree, color_samples=(0.3, -0.3, 0.0, 0.0), color_sum=0.0)
    assert counterfactual(zero, "context") is None
    flips = dataclasses.replace(agree, color_samples=(-0.3, -0.1, 0.0, 0.0), color_sum=-0.4)
    cf = counterfactual(flips, "context")
    assert cf.context == "color" and cf.choice == -1 and cf.answer == " left"


def test_unknown_counterfactual_kind_names_the_accepted_values(trials):
    with pytest.raises(ParameterError, match="accepted values") as e:
        counterfactual(trials[0], "colour")
    assert all(k in str(e.value) for k in COUNTERFACTUALS)
    with pytest.raises(ParameterError, match="evidence"):
        counterfactual_pairs(trials, "nope")
    with pytest.raises(ParameterError, match="evidence"):
        dc.pair_batch(None, trials, "nope", 3)


# ---- token lengths -----------------------------------------------------------------------------

def test_pair_token_ids_aligns_positions_and_only_signs_differ(tiny, trials):
    _, tok = tiny
    pairs = counterfactual_pairs(trials, "evidence")[:8]
    ids, cf = pair_token_ids(tok, pairs)
    assert ids.shape == cf.shape == (8, len(tok.encode(pairs[0].clean.prompt)))
    for i, p in enumerate(pairs):
        assert ids[i].tolist() == tok.encode(p.clean.prompt)
        assert cf[i].tolist() == tok.encode(p.counterfactual.prompt)
    changed = (ids != cf).nonzero().tolist()
    assert changed
    assert {tok.decode([int(ids[r, c])]).strip() for r, c in changed} <= {"+", "-"}
    ctx = counterfactual_pairs(trials, "context")[:4]
    a, b = pair_token_ids(tok, ctx)
    assert (a != b).sum(0).nonzero().flatten().tolist() == [2]          # "Context", ":", " motion"
    with pytest.raises(ParameterError, match="no counterfactual pairs"):
        pair_token_ids(tok, [])


def test_pair_token_ids_names_the_pair_of_another_length(tiny, trials):
    _, tok = tiny
    long_ = counterfactual_pairs(trials, "evidence")[:3]
    short_trials = make_splits(TaskConfig(n_samples=3), 0, 0, 3)["test"]
    short = counterfactual_pairs(short_trials, "evidence")[:1]
    assert len(tok.encode(short[0].clean.prompt)) < len(tok.encode(long_[0].clean.prompt))
    with pytest.raises(ParameterError, match="pair 2 ") as e:
        pair_token_ids(tok, long_[:2] + short)
    assert short[0].clean.prompt in str(e.value) and "same_length_pairs" in str(e.value)
    # a counterfactual longer than its clean prompt, the pair otherwise at the common length
    bad_cf = dataclasses.replace(long_[2].counterfactual, prompt=long_[2].counterfactual.prompt + " Really:")
    bad = CounterfactualPair(long_[2].clean, bad_cf, "evidence")
    with pytest.raises(ParameterError, match="pair 1 "):
        pair_token_ids(tok, [long_[0], bad])
    # same_length_pairs keeps the pairs of the most common clean length whose two prompts have it
    kept = same_length_pairs(tok, [long_[0], short[0], bad, long_[1]])
    assert kept == [long_[0], long_[1]]
    assert same_length_pairs(tok, [short[0]]) == [short[0]]
    assert same_length_pairs(tok, []) == []


def test_pair_batch_tokens_and_first(tiny, trials):
    _, tok = tiny
    b = dc.pair_batch(tok, trials, "context", 5)
    pairs = counterfactual_pairs(trials, "context")
    assert b.n_candidates == len(pairs) and b.pairs == pairs[:5]
    right, left = (tok.encode(ANSWERS[c])[0] for c in (1, -1))
    assert b.correct.tolist() == [right if p.clean.choice > 0 else left for p in b.pairs]
    assert b.wrong.tolist() == [left if p.clean.choice > 0 else right for p in b.pairs]
    assert b.last.tolist() == [b.ids.shape[1] - 1] * 5
    f = b.first(2)
    assert f.kind == "context" and f.n_candidates == b.n_candidates and f.pairs == b.pairs[:2]
    assert torch.equal(f.ids, b.ids[:2]) and torch.equal(f.cf_ids, b.cf_ids[:2])
    assert torch.equal(f.correct, b.correct[:2]) and torch.equal(f.wrong, b.wrong[:2])
    assert dc.pair_batch(tok, trials, "evidence", 1000).ids.shape[0] == N_TRIALS      # fewer when fewer


# ---- DCM desiderata ----------------------------------------------------------------------------

@pytest.mark.parametrize("desideratum", list(DESIDERATA))
def test_dcm_pairs_isolate_one_desideratum(trials, desideratum):
    out = dcm_pairs(trials, desideratum, 12, seed=0)
    assert len(out) == 12
    for base, source, target in out:
        assert base is not source
        t = desideratum_targets(base, source)
        assert target == t[desideratum] and target in (1, -1)
        assert target != base.choice
        assert all(v == base.choice for k, v in t.items() if k != desideratum)
    again = dcm_pairs(trials, desideratum, 12, seed=0)
    assert [(b.prompt, s.prompt, g) for b, s, g in again] == [(b.prompt, s.prompt, g) for b, s, g in out]


@pytest.mark.parametrize("desideratum", list(DESIDERATA))
def test_dcm_pairs_are_distinct_and_take_the_usable_bases_in_turn(trials, desideratum):
    """No (base, source) pair twice, so a pair cannot land in both the training and the test split;
    the first bases are the first trials that can be a base for this desideratum, in order."""
    n = 40
    out = dcm_pairs(trials, desideratum, n, seed=1)
    keys = [(b.prompt, s.prompt) for b, s, _ in out]
    assert len(set(keys)) == n
    usable = [t for t in trials if any(
        t2 is not t and desideratum_targets(t, t2)[desideratum] not in (None, t.choice)
        and all(v == t.choice for k, v in desideratum_targets(t, t2).items() if k != desideratum)
        for t2 in trials)]
    first_bases = [b.prompt for b, _, _ in out[:5]]
    assert first_bases == [t.prompt for t in usable[:5]]


def test_desideratum_targets_by_hand(trials):
    base = dataclasses.replace(trials[0], context="motion", motion_sum=0.3, color_sum=-0.2, choice=1)
    source = dataclasses.replace(trials[1], context="color", motion_sum=-0.1, color_sum=0.4, choice=1)
    assert desideratum_targets(base, source) == {"choice": 1, "context": -1, "evidence": -1}
    assert answer_under("color", dataclasses.replace(base, color_sum=0.0)) is None


def test_dcm_pairs_rejects_bad_arguments(trials):
    with pytest.raises(ParameterError, match="accepted values") as e:
        dcm_pairs(trials, "colour", 4)
    assert all(d in str(e.value) for d in DESIDERATA)
    with pytest.raises(ParameterError, match="n=0"):
        dcm_pairs(trials, "choice", 0)
    agree = [t for t in trials if t.motion_sum * t.color_sum > 0][:6]        # no context pair exists
    with pytest.raises(ParameterError, match="give more trials"):
        dcm_pairs(agree, "context", 2)


def test_dcm_batch_tokens(tiny, trials):
    _, tok = tiny
    triples = dcm_pairs(trials, "evidence", 4, seed=0)
    p = dc.dcm_batch(tok, triples)
    assert p.base_ids.tolist() == [tok.encode(b.prompt) for b, _, _ in triples]
    assert p.source_ids.tolist() == [tok.encode(s.prompt) for _, s, _ in triples]
    assert p.target.tolist() == [tok.encode(ANSWERS[g])[0] for _, _, g in triples]
    assert p.base_pos.tolist() == p.base_last.tolist() == [len(tok.encode(b.prompt)) - 1 for b, _, _ in triples]


# ---- flip share, residual map ------------------------------------------------------------------

def test_flip_share_known_answers():
    clean, cf = np.array([2.0, 2.0]), np.array([-2.0, -2.0])
    assert dc.flip_share(np.array([0.0, 0.0]), clean, cf) == pytest.approx(-0.5)
    assert dc.flip_share(cf, clean, cf) == pytest.approx(-1.0)
    assert dc.flip_share(clean, clean, cf) == pytest.approx(0.0)
    grid = np.array([[[0.0, 0.0], [-2.0, -2.0]], [[2.0, 2.0], [4.0, 0.0]]])       # (2, 2, prompts)
    np.testing.assert_allclose(dc.flip_share(grid, clean, cf), [[-0.5, -1.0], [0.0, 0.0]])
    for bad_cf in (clean, clean + 1.0):                          # no flip, or the wrong way
        out = dc.flip_share(grid, clean, bad_cf)
        assert out.shape == (2, 2) and np.isnan(out).all()


def _positive_gap(arch, batch):
    """The batch with correct and wrong answers swapped in the pairs where the random model's
    counterfactual does not lower the logit difference: every pair then flips, the gap is > 0."""
    clean, cf = dc.logit_diffs(arch, batch)
    swap = torch.as_tensor(clean - cf < 0)
    correct = torch.where(swap, batch.wrong, batch.correct)
    wrong = torch.where(swap, batch.correct, batch.wrong)
    out = dataclasses.replace(batch, correct=correct, wrong=wrong)
    c2, f2 = dc.logit_diffs(arch, out)
    assert (c2 - f2 > 0).all()
    return out


def test_logit_diffs_and_resid_map_known_answers(tiny, trials):
    arch, tok = tiny
    b = _positive_gap(arch, dc.pair_batch(tok, trials, "context", 4))
    clean, cf = dc.logit_diffs(arch, b)
    with torch.no_grad():
        lc = arch.model(input_ids=b.ids).logits[:, -1]
        lf = arch.model(input_ids=b.cf_ids).logits[:, -1]
    r = torch.arange(4)
    np.testing.assert_allclose(clean, (lc[r, b.correct] - lc[r, b.wrong]).numpy(), rtol=1e-6)
    np.testing.assert_allclose(cf, (lf[r, b.correct] - lf[r, b.wrong]).numpy(), rtol=1e-6)
    m = dc.resid_map(arch, b, [0, 1])
    T = b.ids.shape[1]
    assert m.shape == (2, T)
    # only the context word (position 2) differs: patching the embeddings there is the whole flip
    assert m[0, 2] == pytest.approx(1.0, abs=1e-4)
    same = [t for t in range(T) if t != 2]
    assert np.abs(m[0, same]).max() < 1e-5
    assert np.abs(m[1, :2]).max() < 1e-5                   # before the change the streams are equal


# ---- the circuit search, cached ----------------------------------------------------------------

def test_search_circuit_is_cached_by_its_config(tiny, trials, tmp_path, monkeypatch):
    arch, tok = tiny
    batches = {k: _positive_gap(arch, dc.pair_batch(tok, trials, k, 4)) for k in ("evidence", "context")}
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path))
    calls = []
    real = dc.search_kind

    def counting(arch_, batch, keep, min_share):
        calls.append((batch.kind, keep))
        return real(arch_, batch, keep, min_share)
    monkeypatch.setattr(dc, "search_kind", counting)

    first = dc.search_circuit(arch, batches, keep=2, min_share=0.001, run_key="run-a")
    assert sorted(calls) == [("context", 2), ("evidence", 2)]
    assert len(list((tmp_path / "analyses").glob("decision-circuit-*"))) == 1
    for kind, res in first.items():
        assert res["writers"]["scores"].shape == (arch.n_layers, arch.n_heads)
        assert np.isfinite(res["writers"]["scores"]).all()
        # the selection rule: the `keep` most negative scores, each <= -min_share
        for role in dc.GROUPS:
            scores = res[role]["scores"]
            order = sorted((float(scores[l, h]), (l, h)) for l in range(arch.n_layers) for h in range(arch.n_heads))
            assert [tuple(h) for h in res[role]["heads"]] == [lh for v, lh in order if v <= -0.001][:2]
        assert res["n_pairs"] == 4
        assert (res["clean_ld"] - res["cf_ld"] > 0).all()
    assert sum(len(res["writers"]["heads"]) for res in first.values()) >= 2

    second = dc.search_circuit(arch, batches, keep=2, min_share=0.001, run_key="run-a")
    assert len(calls) == 2                                         # read from disk
    assert set(second) == set(first)
    for kind in first:
        for role in dc.GROUPS:
            assert second[kind][role]["heads"] == first[kind][role]["heads"]
            np.testing.assert_array_equal(second[kind][role]["scores"], first[kind][role]["scores"])
        np.testing.assert_array_equal(second[kind]["clean_ld"], first[kind]["clean_ld"])
        np.testing.assert_array_equal(second[kind]["cf_ld"], first[kind]["cf_ld"])
        assert second[kind]["n_pairs"] == 4

    third = dc.search_circuit(arch, batches, keep=1, min_share=0.001, run_key="run-a")
    assert sorted(calls[2:]) == [("context", 1), ("evidence", 1)]          # another keep: computed
    for kind in first:
        assert third[kind]["writers"]["heads"] == first[kind]["writers"]["heads"][:1]
        np.testing.assert_array_equal(third[kind]["writers"]["scores"], first[kind]["writers"]["scores"])
    dc.search_circuit(arch, batches, keep=2, min_share=0.001, run_key="run-b")
    assert len(calls) == 6                                         # another run: computed
    dc.search_circuit(arch, {"evidence": batches["evidence"].first(3)}, keep=2, min_share=0.001, run_key="run-a")
    assert calls[-1] == ("evidence", 2) and len(calls) == 7        # other prompts: computed
    assert len(list((tmp_path / "analyses").glob("decision-circuit-*"))) == 4


def test_search_kind_keeps_no_head_without_a_flip(tiny, trials):
    arch, tok = tiny
    b = _positive_gap(arch, dc.pair_batch(tok, trials, "evidence", 3))
    flipped = dataclasses.replace(b, correct=b.wrong, wrong=b.correct)          # the gap is now < 0
    res = dc.search_kind(arch, flipped, keep=3, min_share=0.0)
    assert res["writers"]["heads"] == [] and res["movers"]["heads"] == []
    assert np.isnan(res["writers"]["scores"]).all() and np.isnan(res["movers"]["scores"]).all()


def test_circuit_of_drops_empty_groups_and_names_the_rest():
    search = {"evidence": {"writers": {"heads": [[1, 0], [0, 2]]}, "movers": {"heads": []}},
              "context": {"writers": {"heads": [[1, 3]]}, "movers": {"heads": [[0, 1], [1, 3]]}}}
    c = dc.circuit_of(search)
    assert [(g.name, g.position, g.heads) for g in c.groups] == [
        ("movers", "last", frozenset({(0, 1), (1, 3)})),
        ("writers", "last", frozenset({(1, 0), (0, 2), (1, 3)}))]      # one group per role: the union
    assert c.heads == {(1, 0), (0, 2), (1, 3), (0, 1)} and c.size == 5
    e = dc.at_every_position(c)
    assert [(g.name, g.position, g.heads) for g in e.groups] == [(g.name, ALL, g.heads) for g in c.groups]
    assert dc.circuit_of({"evidence": {"writers": {"heads": []}, "movers": {"heads": []}}}).size == 0


def test_scores_table_has_every_sender():
    sc = np.array([[0.0, -0.2, np.nan], [-0.4, 0.1, 0.0]])
    search = {"evidence": {"writers": {"scores": sc}, "movers": {"scores": np.full((2, 3), np.nan)}}}
    t = dc.scores_table(search)
    assert len(t) == 12 and list(t.columns) == ["counterfactual", "group", "layer", "head", "share of the flip"]
    w = t[t["group"] == "writers"]
    assert w[["layer", "head"]].values.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    assert np.allclose(w["share of the flip"].to_numpy(), sc.ravel(), equal_nan=True)
    assert t[t["group"] == "movers"]["share of the flip"].isna().all()


def test_search_table_rows():
    search = {"evidence": {"writers": {"heads": [[1, 0], [0, 2]], "scores": np.array([[0, 0, -0.2], [-0.4, 0, 0]])},
                           "movers": {"heads": [], "scores": np.full((2, 3), np.nan)}}}
    t = dc.search_table(search)
    assert t[["group", "layer", "head", "rank"]].values.tolist() == [["writers", 1, 0, 1], ["writers", 0, 2, 2]]
    assert t["share of the flip"].tolist() == pytest.approx([-0.4, -0.2])


# ---- CMAP --------------------------------------------------------------------------------------

def test_cmap_between_a_model_and_its_copy_changes_nothing(tiny_any, trials):
    arch, tok = tiny_any
    copy_ = Arch(copy.deepcopy(arch.model))
    test = dc.eval_prompts(tok, trials[:12])
    sets = {"one": [(0, 1)], "two": [(0, 3), (1, 2)], "all": [(l, h) for l in range(2) for h in range(4)]}
    for every in (False, True):
        out = dc.cmap_sets(arch, copy_, test.ids, test.correct, test.wrong, sets, test.last, every_position=every)
        assert set(out) == {"A", "B", *sets}
        with torch.no_grad():
            logits = arch.model(input_ids=test.ids).logits[torch.arange(12), test.last]
        direct = (logits[torch.arange(12), test.correct] > logits[torch.arange(12), test.wrong]).float().numpy()
        np.testing.assert_array_equal(out["A"], direct)
        for name in ("B", *sets):
            np.testing.assert_array_equal(out[name], out["A"])
        assert 0 < out["A"].mean() < 1
    # the probabilities of the same pass: the model's own softmax of the correct token
    out, prob = dc.cmap_sets(arch, copy_, test.ids, test.correct, test.wrong, sets, test.last, with_probability=True)
    expected = torch.softmax(logits.float(), -1)[torch.arange(12), test.correct].numpy()
    np.testing.assert_allclose(prob["A"], expected, rtol=1e-5)
    np.testing.assert_array_equal(out["A"], direct)
    for name in ("B", *sets):
        np.testing.assert_allclose(prob[name], prob["A"], rtol=1e-5)


def test_cmap_table_rows(tiny, trials):
    arch, tok = tiny
    test = dc.eval_prompts(tok, trials[:10])
    donor = Arch(copy.deepcopy(arch.model))
    table, out = dc.cmap_table(arch, donor, test, {"circuit": [(0, 1), (1, 2)], "empty": []}, n_random=2, seed=3)
    assert table["patched"].tolist() == ["receiver alone", "donor alone", "circuit", "random 0", "random 1"]
    assert table["heads"].tolist() == [0, 0, 2, 2, 2]
    assert table["accuracy"].nunique() == 1
    assert np.isnan(table["moved"]).all()                  # the donor is not better: nothing to move
    assert set(out) == {"A", "B", "circuit", "random 0", "random 1"}


def test_cmap_table_every_position_is_the_alternative_patch(tiny, trials):
    """B = A with other query/key/value weights: every head's output from B leaves A computing B's
    function at the last position (at the last position only or at every position alike).  The
    first layer's heads from B at the last position only leave the second layer (A's weights)
    reading A's first-layer outputs at the earlier positions; at every position it reads B's, which
    is what patching the same heads by hand at every position gives."""
    arch, tok = tiny
    test = dc.eval_prompts(tok, trials[:16])
    from conftest import qkv_twin
    twin = qkv_twin(arch)
    heads = {"all": [(l, h) for l in range(arch.n_layers) for h in range(arch.n_heads)]}
    _, every, p_every = dc.cmap_table(arch, twin, test, heads, n_random=0, with_probability=True, every_position=True)
    np.testing.assert_array_equal(every["all"], every["B"])
    np.testing.assert_allclose(p_every["all"], p_every["B"], rtol=1e-3, atol=1e-6)
    layer0 = {"first layer": [(0, h) for h in range(arch.n_heads)]}
    _, _, p_last = dc.cmap_table(arch, twin, test, layer0, n_random=0, with_probability=True)
    _, _, p_every = dc.cmap_table(arch, twin, test, layer0, n_random=0, with_probability=True, every_position=True)
    from helpers.interventions.metrics import Prob
    from helpers.interventions.patching import generic_patch, heads_components, record
    cache = record(twin, test.ids, {("z", 0)})
    with torch.no_grad():
        by_hand = generic_patch(arch, test.ids, cache, [heads_components(layer0["first layer"], "z", None)],
                                Prob(test.correct), test.last)[0]
    np.testing.assert_allclose(p_every["first layer"], by_hand, rtol=1e-5)
    assert not np.allclose(p_last["first layer"], p_every["first layer"], rtol=1e-3, atol=0)


def test_moved_share_known_answers():
    assert dc.moved_share(np.array([0.75]), np.array([0.5]), np.array([1.0])) == pytest.approx(0.5)
    assert dc.moved_share(np.array([1, 1, 0, 1]), np.array([1, 0, 0, 0]), np.array([1, 1, 1, 1])) == pytest.approx(2 / 3)
    assert np.isnan(dc.moved_share(np.array([0.75]), np.array([0.5]), np.array([0.5])))
    assert np.isnan(dc.moved_share(np.array([0.75]), np.array([0.9]), np.array([0.5])))


def test_random_head_sets():
    sets = dc.random_head_sets(5, 3, 4, n_draws=6, seed=2)
    assert len(sets) == 6
    for s in sets:
        assert len(s) == 5 and len(set(s)) == 5
        assert all(0 <= l < 3 and 0 <= h < 4 for l, h in s)
    assert dc.random_head_sets(5, 3, 4, n_draws=6, seed=2) == sets
    assert dc.random_head_sets(5, 3, 4, n_draws=3, seed=2) == sets[:3]          # draw i from [seed, i]
    assert dc.random_head_sets(5, 3, 4, n_draws=6, seed=3) != sets
    assert len({tuple(s) for s in sets}) > 1
    assert sorted(dc.random_head_sets(12, 3, 4, 1)[0]) == [(l, h) for l in range(3) for h in range(4)]
    with pytest.raises(ParameterError, match="12 heads"):
        dc.random_head_sets(13, 3, 4, 1)


# ---- two-alternative accuracy ------------------------------------------------------------------

def test_forced_choice_known_answer():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0], [3.0, 2.0, 1.0, 0.0], [1.0, 5.0, 1.0, 0.0]])
    fc = ForcedChoice(torch.tensor([3, 3, 2]), torch.tensor([0, 0, 0]))
    assert fc(logits).tolist() == [1.0, 0.0, 0.0]                 # a tie is not a win
    stacked = torch.stack([logits, -logits])                       # (copies, batch, vocab)
    assert fc(stacked).tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def test_run_circuit_with_wrong_ids_is_the_forced_choice(tiny_any, trials):
    arch, tok = tiny_any
    test = dc.eval_prompts(tok, trials[:16])
    with torch.no_grad():
        logits = arch.model(input_ids=test.ids).logits[torch.arange(16), test.last]
    r = torch.arange(16)
    forced = (logits[r, test.correct] > logits[r, test.wrong]).numpy()
    argmax = (logits.argmax(-1) == test.correct).numpy()
    right, p = run_circuit(arch, test.ids, {}, None, None, test.correct, last=test.last, wrong_ids=test.wrong)
    np.testing.assert_array_equal(right, forced)
    plain, p2 = run_circuit(arch, test.ids, {}, None, None, test.correct, last=test.last)
    np.testing.assert_array_equal(plain, argmax)
    np.testing.assert_allclose(p, torch.softmax(logits.float(), -1)[r, test.correct].double().numpy(), rtol=1e-5)
    np.testing.assert_array_equal(p, p2)
    assert 0 < forced.mean() < 1 and not np.array_equal(forced, argmax)


# ---- evaluation --------------------------------------------------------------------------------

def test_evaluate_circuits_with_every_head_is_the_full_model(tiny, trials):
    arch, tok = tiny
    test, ref = dc.eval_prompts(tok, trials[:16]), dc.eval_prompts(tok, trials[16:32])
    full = Circuit.all_heads(arch.n_layers, arch.n_heads)
    evs = dc.evaluate_circuits(arch, full, test, ref, n_random=1, minimality=False)
    assert list(evs) == ["circuit", "same heads, every position", "every head, last position",
                         "no head (all mean-ablated)"]
    ev = evs["circuit"]
    assert 0 < ev.model_accuracy < 1
    assert ev.faithfulness == 1.0 and np.array_equal(ev.correct, ev.model_correct)
    assert evs["same heads, every position"].faithfulness == 1.0
    assert ev.random.faithfulness.tolist() == [1.0]               # every head of the model, drawn at random
    ceiling = evs["every head, last position"]
    assert ceiling.circuit.heads == full.heads and {g.position for g in ceiling.circuit.groups} == {"last"}
    floor = evs["no head (all mean-ablated)"]
    assert floor.circuit.size == 0 and floor.minimality is None
    assert list(dc.evaluate_circuits(arch, full, test, ref, n_random=0, minimality=False, references=False)) == ["circuit"]
    table = dc.evaluation_table(evs)
    assert len(table) == 4
    assert table["circuit"].tolist() == list(evs)
    assert table["heads"].tolist() == [8, 8, 8, 0] and table["prompts"].tolist() == [16] * 4
    assert table["faithfulness"].tolist()[:2] == [1.0, 1.0]
    assert table["random_mean"].tolist()[0] == 1.0 and np.isnan(table["random_mean"].tolist()[1])


def test_every_head_at_last(tiny):
    arch, _ = tiny
    c = dc.every_head_at_last(arch)
    assert [(g.name, g.position) for g in c.groups] == [("every head", "last")]
    assert c.heads == {(l, h) for l in range(2) for h in range(4)}


# ---- the cached ablation sweep -----------------------------------------------------------------

def test_cached_ablation_results_loads_the_model_only_once(tiny, trials, tmp_path, monkeypatch):
    from helpers.interventions.ablation import cached_ablation_results
    arch, tok = tiny
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path))
    run = types.SimpleNamespace(config=types.SimpleNamespace(key=lambda: "fake-run-key"))
    loads = []

    def load():
        loads.append(1)
        return arch.model, tok
    a = cached_ablation_results(run, load, trials[:4], trials[4:8], kinds=("zero",))
    assert len(loads) == 1
    assert a["arch"] == (2, 4) and isinstance(a["arch"], tuple)
    b = cached_ablation_results(run, load, trials[:4], trials[4:8], kinds=("zero",))
    assert len(loads) == 1                                          # read from disk
    assert b["arch"] == (2, 4) and isinstance(b["arch"], tuple) and b["family"] == a["family"] == "gpt2"
    np.testing.assert_array_equal(b["clean"], a["clean"])
    np.testing.assert_array_equal(b["zero"], a["zero"])
    np.testing.assert_array_equal(b["zero_layers"], a["zero_layers"])
    np.testing.assert_array_equal(b["attribution"]["zero"], a["attribution"]["zero"])
    assert b["zero"].shape == (2, 4, 4)
    cached_ablation_results(run, load, trials[:3], trials[4:8], kinds=("zero",))
    assert len(loads) == 2                                          # other prompts: computed
    other = types.SimpleNamespace(config=types.SimpleNamespace(key=lambda: "another-run"))
    cached_ablation_results(other, load, trials[:4], trials[4:8], kinds=("zero",))
    assert len(loads) == 3
