"""Hidden states: shapes, which stream is 'the last layer', positions, labels, UMAP companions."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.claims import representations as claims
from helpers.figures import representations as figs
from helpers.models.arch import Arch
from helpers.models.sources import load_source
from helpers.readouts import activations as act
from helpers.readouts import geometry
from helpers.tasks import decision, tokens
from helpers.tasks.decision import TaskConfig, make_splits, task_variables


@pytest.fixture(scope="module")
def trials():
    return make_splits(TaskConfig(n_samples=3), 0, 0, 12)["test"]


@pytest.fixture(scope="module", params=["tiny-gpt2", "tiny-llama"])
def tiny(request, gpt2_tok):
    model, tok = load_source(request.param, seed=0)
    return model, tok


def test_shapes_and_streams_match_a_manual_run_of_the_layers(tiny, trials):
    model, tok = tiny
    arch = Arch(model)
    H = act.collect_hidden_states(model, tok, trials, batch_size=5)
    ids = act.encode_equal_length(tok, [t.prompt for t in trials])
    n, T = ids.shape
    assert H.shape == (len(trials), arch.n_layers + 1, T, arch.d_model)
    assert H.dtype == np.float32
    manual = arch.residual_streams(ids)                 # embed, then each layer by hand
    for l, s in enumerate(manual):
        np.testing.assert_allclose(H[:, l], s.numpy(), atol=1e-5)
    # Hugging Face: hidden_states[0..L-1] are raw; hidden_states[L] has the final norm applied
    with torch.no_grad():
        hf = model(input_ids=ids, output_hidden_states=True).hidden_states
        normed = arch.final_norm()(manual[-1])
    L = arch.n_layers
    np.testing.assert_allclose(H[:, L - 1], hf[L - 1].numpy(), atol=1e-5)
    np.testing.assert_allclose(hf[L].numpy(), normed.numpy(), atol=1e-5)
    assert not np.allclose(H[:, L], hf[L].numpy(), atol=1e-3)     # ours is before the final norm
    Hn = act.collect_hidden_states(model, tok, trials, layers=[-1], positions="last", final_norm=True)
    np.testing.assert_allclose(Hn[:, 0, 0], hf[L][:, -1].numpy(), atol=1e-5)


def test_layer_and_position_selection(tiny, trials):
    model, tok = tiny
    full = act.collect_hidden_states(model, tok, trials)
    sub = act.collect_hidden_states(model, tok, trials, layers=[0, -1], positions=[2, -1])
    np.testing.assert_allclose(sub[:, 0], full[:, 0][:, [2, -1]], atol=1e-6)
    np.testing.assert_allclose(sub[:, 1], full[:, -1][:, [2, -1]], atol=1e-6)
    last = act.collect_hidden_states(model, tok, trials, layers=-1, positions="last")
    assert last.shape == (len(trials), 1, 1, full.shape[-1])
    with pytest.raises(ValueError, match="layer 9 is out of range"):
        act.collect_hidden_states(model, tok, trials, layers=[9])
    with pytest.raises(ValueError, match="positions='first'"):
        act.collect_hidden_states(model, tok, trials, positions="first")


def test_one_pass_collects_streams_and_heads(tiny, trials):
    model, tok = tiny
    arch = Arch(model)
    out = act.collect_activations(model, tok, trials, {"pos": ([-1], "all"), "lay": (None, "last")},
                                 heads_position=-1, batch_size=4)
    assert out["pos"].shape[:3] == (len(trials), 1, out["pos"].shape[2])
    assert out["lay"].shape == (len(trials), arch.n_layers + 1, 1, arch.d_model)
    assert out["z"].shape == (len(trials), arch.n_layers, arch.n_heads, arch.d_head)
    np.testing.assert_allclose(out["pos"][:, 0, -1], out["lay"][:, -1, 0], atol=1e-6)


def test_unequal_token_lengths_raise(gpt2_tok, trials):
    model, tok = load_source("tiny-gpt2")
    from dataclasses import replace
    odd = replace(trials[0], prompt=trials[0].prompt + " Really?")
    with pytest.raises(ValueError, match="different token lengths"):
        act.collect_hidden_states(model, tok, list(trials[:3]) + [odd])


def test_token_labels(gpt2_tok, trials):
    labels = act.token_labels(gpt2_tok, trials[0].prompt)
    assert labels[:3] == ["Context", ":", " " + trials[0].context]
    assert labels[-2:] == [" Answer", ":"]
    assert "".join(labels) == trials[0].prompt
    many = act.token_labels(gpt2_tok, [t.prompt for t in trials])
    assert len(many) == len(labels)
    assert many[2] in (" motion| color", " color| motion")
    assert "#" in many and many[0] == "Context"


def test_task_variables(trials):
    v = task_variables(trials)
    for t, (_, r) in zip(trials, v.iterrows()):
        assert r.context == (t.context == "color")
        assert r.choice == (t.choice > 0)
        assert r.motion_sign == (t.motion_coh > 0) and r.color_sign == (t.color_coh > 0)
        assert r.congruent == t.congruent
        assert r.response_type == f"{t.context}-{'right' if t.choice > 0 else 'left'}"


def test_preprocess_and_silhouette():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 40)
    X = rng.normal(size=(80, 30))
    X[:, :10] += 3 * labels[:, None]              # structure spread over units, as in a network
    X[:, 12] *= 1000                              # a 'massive' unit does not swamp the distances
    assert geometry.preprocess(X, 10).shape == (80, 10)
    assert geometry.silhouette_by(X, labels, n_pca=10) > 0.2
    sh = geometry.shuffled_silhouettes(X, labels, 5, n_pca=10)
    assert sh.shape == (5,) and np.all(np.abs(sh) < 0.1)
    assert np.isnan(geometry.silhouette_by(X, np.zeros(80)))
    const = np.ones((10, 4))
    assert np.abs(geometry.preprocess(const)).max() < 1e-9


def test_structure_table_and_verdict():
    rng = np.random.default_rng(1)
    n = 80
    v = pd.DataFrame({c: rng.integers(0, 2, n) for c in ("context", "choice", "relevant_sign", "irrelevant_sign")})
    X = rng.normal(size=(n, 20))
    X[:, 0] += 4 * v["context"]
    X[:, 1] += 4 * v["choice"]
    noise = rng.normal(size=(n, 20))
    t = geometry.structure_table({"fine-tuned": X, "pretrained": noise}, v, cv_folds=3, n_shuffles=3, seed=0)
    assert set(t.columns) >= {"model", "variable", "silhouette", "silhouette_shuffled_max", "probe_accuracy"}
    assert len(t) == 8
    strong = X[:, :4]                    # fewer noise units: organised enough for a material gain
    sil = {m: {c: geometry.silhouette_samples_by(x, v[c]) for c in ("context", "choice")}
           for m, x in (("fine-tuned", strong), ("pretrained", noise))}
    assert np.mean(geometry.silhouette_samples_by(X, v["context"])) == pytest.approx(
        t.set_index(["model", "variable"]).loc[("fine-tuned", "context"), "silhouette"])
    out = claims.representation_verdict(sil, t, n_boot=500)
    assert out.status == "replicated", out.evidence
    assert "context" in out.evidence and "pretrained" in out.evidence
    swapped = {"fine-tuned": sil["pretrained"], "pretrained": sil["fine-tuned"]}
    assert claims.representation_verdict(swapped, t, n_boot=500).status == "not replicated"


def test_umap_figure_without_umap():
    rng = np.random.default_rng(0)
    v = pd.DataFrame({"context": rng.integers(0, 2, 30), "choice": rng.integers(0, 2, 30),
                      "relevant_coh": rng.choice([-0.5, 0.05, 0.5], 30),
                      "irrelevant_coh": rng.choice([-0.18, 0.06], 30)})
    fig = figs.umap_figure({"a": rng.normal(size=(30, 2)), "b": rng.normal(size=(30, 2))}, v)
    assert len(fig.axes) >= 8


@pytest.mark.slow
def test_embed_umap_is_seeded():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 8))
    a = geometry.embed_umap(X, n_neighbors=5, seed=3)
    b = geometry.embed_umap(X, n_neighbors=5, seed=3)
    assert a.shape == (40, 2)
    np.testing.assert_allclose(a, b)


def test_landmark_positions_in_the_gpt2_tokenization(gpt2_tok, trials):
    for t in trials[:5]:
        ids = gpt2_tok.encode(t.prompt)
        pos = tokens.landmark_positions(gpt2_tok, t.prompt)
        assert list(pos) == list(tokens.LANDMARKS)
        assert gpt2_tok.decode([ids[pos["context word"]]]) == f" {t.context}"
        motion, color = t.prompt.split("Motion: ")[1].split(". Color: ")
        color = color.split(". Answer:")[0]
        # the tokens up to a stream's end spell the prompt up to its last number, and a '.' follows
        for name, numbers in (("end of motion stream", motion), ("end of color stream", color)):
            k = pos[name]
            assert gpt2_tok.decode(ids[:k + 1]).endswith(numbers.split()[-1])
            assert gpt2_tok.decode([ids[k + 1]]) == "."
        assert pos["answer"] == len(ids) - 1


def test_landmark_positions_reject_a_prompt_of_another_task(gpt2_tok):
    with pytest.raises(ValueError, match="not a task prompt: 'Hello world. Answer:'"):
        tokens.landmark_positions(gpt2_tok, "Hello world. Answer:")


def test_choice_from_context_accuracy_is_the_majority_choice_within_each_context():
    v = pd.DataFrame({"context": [0] * 4 + [1] * 6, "choice": [1, 1, 1, 0] + [0, 0, 0, 0, 1, 1]})
    assert decision.choice_from_context_accuracy(v) == pytest.approx((3 + 4) / 10)
    balanced = pd.DataFrame({"context": [0, 0, 1, 1], "choice": [0, 1, 0, 1]})
    assert decision.choice_from_context_accuracy(balanced) == pytest.approx(0.5)
