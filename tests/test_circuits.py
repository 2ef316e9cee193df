"""Circuit evaluation on tiny random GPT-2 and Llama (grouped key/value heads): known answers
(all heads kept = the full model, the empty circuit = mean-ablating every head by hand), order
invariance, random circuits, means aligned by role, and the minimality check."""
import numpy as np
import pytest
import torch

from helpers.interventions import ablation
from helpers.interventions.circuits import (ALL, Circuit, circuit_means, evaluate_circuit, faithfulness_ci,
                                            random_circuits, run_circuit)
from helpers.models.arch import Arch
from helpers.models.sources import load_source

SOURCES = ["tiny-gpt2", "tiny-llama"]
T = 10


@pytest.fixture(scope="module", params=SOURCES)
def setup(request):
    torch.manual_seed(0)
    model, _ = load_source(request.param, seed=1)
    model.eval()
    arch = Arch(model)
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 1000, (24, T), generator=g)
    ref = torch.randint(0, 1000, (16, T), generator=g)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, -1]
    # the correct token: the model's own answer on most prompts, another token on a few
    correct = logits.argmax(-1)
    correct[::4] = logits.topk(2, -1).indices[::4, 1]
    positions = {"last": torch.full((24,), T - 1), "query": torch.full((24,), 4)}
    ref_pos = {"last": torch.full((16,), T - 1), "query": torch.full((16,), 4)}
    means = circuit_means(arch, ref, positions=ref_pos)
    return arch, ids, correct, positions, means, ref


def _rel(a, b) -> float:
    return float(np.max(np.abs(a - b) / np.abs(b)))


def _example(arch) -> Circuit:
    return Circuit({"A": ("last", [(1, 0), (1, 3), (0, 2)]), "C": ("query", [(0, 1), (1, 2)])})


def test_all_heads_at_all_positions_is_the_full_model(setup):
    arch, ids, correct, positions, means, _ = setup
    full = Circuit.all_heads(arch.n_layers, arch.n_heads)
    ev = evaluate_circuit(arch, ids, positions, full, means, correct, n_random=0, minimality=False)
    assert ev.faithfulness == 1.0
    assert np.array_equal(ev.correct, ev.model_correct)
    assert np.array_equal(ev.p_correct, ev.model_p_correct)          # identical outputs, not just close
    assert 0 < ev.model_accuracy < 1
    lo, hi = ev.faithfulness_ci
    assert lo <= 1.0 <= hi


def test_empty_circuit_equals_mean_ablating_every_head_by_hand(setup):
    arch, ids, correct, positions, means, ref = setup
    _, p = run_circuit(arch, ids, positions, Circuit.empty(), means, correct)
    # by hand: the book's per-position means (one prompt length), written into every head
    ref_means = ablation.head_means(arch, ablation.Prompts(ref, torch.full((len(ref),), T - 1), None, None, None))

    def put(layer):
        return lambda z: ref_means[layer][: z.shape[1]].expand_as(z).clone()
    with torch.no_grad(), arch.hooks({("z", l): put(l) for l in range(arch.n_layers)}):
        logits = arch.model(input_ids=ids).logits[:, -1].float()
    by_hand = torch.softmax(logits, -1)[torch.arange(len(ids)), correct].double().numpy()
    assert np.allclose(p, by_hand, rtol=1e-5, atol=1e-8)
    _, p_full = run_circuit(arch, ids, positions, None, None, correct)
    assert _rel(p, p_full) > 1e-3                                      # the ablation did something


def test_zero_ablation_keeps_the_circuit_and_zeroes_every_other_head_by_hand(setup):
    """ablated_means(..., "zero"): the circuit's heads untouched at their positions, every other
    head's z zero (the robustness check's ablation), on GPT-2 and Llama with grouped k/v heads."""
    from helpers.core.errors import ParameterError
    from helpers.interventions.circuits import ablated_means
    arch, ids, correct, positions, means, _ = setup
    kept = Circuit({"A": ("last", [(1, 0)])})
    _, p = run_circuit(arch, ids, positions, kept, ablated_means(means, "zero"), correct)

    def put(layer):
        def fn(z):
            out = torch.zeros_like(z)
            if layer == 1:
                out[:, -1, 0] = z[:, -1, 0]
            return out
        return fn
    with torch.no_grad(), arch.hooks({("z", l): put(l) for l in range(arch.n_layers)}):
        logits = arch.model(input_ids=ids).logits[:, -1].float()
    by_hand = torch.softmax(logits, -1)[torch.arange(len(ids)), correct].double().numpy()
    assert np.allclose(p, by_hand, rtol=1e-5, atol=1e-8)
    _, p_mean = run_circuit(arch, ids, positions, kept, means, correct)
    assert _rel(p, p_mean) > 1e-3
    assert ablated_means(means, "mean") is means
    with pytest.raises(ParameterError, match="accepted values are \\['mean', 'zero'\\]"):
        ablated_means(means, "resample")


def test_evaluation_does_not_depend_on_the_order_of_heads_or_groups(setup):
    arch, ids, correct, positions, means, _ = setup
    a = _example(arch)
    b = Circuit({"C": ("query", [(1, 2), (0, 1)]), "A": ("last", [(0, 2), (1, 3), (1, 0)])})
    assert a == b
    ea = evaluate_circuit(arch, ids, positions, a, means, correct, n_random=3, seed=5, n_boot=200)
    eb = evaluate_circuit(arch, ids, positions, b, means, correct, n_random=3, seed=5, n_boot=200)
    assert np.array_equal(ea.p_correct, eb.p_correct)
    assert ea.faithfulness_ci == eb.faithfulness_ci
    assert np.array_equal(ea.random.faithfulness, eb.random.faithfulness)
    assert ea.minimality.equals(eb.minimality)


def test_random_circuits_are_reproducible_and_have_the_requested_sizes(setup):
    arch = setup[0]
    c = _example(arch)
    r1 = random_circuits(c, arch.n_layers, arch.n_heads, n_draws=6, seed=7)
    r2 = random_circuits(c, arch.n_layers, arch.n_heads, n_draws=6, seed=7)
    r3 = random_circuits(c, arch.n_layers, arch.n_heads, n_draws=6, seed=8)
    assert r1 == r2 and r1 != r3
    for rc in r1:
        assert rc.sizes == c.sizes == {"A": 3, "C": 2}
        assert [g.position for g in rc.groups] == [g.position for g in c.groups]
        assert all(0 <= l < arch.n_layers and 0 <= h < arch.n_heads for l, h in rc.heads)
    assert len(set(r1)) > 1
    with pytest.raises(ValueError, match="has 9 heads"):
        random_circuits(Circuit({"A": ("last", [(l, h) for l in range(3) for h in range(3)])}), 2, 4)


def test_keeping_a_head_at_its_position_only(setup):
    """A head kept at the last position differs from the empty circuit.  A layer-0 head kept at
    every position equals it kept at the last only when every layer-1 head is ablated (nothing
    reads the other positions), and differs once a layer-1 head at the last token reads them.  A
    layer-1 head kept at the query position (before the last) changes nothing at the last token."""
    arch, ids, correct, positions, means, _ = setup

    def p_of(groups):
        return run_circuit(arch, ids, positions, Circuit(groups), means, correct)[1]
    empty = p_of({})
    assert _rel(p_of({"A": ("last", [(1, 1)])}), empty) > 1e-3
    assert np.array_equal(p_of({"A": (ALL, [(0, 1)])}), p_of({"A": ("last", [(0, 1)])}))
    assert _rel(p_of({"A": ("last", [(1, 1)]), "B": (ALL, [(0, 1)])}),
                p_of({"A": ("last", [(1, 1), (0, 1)])})) > 1e-3
    assert np.allclose(p_of({"C": ("query", [(1, 1)])}), empty, rtol=1e-6, atol=1e-9)


def test_means_are_aligned_by_role_and_by_position_over_prompts_that_reach_it():
    torch.manual_seed(0)
    model, _ = load_source("tiny-llama", seed=2)
    arch = Arch(model)
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([6, 8, 7, 8])
    ids = torch.randint(0, 1000, (4, 8), generator=g)
    ids[lengths[:, None] <= torch.arange(8)[None]] = 0                 # right padding
    last = lengths - 1
    query = torch.tensor([2, 4, 3, 5])
    m = circuit_means(arch, ids, last=last, positions={"query": query, "last": last})
    zs = []
    with torch.no_grad():
        for i in range(4):
            cap = {}
            with arch.hooks({("z", 1): lambda z, cap=cap: cap.setdefault("z", z.clone())}):
                model(input_ids=ids[i: i + 1, : lengths[i]])
            zs.append(cap["z"][0])
    assert torch.allclose(m.by_role["query"][1], torch.stack([zs[i][query[i]] for i in range(4)]).mean(0), atol=1e-6)
    assert torch.allclose(m.by_role["last"][1], torch.stack([zs[i][last[i]] for i in range(4)]).mean(0), atol=1e-6)
    assert torch.allclose(m.by_pos[1][6], torch.stack([zs[i][6] for i in (1, 2, 3)]).mean(0), atol=1e-6)
    assert torch.allclose(m.by_pos[1][7], torch.stack([zs[i][7] for i in (1, 3)]).mean(0), atol=1e-6)
    assert m.count.tolist() == [4] * 6 + [3, 2]
    # prompts longer than every reference prompt cannot be mean-ablated
    long = torch.randint(0, 1000, (2, 9), generator=g)
    with pytest.raises(ValueError, match="no reference prompt reaches position 8"):
        run_circuit(arch, long, {"query": [2, 3]}, Circuit.empty(), m, [1, 2])
    # ... unless the position past the references is a role position with its role mean
    run_circuit(arch, long, {"query": [2, 3], "last": [8, 8]}, Circuit.empty(), m, [1, 2])
    with pytest.raises(ValueError, match="share a position"):
        run_circuit(arch, ids, {"query": last, "last": last}, Circuit.empty(), m, [1, 2, 3, 4], last=last)
    with pytest.raises(ValueError, match="position role 'label'"):
        run_circuit(arch, ids, {"query": query}, Circuit({"D": ("label", [(0, 0)])}), m, [1, 2, 3, 4], last=last)


def test_minimality_flags_heads_that_change_nothing(setup):
    arch, ids, correct, positions, means, _ = setup
    # a layer-1 head kept at the query position changes nothing at the last token: flagged
    c = Circuit({"A": (ALL, [(l, h) for l in range(arch.n_layers) for h in range(arch.n_heads)]),
                 "C": ("query", [(1, 1)])})
    ev = evaluate_circuit(arch, ids, positions, c, means, correct, n_random=2, n_boot=200)
    t = ev.minimality
    assert len(t) == c.size == arch.n_layers * arch.n_heads + 1
    row = t[(t.group == "C")].iloc[0]
    assert row.accuracy_drop == 0 and row.status == "no effect" and row.flagged
    assert set(t.status) <= {"needed", "no effect", "harmful"}
    assert (t.level > 0.95).all()                                     # Bonferroni over the entries
    assert len(ev.random.faithfulness) == 2 and np.isfinite(ev.random.mean)


def test_faithfulness_interval():
    rng = np.random.default_rng(0)
    model = rng.random(200) < 0.8
    circ = model & (rng.random(200) < 0.5)
    f, lo, hi = faithfulness_ci(circ, model, n_boot=500)
    assert f == pytest.approx(circ.mean() / model.mean())
    assert lo < f < hi and 0.4 < f < 0.6
    assert np.isnan(faithfulness_ci(circ, np.zeros(200, bool))[0])


def test_given_full_model_outcomes_give_the_same_evaluation(setup):
    """Passing the full model's outcomes (computed once for several circuits) changes nothing."""
    arch, ids, correct, positions, means, _ = setup
    c = Circuit({"A": ("last", [(1, 1), (0, 2)])})
    full = run_circuit(arch, ids, positions, None, None, correct)
    a = evaluate_circuit(arch, ids, positions, c, means, correct, n_random=2, seed=3, n_boot=200)
    b = evaluate_circuit(arch, ids, positions, c, means, correct, n_random=2, seed=3, n_boot=200,
                         model_outcomes=full)
    assert a.summary() == b.summary()
    assert np.array_equal(a.model_correct, b.model_correct) and np.array_equal(a.correct, b.correct)
    assert a.minimality.equals(b.minimality)
