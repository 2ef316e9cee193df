"""Activation patching, q/k/v hook points, metrics and cross-model patching on tiny random GPT-2 and
Llama (grouped key/value heads: 4 query heads share 2) models, with known answers; and one oracle
test against TransformerLens (a test-only dependency, skipped when it is not installed)."""
import numpy as np
import pytest
import torch

from helpers.core.errors import ParameterError
from helpers.interventions import cmap, metrics, patching
from helpers.interventions.patching import Component
from helpers.models.arch import Arch
from helpers.models.sources import load_source

SOURCES = ["tiny-gpt2", "tiny-llama"]


def _model(source, seed=1):
    torch.manual_seed(0)
    model, tok = load_source(source, seed=seed)
    return model.eval(), Arch(model)


def _prompts(share_last=True):
    """Clean and counterfactual token ids (right-padded: each row's last prompt token at `last`)."""
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 2000, (3, 9), generator=g)
    cf = torch.randint(0, 2000, (3, 9), generator=g)
    last = torch.tensor([8, 6, 7])
    if share_last:                    # a task's counterfactual pairs share the template's last token
        cf[torch.arange(3), last] = ids[torch.arange(3), last]
    return ids, cf, last


def _logits_at(model, ids, last):
    with torch.no_grad():
        return model(input_ids=ids).logits[torch.arange(ids.shape[0]), last]


def _n_hooks(model):
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())




@pytest.mark.parametrize("source", SOURCES)
def test_patching_nothing_is_the_clean_run_and_every_head_is_the_counterfactual(source):
    model, arch = _model(source)
    ids, cf, last = _prompts()
    full = lambda logits: logits                                                 # noqa: E731
    every_z = [Component("z", l) for l in range(arch.n_layers)]
    last_z = [Component("z", l, None, last) for l in range(arch.n_layers)]
    every_qkv = [Component(p, l) for l in range(arch.n_layers) for p in "qkv"]
    out = patching.generic_patch(arch, ids, cf, [[], every_z, last_z, every_qkv], full, last, max_rows=5)
    clean, counter = _logits_at(model, ids, last), _logits_at(model, cf, last)
    assert np.abs(out[0] - clean.numpy()).max() < 1e-5
    assert (clean - counter).abs().max() > 1e-2                 # the two runs differ
    # With every head's output (or q/k/v input) from the counterfactual, the last position's stream
    # is the counterfactual's: attention is the only path between positions, and the last token is
    # shared.  Patching z at the last position alone is enough.
    for i in (1, 2, 3):
        assert np.abs(out[i] - counter.numpy()).max() < 1e-5, i
    # resid_pre at every position of any layer is the counterfactual run, whatever the tokens
    ids2, cf2, _ = _prompts(share_last=False)
    got = patching.generic_patch(arch, ids2, cf2, [Component("resid_pre", 0), Component("resid_pre", 1)], full, last)
    assert np.abs(got - _logits_at(model, cf2, last).numpy()[None]).max() < 1e-5


@pytest.mark.parametrize("source", SOURCES)
def test_patch_heads_equals_one_hooked_forward_per_head(source):
    model, arch = _model(source)
    ids, cf, last = _prompts()
    right, left = torch.tensor([11, 12, 13]), torch.tensor([21, 22, 23])
    metric = metrics.LogitDiff(right, left)
    pos = torch.tensor([2, 5, 7])
    for point in ("z", "q", "k", "v"):
        fast = patching.patch_heads(arch, ids, cf, metric, point, positions=pos, last=last, max_rows=7)
        src = patching.record(arch, cf, [(point, l) for l in range(arch.n_layers)])
        naive = np.zeros_like(fast)
        for l in range(arch.n_layers):
            for h in range(arch.n_heads):
                def put(x, l=l, h=h):
                    x = x.clone()
                    x[torch.arange(3), pos, h] = src[(point, l)][torch.arange(3), pos, h]
                    return x
                with arch.hooks({(point, l): put}):
                    naive[l, h] = metric(_logits_at(model, ids, last)).numpy()
        assert fast.shape == (arch.n_layers, arch.n_heads, 3)
        assert np.abs(fast - naive).max() < 1e-5, point
        assert np.abs(fast - metric(_logits_at(model, ids, last)).numpy()).max() > 1e-6, point
    by_pos = patching.patch_heads(arch, ids, cf, metric, "z", by_position=True, last=last)
    assert by_pos.shape == (arch.n_layers, ids.shape[1], arch.n_heads, 3)
    resid = patching.patch_resid(arch, ids, cf, metric, last=last)
    assert resid.shape == (arch.n_layers, ids.shape[1], 3)
    # at layer 0, patching the last position's stream makes the last position the counterfactual's
    # token: with a shared last token, nothing changes there
    assert np.abs(resid[0, 8, 0] - metric(_logits_at(model, ids, last)).numpy()[0]) < 1e-5


@pytest.mark.parametrize("source", SOURCES)
def test_qkv_with_their_own_clean_values_change_nothing(source):
    model, arch = _model(source)
    ids, _, last = _prompts()
    clean = _logits_at(model, ids, last)
    own = patching.record(arch, ids, [(p, l) for p in "qkv" for l in range(arch.n_layers)])
    got = patching.generic_patch(arch, ids, own, [[Component(p, l) for p in "qkv" for l in range(arch.n_layers)]],
                                 lambda x: x, last)
    assert np.abs(got[0] - clean.numpy()).max() < 1e-5
    # the q/k/v hook points are what the attention reads: recomputed from the stream they agree
    streams = arch.residual_streams(ids)
    with torch.no_grad():
        for l in range(arch.n_layers):
            for name, t in zip("qkv", arch.qkv(l, streams[l])):
                assert torch.allclose(t, own[(name, l)], atol=1e-5)


def test_grouped_kv_is_patched_per_query_head():
    """tiny-llama: query heads 0 and 1 share key/value head 0.  Patching head 0's k changes head
    0's output only; the recorded k/v copies of one group are equal."""
    model, arch = _model("tiny-llama")
    assert arch.n_kv_heads == 2 and arch.n_heads == 4
    ids, cf, last = _prompts()
    kv = patching.record(arch, ids, [("k", 1), ("v", 1), ("z", 1)])
    assert torch.equal(kv[("k", 1)][:, :, 0], kv[("k", 1)][:, :, 1])
    assert not torch.equal(kv[("k", 1)][:, :, 1], kv[("k", 1)][:, :, 2])
    src = patching.record(arch, cf, [("k", 1)])
    seen = {}

    def put(k):
        k = k.clone()
        k[:, :, 0] = src[("k", 1)][:, :, 0]
        return k
    with torch.no_grad(), arch.hooks({("k", 1): put, ("z", 1): lambda z: seen.setdefault("z", z.clone())}):
        model(input_ids=ids)
    dz = (seen["z"] - kv[("z", 1)]).abs().amax(dim=(0, 1, 3))
    assert dz[0] > 1e-4 and dz[1:].max() == 0


@pytest.mark.parametrize("source", SOURCES)
def test_qkv_hooks_are_removed_and_attention_restored_after_an_exception(source):
    model, arch = _model(source)
    before, impl = _n_hooks(model), model.config._attn_implementation
    with pytest.raises(RuntimeError, match="boom"):
        with arch.hooks({("q", 0): lambda x: None, ("k", 1): lambda x: None, ("v", 1): lambda x: None,
                         ("z", 0): lambda x: None}):
            assert model.config._attn_implementation != impl
            raise RuntimeError("boom")
    assert _n_hooks(model) == before and model.config._attn_implementation == impl
    from helpers.models.arch import _QKV_HOOKS
    assert all(arch.attention(l) not in _QKV_HOOKS for l in range(arch.n_layers))
    # a hook returning the wrong shape is named, and still removed
    with pytest.raises(ValueError, match="'v' hook returned shape"):
        with torch.no_grad(), arch.hooks({("v", 0): lambda v: v[:, :, :1]}):
            model(input_ids=torch.tensor([[1, 2, 3]]))
    assert model.config._attn_implementation == impl and not _QKV_HOOKS


def test_metrics_on_known_logits():
    logits = torch.tensor([[[0.0, 1.0, 3.0], [2.0, 0.0, 0.0]]])           # (1 patch, 2 prompts, 3 tokens)
    assert metrics.LogitDiff([2, 0], [1, 1])(logits).tolist() == [[2.0, 2.0]]
    p = metrics.Prob([2, 1])(logits)
    assert torch.allclose(p, torch.softmax(logits, -1)[0, [0, 1], [2, 1]][None])
    assert metrics.Accuracy([2, 1])(logits).tolist() == [[1.0, 0.0]]
    assert metrics.Accuracy([2, 1])(logits[0]).tolist() == [1.0, 0.0]       # no patch axis
    with pytest.raises(ValueError, match="one id per prompt"):
        metrics.Prob([1, 2, 0])(logits)
    # choice margin: correct minus the mean of the prompt's other candidates
    margin = metrics.ChoiceMargin([2, 0], [[0, 1], [1, 2]])
    assert margin(logits).tolist() == [[2.5, 2.0]]
    assert margin(logits[0]).tolist() == [2.5, 2.0]
    assert margin(torch.stack([logits[0], logits[0] + 5.0])).tolist() == [[2.5, 2.0], [2.5, 2.0]]  # shift-free
    with pytest.raises(ValueError, match=r"others must have shape \(batch, k >= 1\)"):
        metrics.ChoiceMargin([2, 0], [0, 1])


def test_bad_components_and_sources_are_named():
    model, arch = _model("tiny-gpt2")
    ids, cf, last = _prompts()
    with pytest.raises(ParameterError, match="unknown hook point 'mlp'"):
        Component("mlp", 0)
    with pytest.raises(ParameterError, match="not per head"):
        Component("resid_pre", 0, heads=1)
    m = metrics.LogitDiff(1, 2)
    with pytest.raises(ParameterError, match="do not align"):
        patching.generic_patch(arch, ids, cf[:, :5], [Component("z", 0)], m)
    with pytest.raises(ParameterError, match=r"heads \[7\] are out of range"):
        patching.generic_patch(arch, ids, cf, [Component("z", 0, 7)], m)
    with pytest.raises(ParameterError, match="layer 4 is out of range"):
        patching.generic_patch(arch, ids, cf, [Component("z", 4)], m)
    with pytest.raises(ParameterError, match="out of range"):
        patching.generic_patch(arch, ids, cf, [Component("z", 0, 0, torch.tensor([1, 2, 99]))], m)


@pytest.mark.parametrize("source", SOURCES)
def test_cmap_between_copies_changes_nothing_and_moves_a_models_heads(source):
    model, arch = _model(source)
    copy, arch_copy = _model(source)
    other, arch_other = _model(source, seed=2)
    ids, _, last = _prompts()
    m = metrics.LogitDiff(torch.tensor([11, 12, 13]), torch.tensor([21, 22, 23]))
    comps = cmap.heads_components([(0, 1), (1, 0), (1, 3)], "z") + [Component("q", 1, 2, last)]
    r = cmap.cmap(arch, arch_copy, ids, comps, m, last)
    assert np.abs(r.patched - r.a).max() < 1e-5 and np.abs(r.b - r.a).max() < 1e-5
    assert np.isnan(r.moved)
    # another model's heads: the patched run is A's run with B's z patched in, computed by hand
    r = cmap.cmap(arch, arch_other, ids, cmap.heads_components([(1, 0), (1, 2)]), m, last)
    zb = patching.record(arch_other, ids, [("z", 1)])[("z", 1)]

    def put(z):
        z = z.clone()
        z[:, :, [0, 2]] = zb[:, :, [0, 2]]
        return z
    with arch.hooks({("z", 1): put}):
        by_hand = m(_logits_at(model, ids, last)).numpy()
    assert np.abs(r.patched - by_hand).max() < 1e-5
    assert np.abs(r.b - r.a).max() > 1e-3
    gap = r.b.mean() - r.a.mean()          # the one rule: no share where B is not better than A
    if gap > 0:
        assert r.moved == pytest.approx((r.patched.mean() - r.a.mean()) / gap)
    else:
        assert np.isnan(r.moved)
    assert np.isnan(cmap.CMAPResult(r.a, r.a - 1.0, r.patched).moved)


def test_cmap_refuses_models_of_different_shapes():
    _, gpt2 = _model("tiny-gpt2")
    _, llama = _model("tiny-llama")
    ids, _, _ = _prompts()
    with pytest.raises(ParameterError, match="family is 'gpt2' in model A and 'llama' in model B"):
        cmap.cmap(gpt2, llama, ids, [Component("z", 0)], metrics.LogitDiff(1, 2))
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = llama.model.config.to_dict()
    cfg.update(num_key_value_heads=4)
    wide = Arch(LlamaForCausalLM(LlamaConfig(**cfg)))
    with pytest.raises(ParameterError, match="n_kv_heads is 2 in model A and 4 in model B"):
        cmap.check_same_shape(llama, wide)


# ---- oracle: TransformerLens -------------------------------------------------------------------

def _hooked_transformer(model):
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights
    c = model.config
    cfg = HookedTransformerConfig(n_layers=c.n_layer, d_model=c.n_embd, d_head=c.n_embd // c.n_head,
                                  n_heads=c.n_head, d_mlp=4 * c.n_embd, d_vocab=c.vocab_size, n_ctx=c.n_positions,
                                  act_fn="gelu_new", normalization_type="LN", eps=c.layer_norm_epsilon,
                                  positional_embedding_type="standard", default_prepend_bos=False,
                                  device="cpu", dtype=torch.float32)
    ht = HookedTransformer(cfg)
    ht.load_and_process_state_dict(convert_gpt2_weights(model, cfg), fold_ln=False, center_writing_weights=False,
                                   center_unembed=False, fold_value_biases=False, refactor_factored_attn_matrices=False)
    return ht.eval()


def test_head_output_patching_equals_transformer_lens():
    pytest.importorskip("transformer_lens", reason="TransformerLens is a test-only oracle and is not installed "
                        "here (pip install --no-deps transformer_lens==3.9.0 plus its small dependencies)")
    from transformer_lens import patching as tl_patching
    model, arch = _model("tiny-gpt2")
    ht = _hooked_transformer(model)
    ids, cf, last = _prompts()
    with torch.no_grad():
        assert torch.allclose(ht(ids), model(input_ids=ids).logits, atol=1e-4)
    right, left = torch.tensor([11, 12, 13]), torch.tensor([21, 22, 23])
    rows = torch.arange(3)

    def tl_metric(logits):                       # TransformerLens: all-position logits -> a scalar
        at = logits[rows, last]
        return (at[rows, right] - at[rows, left]).mean()
    # TransformerLens patches the clean cache into the corrupted run: here cf is "clean"
    _, cache = ht.run_with_cache(cf)
    theirs = tl_patching.get_act_patch_attn_head_out_by_pos(ht, ids, cache, tl_metric)          # (layer, pos, head)
    ours = patching.patch_heads(arch, ids, cf, metrics.LogitDiff(right, left), "z", by_position=True, last=last)
    ours = torch.tensor(ours.mean(-1))
    assert ours.shape == theirs.shape
    assert torch.allclose(ours.float(), theirs.float(), atol=1e-4)
    assert theirs.abs().max() > 1e-3
