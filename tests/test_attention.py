"""Attention patterns (chapter 4): token types, patterns, aggregation, the statistics and widgets."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers.claims import attention as claims  # noqa: E402
from helpers.figures import attention as figs  # noqa: E402
from helpers.figures import explorer as ex  # noqa: E402
from helpers.readouts import attention as A  # noqa: E402
from helpers.stats.bootstrap import bootstrap_means  # noqa: E402
from helpers.stats.multiplicity import holm  # noqa: E402
from helpers.tasks import tokens  # noqa: E402
from helpers.tasks.decision import TaskConfig, make_prompt, make_splits  # noqa: E402

PROMPT = make_prompt("color", [0.17, 0.04, -0.22, 0.41], [0.13, -0.2, -0.31, -0.18])
MOTION = ["+0.17", "+0.04", "-0.22", "+0.41"]
COLOR = ["+0.13", "-0.20", "-0.31", "-0.18"]


def _numbers(tok, prompt, types, kind):
    """The text of the tokens of one type, spaces removed."""
    ids = tok.encode(prompt)
    return "".join(tok.decode([i]) for i, t in zip(ids, types) if t == kind).replace(" ", "")


def _check_prompt_types(tok, types, tokens_per_number):
    ids = tok.encode(PROMPT)
    assert len(types) == len(ids)
    words = [tok.decode([i]).strip() for i in ids]
    counts = {t: types.count(t) for t in tokens.TOKEN_TYPES}
    assert counts == {"context word": 1, "motion numbers": 4 * tokens_per_number,
                      "color numbers": 4 * tokens_per_number, "punctuation": 7, "other": 4}
    # every number token (sign, digits, decimal point) is typed with its stream, in order
    assert _numbers(tok, PROMPT, types, "motion numbers") == "".join(MOTION)
    assert _numbers(tok, PROMPT, types, "color numbers") == "".join(COLOR)
    assert [w for w, t in zip(words, types) if t == "context word"] == ["color"]
    assert [w for w, t in zip(words, types) if t == "other"] == ["Context", "Motion", "Color", "Answer"]
    assert all(w in (".", ":") for w, t in zip(words, types) if t == "punctuation")
    # the stream-ending periods are punctuation, the decimal points are numbers
    assert types[-1] == "punctuation" and words[-1] == ":"


def test_token_types_gpt2(gpt2_tok):
    types = tokens.token_types(gpt2_tok, PROMPT)
    # GPT-2 writes "+0.17" as " +", "0", ".", "17"
    _check_prompt_types(gpt2_tok, types, tokens_per_number=4)
    assert [gpt2_tok.decode([i]) for i in gpt2_tok.encode(PROMPT)][6:10] == [" +", "0", ".", "17"]
    assert types[6:10] == ["motion numbers"] * 4


def test_token_types_digit_splitting_tokenizer(gpt2_tok):
    """A tokenizer that writes every digit as its own token (as SmolLM2's does)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    folder = gpt2_tok.name_or_path
    bpe = models.BPE.from_file(f"{folder}/vocab.json", f"{folder}/merges.txt")
    t = Tokenizer(bpe)
    t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                               pre_tokenizers.ByteLevel(add_prefix_space=False)])
    t.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=t)
    assert [tok.decode([i]) for i in tok.encode(PROMPT)][6:11] == [" +", "0", ".", "1", "7"]
    _check_prompt_types(tok, tokens.token_types(tok, PROMPT), tokens_per_number=5)


def test_token_types_without_offsets_falls_back_to_decoding(gpt2_tok):
    class NoOffsets:
        all_special_ids = gpt2_tok.all_special_ids

        def __call__(self, *a, **k):
            raise NotImplementedError("no offsets")

        def encode(self, text):
            return gpt2_tok.encode(text)

        def decode(self, ids):
            return gpt2_tok.decode(ids)
    assert tokens.token_types(NoOffsets(), PROMPT) == tokens.token_types(gpt2_tok, PROMPT)


def test_token_types_rejects_other_text(gpt2_tok):
    with pytest.raises(ValueError, match="not a task prompt"):
        tokens.token_types(gpt2_tok, "Hello world")


@pytest.fixture(scope="module")
def tiny_models(session_data_dir):
    from helpers.models.sources import load_source
    return {n: load_source(n) for n in ("tiny-gpt2", "tiny-llama")}


@pytest.fixture(scope="module")
def trials():
    # two prompt lengths, so that batches are padded
    short = make_splits(TaskConfig(n_samples=2), 0, 0, 3)["test"]
    long = make_splits(TaskConfig(n_samples=4), 0, 0, 3)["test"]
    return [long[0], short[0], long[1], short[1], long[2], short[2]]


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_attention_patterns(tiny_models, gpt2_tok, trials, name):
    model, _ = tiny_models[name]
    original = model.config._attn_implementation
    ids = torch.tensor([gpt2_tok.encode(t.prompt) for t in trials[::2]])          # same length
    pats = A.attention_patterns(model, ids)
    B, T = ids.shape
    assert pats.shape == (2, B, 4, T, T)                     # n_heads even with 2 key/value heads
    assert torch.allclose(pats.sum(-1), torch.ones(2, B, 4, T), atol=1e-5)
    assert torch.all(pats.triu(1) == 0)                       # causal
    assert model.config._attn_implementation == original
    # heads have their own patterns (also those that share keys and values)
    assert not torch.allclose(pats[:, :, 0], pats[:, :, 1])
    # bf16 autocast: the same patterns up to bf16 precision
    bf = A.attention_patterns(model, ids, bf16=True)
    assert torch.allclose(bf, pats, atol=3e-2)
    assert model.config._attn_implementation == original


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_attention_implementation_restored_after_an_error(tiny_models, gpt2_tok, name):
    from helpers.models.arch import Arch
    model, _ = tiny_models[name]
    original = model.config._attn_implementation
    assert original != "eager"

    def boom(module, args):
        assert model.config._attn_implementation == "eager"
        raise RuntimeError("boom")
    handle = Arch(model).layers()[1].register_forward_pre_hook(boom)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            A.attention_patterns(model, torch.tensor([gpt2_tok.encode(PROMPT)]))
    finally:
        handle.remove()
    assert model.config._attn_implementation == original
    for m in model.modules():             # every submodule's config too
        cfg = getattr(m, "config", None)
        if cfg is not None and hasattr(cfg, "_attn_implementation"):
            assert cfg._attn_implementation == original


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_attention_by_type_and_padded_batches(tiny_models, gpt2_tok, trials, name):
    model, _ = tiny_models[name]
    stats = A.attention_stats(model, gpt2_tok, trials, batch_size=4)      # padded batches
    assert stats.answer.shape == (len(trials), 2, 4, len(tokens.TOKEN_TYPES))
    np.testing.assert_allclose(stats.answer.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(stats.key_share.sum(-1), 1.0, atol=1e-6)
    assert len(stats.meta["tokens_per_prompt"]) == 2
    # one prompt at a time (no padding) gives the same masses
    for i in (0, 1):
        ids = torch.tensor([gpt2_tok.encode(trials[i].prompt)])
        types = tokens.token_types(gpt2_tok, trials[i].prompt)
        df = A.attention_by_type(A.attention_patterns(model, ids), types)
        assert set(df.columns) == {"layer", "head", "type", "mass"}
        np.testing.assert_allclose(df.groupby(["layer", "head"])["mass"].sum(), 1.0, atol=1e-5)
        mine = df.pivot_table(index=["layer", "head"], columns="type", values="mass")[list(tokens.TOKEN_TYPES)]
        np.testing.assert_allclose(mine.to_numpy(), stats.answer[i].reshape(-1, len(tokens.TOKEN_TYPES)), atol=1e-5)
    table = stats.table()
    np.testing.assert_allclose(table.groupby(["layer", "head"])["mass"].sum(), 1.0, atol=1e-5)
    q = stats.query_table()
    np.testing.assert_allclose(q.groupby(["layer", "head", "query_type"])["mass"].sum(), 1.0, atol=1e-5)
    # the context word's query cannot see any number (they come after it)
    cw = q[(q["query_type"] == "context word") & q["type"].isin(tokens.NUMBER_TYPES)]
    assert np.all(cw["mass"] == 0)


def _planted(n=40, L=2, H=3, plant=(1, 2), strength=0.5, seed=0):
    """Synthetic patterns over real prompts: uniform attention everywhere, except that head `plant`
    moves `strength` of the answer position's mass from irrelevant to relevant numbers."""
    trial_list = make_splits(TaskConfig(n_samples=2), 0, 0, n)["test"]
    from helpers.models.sources import tokenizer_for
    tok = tokenizer_for("gpt2")
    types = [tokens.token_types(tok, t.prompt) for t in trial_list]
    T = len(types[0])
    assert all(len(t) == T for t in types)
    rng = np.random.default_rng(seed)
    pats = torch.tril(torch.ones(T, T))
    pats = (pats / pats.sum(-1, keepdim=True)).expand(L, n, H, T, T).clone()
    for b, (t, tr) in enumerate(zip(types, trial_list)):
        rel = "motion numbers" if tr.context == "motion" else "color numbers"
        irr = "color numbers" if rel == "motion numbers" else "motion numbers"
        rel_pos = [i for i, k in enumerate(t) if k == rel]
        irr_pos = [i for i, k in enumerate(t) if k == irr]
        row = pats[plant[0], b, plant[1], T - 1]
        irr_sum = float(row[irr_pos].sum())
        moved = strength * (0.5 + rng.random()) * irr_sum      # a random share of the irrelevant mass
        row[irr_pos] *= 1 - moved / irr_sum
        row[rel_pos] += moved / len(rel_pos)
    return pats, types, [t.context for t in trial_list]


def test_relevance_detects_planted_attention(session_data_dir):
    pats, types, contexts = _planted()
    assert torch.allclose(pats.sum(-1), torch.ones(pats.shape[:-1]), atol=1e-5)
    stats = A.stats_from_patterns(pats, types, contexts)
    table = A.relevance_table(stats)
    row = table[(table["layer"] == 1) & (table["head"] == 2)].iloc[0]
    assert row["relevance"] > 0.1 and row["lo"] > 0 and row["significant"]
    others = table[~((table["layer"] == 1) & (table["head"] == 2))]
    assert not others["significant"].any()
    np.testing.assert_allclose(others["relevance"], 0, atol=1e-6)
    v = claims.relevance_verdict(table, "planted")
    assert v.status == "replicated" and "L1H2" in v.evidence and v.statistic == "relevance of L1H2"
    # nothing planted: no head is significant, and the verdict is not "replicated"
    null = A.relevance_table(A.stats_from_patterns(*_planted(strength=0.0)))
    assert not null["significant"].any()
    assert claims.relevance_verdict(null, "null").status == "not replicated"


def test_number_attention_claim_and_verdicts(session_data_dir):
    pats, types, contexts = _planted(strength=0.0)
    uniform = A.stats_from_patterns(pats, types, contexts)
    focus = pats.clone()
    for b, t in enumerate(types):           # layer 0: the answer attends to the numbers only
        num = torch.tensor([k in tokens.NUMBER_TYPES for k in t], dtype=torch.float32)
        focus[0, b, :, -1] = num / num.sum()
    focused = A.stats_from_patterns(focus, types, contexts)
    table = A.first_layer_number_attention({"scratch": focused, "fine-tuned": uniform})
    s, f = table.set_index("model").loc["scratch"], table.set_index("model").loc["fine-tuned"]
    assert s["mass"] == pytest.approx(1.0) and s["excess_lo"] > 0.2
    assert f["excess"] == pytest.approx(0.0, abs=1e-6)
    diff = A.paired_difference(focused, uniform)
    assert diff[1] > 0
    assert claims.number_attention_verdict(table, difference=diff).status == "replicated"
    swapped = A.first_layer_number_attention({"scratch": uniform, "fine-tuned": focused})
    assert claims.number_attention_verdict(swapped).status == "not replicated"
    wide = table.copy()
    wide.loc[wide["model"] == "scratch", ["excess_lo", "excess_hi"]] = [-0.05, 0.05]
    assert claims.number_attention_verdict(wide).status == "inconclusive"
    prof = A.number_profile(focused)
    assert prof.loc[0, "excess"] > 0.2 and prof.loc[1, "excess"] == pytest.approx(0, abs=1e-6)
    # the figures draw from these statistics
    import matplotlib.pyplot as plt
    stats = {"scratch": focused, "fine-tuned": uniform}
    for fig in (figs.number_heatmaps(stats), figs.type_bars(stats), figs.profile_figure({"scratch": prof}),
                figs.relevance_heatmaps({k: A.relevance_table(v, n_perm=200) for k, v in stats.items()})):
        assert fig.axes
        plt.close(fig)


def test_bootstrap_and_holm():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 1.0, size=(200, 3))
    m, lo, hi = bootstrap_means(x)
    assert np.all(lo < m) and np.all(m < hi) and np.all(lo > 0.7) and np.all(hi < 1.3)
    np.testing.assert_allclose(holm(np.array([0.01, 0.04, 0.03])), [0.03, 0.06, 0.06])


def test_explorer(tiny_models, gpt2_tok, trials):
    import matplotlib.pyplot as plt
    w = ex.explorer(A.PatternSource(tiny_models, trials[:3]))
    assert w.draws == 1
    first = w.children[-1].value
    assert first[:8] == b"\x89PNG\r\n\x1a\n"           # drawn into an Image widget, no Output capture
    assert repr(w) == ex.STATIC_NOTE
    c = w.controls
    c["head"].value = 3
    assert w.draws == 2 and w.children[-1].value != first
    c["model"].value = "tiny-llama"
    assert w.draws == 3 and c["head"].value == 3 and list(c["layer"].options) == [0, 1]
    c["prompt"].value = 2
    assert w.draws == 4
    fig = w.figure()
    assert "tiny-llama, layer 0, head 3; prompt 2" in fig.axes[0].get_title()
    plt.close(fig)
    pattern, labels, types = A.single_pattern(*tiny_models["tiny-gpt2"], trials[0], layer=1, head=0)
    fig = figs.pattern_figure(pattern, labels, types, f"layer 1, head 0 ({trials[0].context} context)")
    ax = fig.axes[0]        # every token has a tick: labelled, or a minor tick inside a labelled word
    assert set(ax.get_xticks()) | set(ax.get_xticks(minor=True)) == set(range(len(gpt2_tok.encode(trials[0].prompt))))
    plt.close(fig)
