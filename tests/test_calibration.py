"""Calibration of the verdict functions as they stand (issue 8, section 4).

On simulated data with no effect, a verdict function may say "replicated" at most about alpha of
the time (every verdict here uses 95% intervals, alpha = 0.05; the bound allows two Monte Carlo
standard errors); with a planted material effect it says "replicated" most of the time.  The
known defects that issue 8 lists are pinned as strict xfails, each with the behaviour measured: when
the verdict work fixes one, its xfail turns into a failure and must become a plain test.
Rates measured here (seed 0) are in each test's docstring.
"""
import numpy as np
import pandas as pd
import pytest

from helpers.claims import ablation as c_ablation
from helpers.claims import attention as c_attention
from helpers.claims import decoding as c_decoding
from helpers.claims import representations as c_repr
from helpers.claims.sample_efficiency import sample_efficiency_verdict
from helpers.interventions.effects import depth_profile
from helpers.readouts.attention import AttentionStats, first_layer_number_attention, relevance_table
from helpers.readouts.heads import head_decoding
from helpers.stats.intervals import wilson_ci
from helpers.tasks.tokens import TOKEN_TYPES

ALPHA = 0.05


def bound(draws: int, alpha: float = ALPHA) -> float:
    return alpha + 2 * np.sqrt(alpha * (1 - alpha) / draws)


def rate(statuses, status="replicated") -> float:
    statuses = list(statuses)
    return sum(s == status for s in statuses) / len(statuses)


# ---- simulators ------------------------------------------------------------------------------------

def curves(rng, p_ft, p_sc, sizes=(32, 128, 512), n_test=300):
    rows = []
    for arm, ps in (("fine-tuned", p_ft), ("scratch", p_sc)):
        for n, p in zip(sizes, ps):
            rows.append({"arm": arm, "n_train": n, "n_test": n_test, "test_accuracy": rng.binomial(n_test, p) / n_test})
    return pd.DataFrame(rows)


def depth_verdicts(rng, late=0.0, L=8, H=4, B=32):
    """Per-prompt ablation drops with no depth structure, or weighted toward late layers."""
    w = 1.0 + late * np.linspace(-1, 1, L)
    ft = depth_profile(rng.normal(0.2, 1.0, (L, H, B)) * w[:, None, None], n_boot=200, seed=int(rng.integers(1 << 30)))
    sc = depth_profile(rng.normal(0.2, 1.0, (L, H, B)), n_boot=200, seed=int(rng.integers(1 << 30)))
    ok = np.ones(B, dtype=bool)
    return {k: v for k, (v, _) in c_ablation.depth_verdicts(ft, sc, ok, ok).items()}


SHARE = np.array([0.05, 0.35, 0.35, 0.15, 0.10])      # context word, motion, color, punctuation, other


def attention_stats(rng, excess=0.0, relevance=0.0, n=60, L=3, H=4) -> AttentionStats:
    """Answer-position masses whose number mass is the uniform share plus `excess`; head (L-1, 0)
    puts `relevance` more mass on the relevant stream than on the irrelevant one."""
    contexts = rng.choice(["motion", "color"], size=n)
    ans = rng.dirichlet(SHARE * 50, size=(n, L, H))
    num = ans[..., 1:3].sum(-1, keepdims=True)
    target = np.clip(num + excess, 0, 1)
    ans[..., 1:3] *= target / num
    rest = ans[..., [0, 3, 4]]
    ans[..., [0, 3, 4]] = rest / rest.sum(-1, keepdims=True) * (1 - target)
    sign = np.where(contexts == "motion", 1.0, -1.0)
    ans[:, L - 1, 0, 1] += sign * relevance / 2
    ans[:, L - 1, 0, 2] -= sign * relevance / 2
    T = len(TOKEN_TYPES)
    return AttentionStats(answer=ans, key_share=np.tile(SHARE, (n, 1)), contexts=contexts,
                          query_sums=np.zeros((L, H, T, T)), query_counts=np.ones(T))


def decoded_table(rng, acc: dict, n=200, columns=("context", "motion_sign", "color_sign", "choice")):
    """A decode_by_layer-like table (last layer only) drawn from true accuracies per model."""
    rows = []
    for model, p in acc.items():
        for v in columns:
            k = rng.binomial(n, p)
            lo, hi = wilson_ci(k, n)
            rows.append({"model": model, "layer": 5, "variable": v, "accuracy": k / n, "lo": lo, "hi": hi,
                         "shuffled_accuracy": rng.binomial(n, 0.5) / n})
    return pd.DataFrame(rows)


def structure_row(rng, model, clustered: bool, decodable: bool, n=200):
    k = rng.binomial(n, 0.95 if decodable else 0.5)
    lo, hi = wilson_ci(k, n)
    sil = 0.3 if clustered else rng.normal(0, 0.01)
    return [{"model": model, "variable": v, "silhouette": sil, "silhouette_shuffled": 0.0,
             "silhouette_shuffled_max": 0.02, "probe_accuracy": k / n, "probe_lo": lo, "probe_hi": hi}
            for v in ("context", "choice")]


# ---- sample efficiency ------------------------------------------------------------------------------

def test_sample_efficiency_null_rarely_replicates():
    """Equal arms (70/75/80% at N = 32/128/512, 300 test trials): 'replicated' in 4.0% of 400 draws
    (and 'not replicated' in 93%: see the xfail below)."""
    rng = np.random.default_rng(0)
    base = [0.7, 0.75, 0.8]
    statuses = [sample_efficiency_verdict(curves(rng, base, base))[0] for _ in range(400)]
    assert rate(statuses) <= bound(400)


def test_sample_efficiency_detects_a_planted_advantage():
    """+12 points at every N: 'replicated' in 99% of 200 draws."""
    rng = np.random.default_rng(1)
    base = [0.7, 0.75, 0.8]
    statuses = [sample_efficiency_verdict(curves(rng, [b + 0.12 for b in base], base))[0] for _ in range(200)]
    assert rate(statuses) >= 0.9


@pytest.mark.xfail(strict=True, reason="issue 8: a non-significant difference is called 'not replicated' "
                   "although its interval does not exclude a material effect (93% of null draws)")
def test_sample_efficiency_not_replicated_needs_evidence_of_absence():
    """With 300 test trials a difference's interval is about +-7 points wide, so it cannot exclude
    a material (say 5-point) advantage: the verdict should be inconclusive, not 'not replicated'."""
    rng = np.random.default_rng(2)
    base = [0.7, 0.75, 0.8]
    statuses = [sample_efficiency_verdict(curves(rng, base, base))[0] for _ in range(100)]
    assert rate(statuses, "not replicated") <= bound(100)


# ---- ablation depth ------------------------------------------------------------------------------

def test_depth_verdicts_null_rarely_replicate():
    """Drops with no depth structure: 'replicated' in 4.2% (fine-tuned claim) and 0% (scratch
    claim) of 120 draws."""
    rng = np.random.default_rng(3)
    draws = [depth_verdicts(rng) for _ in range(120)]
    for claim in draws[0]:
        assert rate(d[claim] for d in draws) <= bound(120), claim


def test_depth_verdict_detects_late_layers():
    rng = np.random.default_rng(4)
    draws = [depth_verdicts(rng, late=1.5) for _ in range(30)]
    assert rate(d["fine-tuned relies on later-layer heads"] for d in draws) >= 0.9


# ---- attention ------------------------------------------------------------------------------------

def test_number_attention_null_is_never_replicated_and_a_planted_excess_is():
    """Scratch layer-0 mass equal to the uniform share: 'replicated' in 0 of 60 draws ('not
    replicated', an interval below the 2% margin, in all); +8 points: 'replicated' in all 20."""
    rng = np.random.default_rng(5)

    def verdict(excess):
        stats = {"scratch": attention_stats(rng, excess=excess), "fine-tuned": attention_stats(rng)}
        table = first_layer_number_attention(stats, n_boot=300, seed=int(rng.integers(1 << 30)))
        return c_attention.number_attention_verdict(table)[0]
    assert rate(verdict(0.0) for _ in range(60)) <= bound(60)
    assert rate(verdict(0.08) for _ in range(20)) >= 0.9


def test_relevance_null_rarely_replicates_and_a_planted_head_does():
    """No head prefers the relevant stream: 'replicated' in 5% of 80 draws (Holm over heads); one
    head with +20 points: 'replicated' in all 20."""
    rng = np.random.default_rng(6)

    def verdict(rel):
        return c_attention.relevance_verdict(relevance_table(attention_stats(rng, relevance=rel), n_boot=200))[0]
    assert rate(verdict(0.0) for _ in range(80)) <= bound(80)
    assert rate(verdict(0.2) for _ in range(20)) >= 0.9


# ---- representations and decoding: "after fine-tuning" claims ---------------------------------------

def test_representation_null_is_not_replicated():
    rng = np.random.default_rng(7)
    statuses = [c_repr.representation_verdict(pd.DataFrame(structure_row(rng, "fine-tuned", False, False)))[0]
                for _ in range(100)]
    assert rate(statuses) <= bound(100)


@pytest.mark.xfail(strict=True, reason="issue 8: the pretrained model is only reported, never compared: "
                   "'organised after fine-tuning' replicates when the pretrained model is organised too")
def test_representation_claim_needs_more_than_the_pretrained_model():
    rng = np.random.default_rng(8)
    table = pd.DataFrame(structure_row(rng, "fine-tuned", True, True) + structure_row(rng, "pretrained", True, True))
    assert c_repr.representation_verdict(table)[0] != "replicated"


def test_decoding_null_is_not_replicated():
    rng = np.random.default_rng(9)
    statuses = [c_decoding.decoding_verdict(decoded_table(rng, {"fine-tuned": 0.5, "pretrained": 0.5}))[0]
                for _ in range(200)]
    assert rate(statuses) <= bound(200)


@pytest.mark.xfail(strict=True, reason="issue 8: 'encoded after fine-tuning' replicates when the pretrained "
                   "model decodes every variable as well")
def test_decoding_claim_needs_more_than_the_pretrained_model():
    rng = np.random.default_rng(10)
    table = decoded_table(rng, {"fine-tuned": 0.95, "pretrained": 0.95})
    assert c_decoding.decoding_verdict(table)[0] != "replicated"


def test_mixed_selectivity_needs_more_mixing_than_before_fine_tuning():
    """The verdict that already compares with the pretrained model: equally mixed -> not replicated."""
    t = pd.DataFrame({"n_variables": [0, 1, 2, 3, 4], "fraction": [0.05, 0.05, 0.3, 0.3, 0.3],
                      "shuffled_fraction": [0.9, 0.1, 0.0, 0.0, 0.0]})
    assert c_decoding.mixed_selectivity_verdict({"fine-tuned": t, "pretrained": t})[0] != "replicated"
    fewer = t.assign(fraction=[0.5, 0.3, 0.1, 0.05, 0.05])
    assert c_decoding.mixed_selectivity_verdict({"fine-tuned": t, "pretrained": fewer})[0] == "replicated"


# ---- heads -------------------------------------------------------------------------------------------

def _response_types(rng, n):
    context = rng.integers(0, 2, n)
    choice = rng.integers(0, 2, n)
    names = np.array([["motion-left", "motion-right"], ["color-left", "color-right"]])
    return context, choice, names[context, choice]


def test_head_verdict_null_rarely_replicates():
    """Heads whose outputs carry nothing: 'replicated' in 1 of 20 draws (BH over heads; few draws,
    each a full set of cross-validated SVMs)."""
    rng = np.random.default_rng(11)
    statuses = []
    for _ in range(20):
        _, _, y = _response_types(rng, 80)
        Z = rng.normal(size=(80, 2, 3, 4))
        statuses.append(c_decoding.head_verdict({("fine-tuned", "response_type"): head_decoding(Z, y, cv_folds=3)})[0])
    assert rate(statuses) <= bound(20)


@pytest.mark.xfail(strict=True, reason="issue 8: the baseline is the majority class (about 25-30%), so a head "
                   "that encodes only the context word (about 50%) replicates the response-type claim")
def test_a_context_only_head_cannot_replicate_the_response_type_claim():
    rng = np.random.default_rng(12)
    context, _, y = _response_types(rng, 120)
    Z = rng.normal(size=(120, 1, 2, 4))
    Z[:, 0, 0, 0] += 3.0 * context                      # head L0H0 knows the context, nothing else
    table = head_decoding(Z, y, cv_folds=3)
    assert c_decoding.head_verdict({("fine-tuned", "response_type"): table})[0] != "replicated"
