"""DCM on constructed models with a known answer: one planted head carries the desideratum (the
other heads' output projections are zeroed, or left as they are with the planted head
amplified); DCM must select exactly that head.  A huge sparsity penalty selects nothing; the
model's weights stay frozen and their flags are restored."""
import numpy as np
import pytest
import torch

from helpers.interventions.dcm import Pairs, split_pairs, train_dcm
from helpers.models.arch import Arch
from helpers.models.sources import load_source

T = 8


def _last_logits(model, ids):
    return model.get_output_embeddings()(model.base_model(input_ids=ids).last_hidden_state[:, -1])


def _planted(source: str, seed: int, head: tuple[int, int], zero_others: bool = True, scale: float = 10.0,
             n: int = 192):
    """A tiny random model in which head `head` (of the last layer) decides the answer at the last
    token: its W_O is amplified and, if `zero_others`, every other head's W_O is zero.  Pairs: random
    base and source prompts; the source's value is read at a random position of the source; the
    target is the answer when the planted head writes that value at the base's last token."""
    model, _ = load_source(source, seed=seed)
    model.eval()
    arch = Arch(model)
    with torch.no_grad():
        for l in range(arch.n_layers):
            W = arch.head_weights_out(l)                              # a view of the weights
            for h in range(arch.n_heads):
                if (l, h) == head:
                    W[h] *= scale
                elif zero_others:
                    W[h] = 0
    g = torch.Generator().manual_seed(100 + seed)
    base = torch.randint(0, 1000, (n, T), generator=g)
    src = torch.randint(0, 1000, (n, T), generator=g)
    src_pos = torch.randint(2, T, (n,), generator=g)
    l0, h0 = head
    cap = {}
    rows = torch.arange(n)
    with torch.no_grad():
        with arch.hooks({("z", l0): lambda z: cap.setdefault("z", z.clone())}):
            model.base_model(input_ids=src)

        def put(z):
            z = z.clone()
            z[:, -1, h0] = cap["z"][rows, src_pos, h0]
            return z
        with arch.hooks({("z", l0): put}):
            target = _last_logits(model, base).argmax(-1)
        base_answer = _last_logits(model, base).argmax(-1)
    assert (target != base_answer).float().mean() > 0.5          # the planted head moves the answer
    return model, arch, Pairs(base, src, torch.full((n,), T - 1), src_pos, target)


@pytest.mark.parametrize("source", ["tiny-gpt2", "tiny-llama"])
@pytest.mark.parametrize("zero_others", [True, False])
def test_dcm_selects_exactly_the_planted_head(source, zero_others):
    exact = 0
    for seed in range(5):
        head = (1, seed % 4)
        model, arch, pairs = _planted(source, seed, head, zero_others)
        train, val, test = split_pairs(pairs, seed=seed)
        group = [(l, h) for l in range(arch.n_layers) for h in range(arch.n_heads)]
        res = train_dcm(model, group, train, val, test, seed=seed)
        exact += res.heads == [head]
        assert res.test_accuracy is not None and res.test_accuracy_ci[0] <= res.test_accuracy <= res.test_accuracy_ci[1]
    assert exact >= 4


def test_dcm_result_curve_and_frozen_weights():
    model, arch, pairs = _planted("tiny-gpt2", 0, (1, 1))
    model.train()
    frozen = next(iter(model.parameters()))
    frozen.requires_grad_(False)                                      # one flag off before: restored as off
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train, val, _ = split_pairs(pairs, seed=0)
    group = [(1, 0), (1, 1), (1, 2), (0, 3)]
    res = train_dcm(model, group, train, val, epochs=3)
    assert res.heads == [(1, 1)] and res.group == group
    assert res.kept_mask.tolist() == [1, 0, 1, 1]
    assert len(res.curve) == 3 * int(np.ceil(len(train) / 32)) and res.curve.step.is_monotonic_increasing
    assert res.curve.target.iloc[-1] > res.curve.target.iloc[0]      # the target logit went up
    assert res.evals.step.iloc[0] == 0 and res.evals.selected.iloc[0] == 0
    assert ((res.mask >= 0) & (res.mask <= 1)).all()
    assert model.training
    assert not frozen.requires_grad
    assert all(p.requires_grad for p in list(model.parameters())[1:])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules()) == 0
    res2 = train_dcm(model, group, train, val, epochs=3, objective="logprob")
    assert res2.heads == [(1, 1)]


def test_a_huge_sparsity_penalty_selects_no_head():
    model, arch, pairs = _planted("tiny-llama", 1, (1, 3), zero_others=False)
    train, val, _ = split_pairs(pairs, seed=1)
    res = train_dcm(model, [(l, h) for l in range(2) for h in range(4)], train, val, lam=1e3)
    assert res.heads == []
    assert (res.mask == 1).all() and res.evals.selected.max() == 0


def test_bad_arguments_are_named():
    model, arch, pairs = _planted("tiny-gpt2", 0, (1, 0))
    with pytest.raises(ValueError, match="not in the model"):
        train_dcm(model, [(2, 0)], pairs)
    with pytest.raises(ValueError, match="distinct heads"):
        train_dcm(model, [(1, 0), (1, 0)], pairs)
    with pytest.raises(ValueError, match="unknown objective"):
        train_dcm(model, [(1, 0)], pairs, objective="prob")
    with pytest.raises(ValueError, match="one value per pair"):
        Pairs(pairs.base_ids, pairs.source_ids, pairs.base_pos[:3], pairs.source_pos, pairs.target)
