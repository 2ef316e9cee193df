"""Path patching on tiny random GPT-2 and Llama (grouped key/value heads) models: the batched
version equals the naive two-forwards-per-sender loop, receivers = logits equal the direct effect
computed by hand, and the group-by-group search follows its selection rule."""
import numpy as np
import pytest
import torch

from helpers.core.errors import ParameterError
from helpers.interventions import metrics
from helpers.interventions import path_patching as pp
from helpers.models.arch import Arch
from helpers.models.sources import load_source

SOURCES = ["tiny-gpt2", "tiny-llama"]


def _model(source):
    torch.manual_seed(0)
    model, _ = load_source(source, seed=1)
    return model.eval(), Arch(model)


def _prompts():
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(0, 2000, (3, 8), generator=g)
    cf = torch.randint(0, 2000, (3, 8), generator=g)
    return ids, cf, torch.tensor([7, 5, 6]), torch.tensor([17, 42, 99])


def _zero_mlps(arch):
    with torch.no_grad():
        for block in arch.layers():
            out = block.mlp.c_proj if arch.family == "gpt2" else block.mlp.down_proj
            out.weight.zero_()
            if out.bias is not None:
                out.bias.zero_()


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("receivers,point", [("logits", "q"), ([(1, 0), (1, 3)], "q"),
                                             ([(1, 1), (1, 2)], "k"), ([(1, 0), (1, 2)], "v")])
def test_batched_path_patching_equals_the_naive_loop(source, receivers, point):
    model, arch = _model(source)
    ids, cf, last, correct = _prompts()
    for senders_at in (torch.tensor([3, 2, 4]), last):          # the checks below read the second
        fast = pp.path_patch(arch, ids, cf, correct, senders_at, receivers, point, last=last, max_rows=7)
        naive = pp.path_patch_naive(arch, ids, cf, correct, senders_at, receivers, point, last=last)
        assert np.abs(fast.patched - naive.patched).max() < 1e-6
        np.testing.assert_allclose(fast.scores, naive.scores, atol=1e-4)
        np.testing.assert_allclose(fast.clean, naive.clean, rtol=1e-6)
    # the score is Prakash et al.'s mean relative change of the correct token's probability
    expected = ((fast.patched - fast.clean) / fast.clean).mean(-1)
    np.testing.assert_allclose(fast.scores, expected, rtol=1e-6)
    if receivers == "logits":
        assert np.abs(fast.scores).max() > 0
        assert fast.receiver_point == "logits"
    else:                                   # layer-1 receivers: layer-1 senders have no path
        # "no path" is the clean run again: zero up to the summation order of this CPU, a relative
        # change of the probability far below the scores of the senders that have a path
        assert np.abs(fast.scores[0]).max() > 0
        assert np.abs(fast.scores[1]).max() < 0.05 * np.abs(fast.scores[0]).max()


@pytest.mark.parametrize("source", SOURCES)
def test_receivers_logits_is_the_direct_effect_by_hand(source):
    """MLPs zeroed: the sender's z change times W_O, added to the clean final stream at the last
    position, through the final norm and unembedding.  With MLPs: the model's own forward with every
    attention output frozen to its clean value except that change (the MLPs recompute)."""
    model, arch = _model(source)
    ids, cf, last, correct = _prompts()
    rows = torch.arange(3)
    metric = metrics.LogitDiff(correct, torch.tensor([1, 2, 3]))
    for zeroed in (False, True):
        if zeroed:
            _zero_mlps(arch)
        res = pp.path_patch(arch, ids, cf, correct, last, "logits", last=last, metric=metric)
        with torch.no_grad():
            zc, zf, attn = {}, {}, {}
            with arch.hooks({("z", l): (lambda l: lambda z: zc.__setitem__(l, z.clone()))(l) for l in range(2)}):
                final = arch.residual_streams(ids)[-1][rows, last]
            with arch.hooks({("z", l): (lambda l: lambda z: zf.__setitem__(l, z.clone()))(l) for l in range(2)}):
                model(input_ids=cf)
            with arch.hooks({("attn_out", l): (lambda l: lambda a: attn.__setitem__(l, a.clone()))(l)
                             for l in range(2)}):
                model(input_ids=ids)
            for l in range(arch.n_layers):
                W_O = arch.head_weights_out(l)
                for h in range(arch.n_heads):
                    delta = (zf[l][rows, last, h] - zc[l][rows, last, h]) @ W_O[h]          # (3, d_model)
                    if zeroed:
                        by_hand = metric(arch.unembed(final + delta))
                    else:
                        def frozen(a, layer, l=l, delta=delta):
                            a = attn[layer].clone()
                            if layer == l:
                                a[rows, last] += delta
                            return a
                        with arch.hooks({("attn_out", k): (lambda k: lambda a: frozen(a, k))(k) for k in range(2)}):
                            by_hand = metric(model(input_ids=ids).logits[rows, last])
                    got = res.patched[l, h]
                    clean_metric = metric(arch.unembed(final)).numpy()
                    assert np.abs(got - clean_metric).max() > 1e-6
                    assert np.abs(got - by_hand.numpy()).max() < 1e-4, (zeroed, l, h)
    # a sender away from the last position has no path to the logits: its run is the clean one
    off = pp.path_patch(arch, ids, cf, correct, torch.tensor([2, 2, 2]), "logits", last=last)
    assert np.abs(off.scores).max() < 1e-5       # zero but for summation order (3e-7 seen on another CPU)


def test_select_heads_rule():
    scores = np.array([[0.1, -0.5, np.nan], [-0.2, -0.9, 0.0]])
    assert pp.select_heads(scores, keep=2) == [(1, 1), (0, 1)]
    assert pp.select_heads(scores, threshold=-0.1) == [(1, 1), (0, 1), (1, 0)]
    assert pp.select_heads(scores, keep=5, threshold=0.0) == [(1, 1), (0, 1), (1, 0), (1, 2)]
    assert pp.select_heads(scores, keep=2, threshold=-0.6) == [(1, 1)]
    with pytest.raises(ParameterError, match="keep"):
        pp.select_heads(scores)


@pytest.mark.parametrize("source", SOURCES)
def test_iterate_groups_feeds_each_group_the_previous_heads(source):
    model, arch = _model(source)
    ids, cf, last, correct = _prompts()
    groups = [pp.Group("fetchers", last, "logits", keep=2,
                       senders=[(1, h) for h in range(arch.n_heads)]),
              pp.Group("movers", torch.tensor([3, 2, 4]), "v", keep=1)]
    out = pp.iterate_groups(arch, ids, cf, correct, groups, last=last)
    assert [g.group.name for g in out] == ["fetchers", "movers"]
    first, second = out
    assert len(first.heads) == 2 and all(l == 1 for l, _ in first.heads)
    assert first.heads == [(l, h) for l, h, _ in first.result.ranked()[:2]]
    assert second.result.receivers == first.heads and second.result.receiver_point == "v"
    direct = pp.path_patch(arch, ids, cf, correct, torch.tensor([3, 2, 4]), first.heads, "v", last=last)
    np.testing.assert_allclose(second.result.scores, direct.scores)
    with pytest.raises(ParameterError, match="first group's receivers are the logits"):
        pp.iterate_groups(arch, ids, cf, correct, [pp.Group("x", last, "q", keep=1)], last=last)


def test_bad_arguments_are_named():
    model, arch = _model("tiny-gpt2")
    ids, cf, last, correct = _prompts()
    with pytest.raises(ParameterError, match="do not align"):
        pp.path_patch(arch, ids, cf[:2], correct, last)
    with pytest.raises(ParameterError, match="sender_positions"):
        pp.path_patch(arch, ids, cf, correct, torch.tensor([1, 2]))
    with pytest.raises(ParameterError, match="receiver_point='z'"):
        pp.path_patch(arch, ids, cf, correct, last, [(1, 0)], "z")
    with pytest.raises(ParameterError, match=r"head \(1, 9\) is out of range"):
        pp.path_patch(arch, ids, cf, correct, last, [(1, 9)], "q")


def test_benchmark_checks_identical_numbers(tmp_path):
    import importlib.util
    import json
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_path_patching.py"
    spec = importlib.util.spec_from_file_location("bench_path_patching", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "path_patching.json"
    assert bench.main(["--sources", "tiny-llama", "--n-prompts", "2", "--sender-layers", "0", "--json", str(out)]) == 0
    (r,) = json.loads(out.read_text())
    assert r["identical"] and r["max_abs_diff"] <= 1e-4
    assert r["speedup"] == pytest.approx(r["naive_s"] / r["fast_s"])
