"""Head ablation on tiny random models: hooks, exactness against hand computation and the naive
loop, mean-ablation's reference, the attribution screen, and the verdict logic."""
import numpy as np
import pytest
import torch

from helpers.claims import ablation as ablation_claims
from helpers.interventions import ablation, effects
from helpers.models.arch import Arch
from helpers.models.scoring import pad_batch
from helpers.models.sources import load_source
from helpers.tasks.decision import TaskConfig, make_splits

SOURCES = ["tiny-gpt2", "tiny-llama"]


@pytest.fixture(scope="module")
def trials():
    return make_splits(TaskConfig(), 0, 6, 5)


def _model(source):
    torch.manual_seed(0)
    model, tok = load_source(source, seed=1)
    return model, tok, Arch(model)


def _n_hooks(model):
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())


@pytest.mark.parametrize("source", SOURCES)
def test_hooks_are_removed_even_after_an_exception(source):
    model, tok, arch = _model(source)
    before = _n_hooks(model)
    with pytest.raises(RuntimeError, match="boom"):
        with arch.hooks({("z", 0): lambda z: None, ("resid_pre", 1): lambda x: None,
                         ("attn_out", 1): lambda x: None}):
            assert _n_hooks(model) == before + 3
            raise RuntimeError("boom")
    assert _n_hooks(model) == before


def test_bad_hook_point_and_layer_are_named(trials):
    model, tok, arch = _model("tiny-gpt2")
    with pytest.raises(ValueError, match=r"unknown hook point 'mlp_out'.*resid_pre"):
        with arch.hooks({("mlp_out", 0): lambda z: None}):
            pass
    with pytest.raises(ValueError, match=r"layer 5 is out of range.*0..1"):
        with arch.hooks({("z", 5): lambda z: None}):
            pass
    assert _n_hooks(model) == 0


@pytest.mark.parametrize("source", SOURCES)
def test_zero_ablation_equals_removing_the_heads_contribution_by_hand(source, trials):
    model, tok, arch = _model(source)
    p = ablation.prepare(model, tok, trials["test"])
    layer, head = 1, 2
    captured = {}

    def grab(z):
        captured["z"] = z.detach().clone()
    with torch.no_grad():
        with arch.hooks({("z", layer): grab}):
            model(input_ids=p.ids)
        W_O = arch.head_weights_out(layer)                      # (H, d_head, d_model)
        contribution = captured["z"][:, :, head] @ W_O[head]    # what the head writes

        def zero(z):
            z = z.clone()
            z[:, :, head] = 0
            return z
        with arch.hooks({("z", layer): zero}):
            ablated = model(input_ids=p.ids).logits
        with arch.hooks({("attn_out", layer): lambda out: out - contribution}):
            by_hand = model(input_ids=p.ids).logits
        clean = model(input_ids=p.ids).logits
    assert torch.allclose(ablated, by_hand, atol=1e-5)
    assert not torch.allclose(ablated, clean, atol=1e-4)     # the head did something


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("kind", ["zero", "mean"])
def test_fast_sweep_equals_naive_sweep(source, kind, trials):
    model, tok, arch = _model(source)
    p = ablation.prepare(model, tok, trials["test"])
    means = ablation.head_means(arch, ablation.prepare(model, tok, trials["val"]))
    fast = ablation.sweep_heads(arch, p, kind, means, progress=False)
    naive = ablation.sweep_heads_naive(arch, p, kind, means)
    assert fast.shape == (arch.n_layers, arch.n_heads, len(trials["test"]))
    assert np.abs(fast - naive).max() < 1e-4
    assert np.abs(fast - ablation.clean_logit_diff(arch, p)[None, None]).max() > 1e-4


def test_mean_ablation_uses_the_reference_mean(trials):
    model, tok, arch = _model("tiny-llama")
    ref = ablation.prepare(model, tok, trials["val"])
    means = ablation.head_means(arch, ref)
    zs = {}
    with torch.no_grad(), arch.hooks({("z", 1): lambda z: zs.setdefault("z", z.clone())}):
        model(input_ids=ref.ids)
    assert torch.allclose(means[1], zs["z"].mean(0), atol=1e-6)
    # the sweep writes exactly that mean into the ablated head
    p = ablation.prepare(model, tok, trials["test"])
    seen = {}

    def spy(z):
        seen["z"] = z.clone()
    layer, head = 1, 3
    rep = ablation._replacement("mean", means, layer, p.ids.shape[1])
    with torch.no_grad():
        def ablate_then_spy(z):
            z = z.clone()
            z[:, :, head] = rep[:, head]
            spy(z)
            return z
        with arch.hooks({("z", layer): ablate_then_spy}):
            model(input_ids=p.ids)
    assert torch.allclose(seen["z"][:, :, head], means[layer][: p.ids.shape[1], head].expand_as(seen["z"][:, :, head]))
    # a different reference set gives a different mean-ablation result
    other = ablation.head_means(arch, ablation.prepare(model, tok, trials["test"]))
    a = ablation.sweep_heads(arch, p, "mean", means, progress=False)
    b = ablation.sweep_heads(arch, p, "mean", other, progress=False)
    assert np.abs(a - b).max() > 1e-6


def test_mean_ablation_without_means_and_unknown_kind_are_errors(trials):
    model, tok, arch = _model("tiny-gpt2")
    p = ablation.prepare(model, tok, trials["test"])
    with pytest.raises(ValueError, match="needs `means`"):
        ablation.sweep_heads(arch, p, "mean", None, progress=False)
    with pytest.raises(ValueError, match=r"unknown ablation kind 'half'.*zero"):
        ablation.sweep_heads(arch, p, "half", None, progress=False)


def test_layer_sweep_ablates_every_head_of_the_layer(trials):
    model, tok, arch = _model("tiny-gpt2")
    p = ablation.prepare(model, tok, trials["test"])

    def all_zero(z):
        return torch.zeros_like(z)
    with torch.no_grad(), arch.hooks({("z", 0): all_zero}):
        logits = model(input_ids=p.ids).logits[torch.arange(len(p.last)), p.last]
    r, l = p.answer_ids
    expected = (logits[:, r] - logits[:, l]).numpy()
    assert np.allclose(ablation.sweep_layers(arch, p, "zero")[0], expected, atol=1e-5)


def test_attribution_is_exact_for_a_linear_change_and_ranks_heads(trials):
    model, tok, arch = _model("tiny-gpt2")
    p = ablation.prepare(model, tok, trials["test"])
    est = -ablation.attribution_scores(arch, p, "zero")
    exact = effects.effects_table(ablation.clean_logit_diff(arch, p),
                                   ablation.sweep_heads(arch, p, "zero", progress=False), p.choice)
    exact = exact["ld_drop"].to_numpy().reshape(arch.n_layers, arch.n_heads)
    q = effects.screen_quality(est, exact, k=3)
    assert q["spearman"] > 0.5            # a linear estimate ranks heads of a tiny model well
    assert 0 <= q["top_k_overlap"] <= 1


@pytest.mark.parametrize("kind", ["zero", "mean"])
def test_attribution_in_chunks_equals_one_batch(trials, kind):
    model, tok, arch = _model("tiny-llama")
    p = ablation.prepare(model, tok, trials["test"])
    means = ablation.head_means(arch, ablation.prepare(model, tok, trials["val"])) if kind == "mean" else None
    whole = ablation.attribution_scores(arch, p, kind, means, chunk=len(p.choice))
    for chunk in (1, 3):
        np.testing.assert_allclose(ablation.attribution_scores(arch, p, kind, means, chunk=chunk), whole,
                                   rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="chunk=0"):
        ablation.attribution_scores(arch, p, kind, means, chunk=0)


def test_effects_table_and_depth_profile_on_planted_drops():
    rng = np.random.default_rng(0)
    L, H, B = 4, 3, 200
    choice = rng.choice([-1, 1], B)
    clean = choice * 2.0
    ablated = np.repeat(clean[None, None], L, 0).repeat(H, 1).astype(float)
    ablated[3, 1] = choice * -1.0 + rng.normal(0, 0.1, B)      # removing L3H1 flips every answer
    t = effects.effects_table(clean, ablated, choice, n_boot=200)
    row = t[(t["layer"] == 3) & (t["head"] == 1)].iloc[0]
    assert row.acc_drop == 1.0 and row.significant and row.ld_drop == pytest.approx(3.0, abs=0.05)
    assert t.drop(row.name)["ld_drop"].abs().max() == 0
    prof = effects.depth_profile(effects.per_prompt_drops(clean, ablated, choice), n_boot=100)
    assert prof["centre"] == pytest.approx(1.0) and prof["first_layer_share"] == 0


def _profile(layer, L=4, H=3, B=100, seed=0, size=1.0):
    rng = np.random.default_rng(seed)
    drops = np.abs(rng.normal(0, 0.01, (L, H, B)))
    drops[layer, 0] += size
    return effects.depth_profile(drops, np.full(B, 2.0), n_boot=200)


PASSED = {"fine-tuned": None, "scratch": None}


def test_depth_profile_is_signed_and_knows_its_total():
    """A layer whose heads' drops are negative pulls the centre toward it (signed weights); the
    total is the summed drop and total_rel its share of the clean logit difference."""
    B = 50
    drops = np.zeros((3, 2, B))
    drops[0, 0], drops[2, 0], drops[1, 1] = 1.0, 1.0, -0.5
    p = effects.depth_profile(drops, np.full(B, 3.0), n_boot=50)
    assert p["total"] == pytest.approx(1.5) and p["total_rel"] == pytest.approx(0.5)
    assert p["centre"] == pytest.approx((0 * 1.0 + 1 * -0.5 + 2 * 1.0) / 1.5 / 2)
    assert p["first_layer_share"] == pytest.approx(1 / 1.5)
    assert np.isnan(effects.depth_profile(drops, n_boot=20)["total_rel"])


def test_depth_verdicts_follow_the_evidence():
    v = {x.claim: x for x in ablation_claims.depth_verdicts(_profile(3), _profile(0), PASSED)}
    assert v["lin-ablation-finetuned-late"].status == "replicated"
    assert v["lin-ablation-scratch-first"].status == "replicated"
    v = {x.claim: x for x in ablation_claims.depth_verdicts(_profile(0), _profile(3), PASSED)}
    assert v["lin-ablation-finetuned-late"].status == "not replicated"
    assert v["lin-ablation-scratch-first"].status == "not replicated"
    v = {x.claim: x for x in ablation_claims.depth_verdicts(_profile(3), _profile(0),
                                                            {"fine-tuned": None,
                                                             "scratch": "the scratch model does not solve the task: 50%"})}
    assert v["lin-ablation-scratch-first"].status == "inconclusive"
    assert "does not solve the task" in v["lin-ablation-scratch-first"].gate
    # drops that add up to nothing material (2% of the clean logit difference): not judged
    v = {x.claim: x for x in ablation_claims.depth_verdicts(_profile(3, size=0.01), _profile(0), PASSED)}
    assert v["lin-ablation-finetuned-late"].status == "inconclusive"
    assert "changes little" in v["lin-ablation-finetuned-late"].gate


@pytest.mark.parametrize("source", SOURCES)
def test_last_layer_at_the_last_positions_equals_the_full_model(source):
    """With right padding and rows of different lengths (the shortcut must not see the pads)."""
    model, tok, arch = _model(source)
    ids, last = pad_batch([[5, 9, 200, 31, 7, 12], [44, 3, 9], [8, 8, 1000, 5]], pad_id=0)
    with torch.no_grad():
        full = model.base_model(input_ids=ids).last_hidden_state[torch.arange(3), last]
        streams = arch.residual_streams(ids)
        short = arch.final_norm()(arch.last_layer_at(streams[-2], last))
    assert torch.allclose(full, short, atol=1e-5)


@pytest.mark.parametrize("source", SOURCES)
def test_answer_states_equal_the_models_final_states_at_the_answer(source):
    model, tok, arch = _model(source)
    ids, last = pad_batch([[5, 9, 200, 31], [44, 3], [8, 8, 1000]], pad_id=0)
    with torch.no_grad():
        full = model.base_model(input_ids=ids).last_hidden_state[torch.arange(3), last]
        assert torch.allclose(arch.answer_states(ids, last), full, atol=1e-5)


def test_named_heads_table_ranks_the_named_heads_among_all():
    import pandas as pd
    rows = [{"layer": l, "head": h, "ld_drop": float(l * 10 + h), "ld_drop_lo": 0.0, "ld_drop_hi": 1.0,
             "significant": l == 2} for l in range(3) for h in range(4)]
    t = effects.named_heads_table(pd.DataFrame(rows), heads=((2, 3), (0, 0)))
    assert t[["layer", "head"]].values.tolist() == [[2, 3], [0, 0]]
    assert t["rank"].tolist() == [1, 12] and t["of"].tolist() == [12, 12]
    assert t["significant"].tolist() == [True, False]
    with pytest.raises(ValueError, match=r"\(5, 7\).*layers 0..2"):
        effects.named_heads_table(pd.DataFrame(rows))


def test_depth_verdicts_from_a_sweep_under_each_method():
    """The chapter's helper: the same rule from the sweep arrays with one ablation kind and one
    metric; an unknown metric names the accepted ones."""
    rng = np.random.default_rng(3)
    L, H, B = 4, 3, 60
    choice = rng.choice([-1, 1], B)
    clean = choice * 3.0
    results = {}
    for arm, layer in (("fine-tuned", 3), ("scratch", 0)):
        ablated = np.repeat(clean[None, None], L, 0).repeat(H, 1).astype(float)
        ablated[layer, 0] = -choice * 1.0                     # removing one head flips every answer
        results[arm] = {"clean": clean, "mean": ablated, "zero": ablated}
    gates = {"fine-tuned": None, "scratch": None}
    for metric in ("logit difference", "accuracy"):
        v = {x.claim: x.status for x in ablation_claims.depth_verdicts_from_sweep(results, choice, gates, "zero", metric)}
        assert v == {"lin-ablation-finetuned-late": "replicated", "lin-ablation-scratch-first": "replicated"}, metric
    with pytest.raises(ValueError, match="accepted values are \\['logit difference', 'accuracy'\\]"):
        ablation_claims.depth_verdicts_from_sweep(results, choice, gates, "mean", "probability")
