"""The text version of the Mante et al. task: labels, balance, determinism, splits, validation."""
from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest

from helpers.tasks import decision as task
from helpers.tasks.decision import ANSWERS, TaskConfig, Trial, make_prompt, make_splits

NUM_RE = re.compile(r"[+-]\d\.\d\d")


def parse_prompt(prompt: str) -> tuple[str, list[int], list[int]]:
    """(context, motion samples, color samples) read back from the prompt, in integer hundredths."""
    m = re.fullmatch(r"Context: (motion|color)\. Motion: (.*)\. Color: (.*)\. Answer:", prompt)
    assert m is not None, prompt
    context, motion, color = m.groups()

    def nums(s: str) -> list[int]:
        parts = s.split(" ")
        assert all(NUM_RE.fullmatch(p) for p in parts), s
        return [int(p[0] + p[1] + p[3:]) for p in parts]   # "+0.37" -> +37 exactly

    return context, nums(motion), nums(color)


@pytest.fixture(scope="module")
def many_trials() -> list[Trial]:
    return make_splits(TaskConfig(), 2000, 0, 0)["train"]


# ---- labels ------------------------------------------------------------------------------------

def test_labels_agree_with_the_shown_numbers(many_trials):
    cfg = TaskConfig()
    for t in many_trials:
        context, motion, color = parse_prompt(t.prompt)
        assert context == t.context
        assert len(motion) == len(color) == cfg.n_samples
        assert all(-99 <= v <= 99 for v in motion + color)
        relevant = sum(motion) if context == "motion" else sum(color)
        assert relevant != 0, "exact zeros must be re-drawn"
        expected = 1 if relevant > 0 else -1
        assert t.choice == expected
        assert t.answer == ANSWERS[expected]
        # the stored latents describe the same numbers as the prompt
        assert [round(v * 100) for v in t.motion_samples] == motion
        assert [round(v * 100) for v in t.color_samples] == color
        assert round(t.motion_sum * 100) == sum(motion)
        assert round(t.color_sum * 100) == sum(color)


def test_no_exact_zero_relevant_sum_even_when_zeros_are_common():
    # One sample, tiny coherence, little noise: a relevant sample of exactly 0.00 is common in the
    # raw draws, so the re-draw rule is really exercised.
    cfg = TaskConfig(n_samples=1, noise=0.02, motion_levels=(0.01,), color_levels=(0.01,))
    trials = make_splits(cfg, 300, 0, 0)["train"]
    assert len(trials) == 300
    for t in trials:
        _, motion, color = parse_prompt(t.prompt)
        rel = motion if t.context == "motion" else color
        assert sum(rel) != 0
        assert t.choice == (1 if sum(rel) > 0 else -1)
    # the irrelevant stream is not re-drawn, so zeros do occur there
    irrelevant_zero = [t for t in trials
                       if (t.color_sum if t.context == "motion" else t.motion_sum) == 0]
    assert irrelevant_zero, "expected some exact zeros in the irrelevant stream"


def test_coherences_are_drawn_from_the_configured_levels(many_trials):
    cfg = TaskConfig()
    assert {abs(t.motion_coh) for t in many_trials} == set(cfg.motion_levels)
    assert {abs(t.color_coh) for t in many_trials} == set(cfg.color_levels)
    for t in many_trials:
        assert t.relevant_coh == (t.motion_coh if t.context == "motion" else t.color_coh)
        assert t.irrelevant_coh == (t.color_coh if t.context == "motion" else t.motion_coh)
        assert t.congruent == (np.sign(t.motion_coh) == np.sign(t.color_coh))


# ---- balance -----------------------------------------------------------------------------------

def test_class_balance(many_trials):
    n = len(many_trials)
    assert n == 2000
    right = np.mean([t.choice == 1 for t in many_trials])
    motion = np.mean([t.context == "motion" for t in many_trials])
    congruent = np.mean([t.congruent for t in many_trials])
    # 2000 fair coin flips: sd ~0.011, so +-0.05 is > 4 sd
    assert 0.45 < right < 0.55
    assert 0.45 < motion < 0.55
    assert 0.45 < congruent < 0.55
    # every (context, answer) cell is populated roughly equally
    for ctx in task.CONTEXTS:
        for choice in (1, -1):
            frac = np.mean([t.context == ctx and t.choice == choice for t in many_trials])
            assert 0.2 < frac < 0.3, (ctx, choice, frac)


# ---- determinism and splits ---------------------------------------------------------------------

def test_same_seed_same_trials_different_seed_different():
    a = make_splits(TaskConfig(seed=3), 50, 10, 10)
    b = make_splits(TaskConfig(seed=3), 50, 10, 10)
    c = make_splits(TaskConfig(seed=4), 50, 10, 10)
    for split in task.SPLITS:
        assert [t.to_dict() for t in a[split]] == [t.to_dict() for t in b[split]]
        assert [t.prompt for t in a[split]] != [t.prompt for t in c[split]]
        assert not {t.prompt for t in a[split]} & {t.prompt for t in c[split]}


def test_splits_have_requested_sizes_and_disjoint_prompts():
    # A small prompt space (one sample, one coherence level, little noise) makes collisions
    # between the raw random streams common, so de-duplication is really exercised.
    cfg = TaskConfig(n_samples=1, noise=0.05, motion_levels=(0.5,), color_levels=(0.5,))
    n_train, n_val, n_test = 300, 100, 100
    raw_train = [t.prompt for t, _ in zip(task._stream(cfg, "train"), range(n_train))]
    assert len(set(raw_train)) < n_train, "test premise: the raw stream repeats prompts"

    s = make_splits(cfg, n_train, n_val, n_test)
    assert [len(s[k]) for k in ("train", "val", "test")] == [n_train, n_val, n_test]
    prompts = {k: [t.prompt for t in v] for k, v in s.items()}
    for k, p in prompts.items():
        assert len(set(p)) == len(p), f"duplicate prompts inside {k}"
    assert not set(prompts["train"]) & set(prompts["val"])
    assert not set(prompts["train"]) & set(prompts["test"])
    assert not set(prompts["val"]) & set(prompts["test"])


def test_default_splits_disjoint():
    s = make_splits(TaskConfig(), 400, 100, 200)
    sets = {k: {t.prompt for t in v} for k, v in s.items()}
    assert len(sets["train"]) == 400 and len(sets["val"]) == 100 and len(sets["test"]) == 200
    assert not (sets["train"] & sets["val"] or sets["train"] & sets["test"] or sets["val"] & sets["test"])


def test_training_sets_are_nested():
    cfg = TaskConfig(seed=1)
    small = make_splits(cfg, 40, 20, 30)["train"]
    large = make_splits(cfg, 200, 20, 30)["train"]
    assert [t.to_dict() for t in large[:40]] == [t.to_dict() for t in small]


def test_test_set_does_not_depend_on_n_train():
    cfg = TaskConfig(seed=2)
    a = make_splits(cfg, 5, 20, 60)
    b = make_splits(cfg, 300, 20, 60)
    assert [t.prompt for t in a["test"]] == [t.prompt for t in b["test"]]
    assert [t.prompt for t in a["val"]] == [t.prompt for t in b["val"]]


def test_zero_sized_splits_are_allowed():
    s = make_splits(TaskConfig(), 0, 0, 3)
    assert s["train"] == [] and s["val"] == [] and len(s["test"]) == 3


# ---- validation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, name, accepted", [
    (dict(n_samples=0), "n_samples", "1..16"),
    (dict(n_samples=17), "n_samples", "1..16"),
    (dict(n_samples=2.5), "n_samples", "1..16"),
    (dict(noise=-1), "noise", "0.0..1.0"),
    (dict(noise=1.5), "noise", "0.0..1.0"),
    (dict(motion_levels=()), "motion_levels", "strictly between 0 and 1"),
    (dict(motion_levels=(0.0, 0.5)), "motion_levels", "strictly between 0 and 1"),
    (dict(color_levels=(1.0,)), "color_levels", "strictly between 0 and 1"),
    (dict(seed=-1), "seed", ">= 0"),
])
def test_task_config_rejects_bad_values(kwargs, name, accepted):
    with pytest.raises(ValueError) as e:
        TaskConfig(**kwargs)
    msg = str(e.value)
    assert f"{name}=" in msg
    assert "accepted values" in msg and accepted in msg


@pytest.mark.parametrize("which", ["n_train", "n_val", "n_test"])
@pytest.mark.parametrize("bad", [-1, 1.5, "3"])
def test_make_splits_rejects_bad_sizes(which, bad):
    sizes = dict(n_train=5, n_val=5, n_test=5)
    sizes[which] = bad
    with pytest.raises(ValueError) as e:
        make_splits(TaskConfig(), **sizes)
    assert f"{which}=" in str(e.value)
    assert "accepted values are integers >= 0" in str(e.value)


def test_make_prompt_format_and_bad_context():
    p = make_prompt("color", [0.5, -0.05], [0.0, -0.99])
    assert p == "Context: color. Motion: +0.50 -0.05. Color: +0.00 -0.99. Answer:"
    with pytest.raises(ValueError) as e:
        make_prompt("sound", [0.1], [0.2])
    msg = str(e.value)
    assert "context=" in msg and "'sound'" in msg
    assert "motion" in msg and "color" in msg and "accepted values" in msg


def test_task_config_is_frozen_and_levels_become_tuples():
    cfg = TaskConfig(motion_levels=[0.1, 0.2], color_levels=[0.3])
    assert cfg.motion_levels == (0.1, 0.2) and cfg.color_levels == (0.3,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.noise = 0.5  # type: ignore[misc]
    assert cfg.to_dict()["motion_levels"] == (0.1, 0.2)


# ---- tokenizer check --------------------------------------------------------------------------

def test_check_answer_tokens_gpt2(gpt2_tok):
    ids = task.check_answer_tokens(gpt2_tok)
    assert ids == {+1: 826, -1: 1364}
    assert gpt2_tok.decode([ids[+1]]) == " right"
    assert gpt2_tok.decode([ids[-1]]) == " left"
    assert task.tokens_of(gpt2_tok, " right left") == [" right", " left"]


class CharTokenizer:
    """A fake tokenizer: one token per character, except words it knows as single tokens."""

    def __init__(self, words=()):
        self.words = list(words)

    def encode(self, text, add_special_tokens=True):
        if text in self.words:
            return [1000 + self.words.index(text)]
        return [ord(c) for c in text]

    def decode(self, ids):
        return "".join(self.words[i - 1000] if i >= 1000 else chr(i) for i in ids)


def test_check_answer_tokens_rejects_multi_token_answer():
    tok = CharTokenizer(words=[" left"])       # ' right' is 6 tokens, ' left' is 1
    with pytest.raises(ValueError) as e:
        task.check_answer_tokens(tok, name="char-tokenizer")
    msg = str(e.value)
    assert "' right'" in msg and "6 tokens" in msg and "char-tokenizer" in msg
    assert "single token" in msg
    # it also shows how the tokenizer splits the word
    assert "' '" in msg and "'r'" in msg


def test_check_answer_tokens_accepts_fake_single_tokens():
    tok = CharTokenizer(words=[" right", " left"])
    assert task.check_answer_tokens(tok) == {+1: 1000, -1: 1001}


# ---- baselines ---------------------------------------------------------------------------------

def test_baselines(many_trials):
    choice = np.array([t.choice for t in many_trials])
    preds = task.baseline_predictions(many_trials)
    acc = {k: float(np.mean(v == choice)) for k, v in preds.items()}
    for v in preds.values():
        assert v.shape == choice.shape and set(np.unique(v)) <= {-1, 1}
    assert acc["ideal observer (sum of relevant samples)"] == 1.0
    for k in ("ignore context: always motion", "ignore context: always color",
              "ignore context: sum of both streams"):
        assert 0.6 < acc[k] < 0.9, (k, acc[k])
    assert 0.45 < acc["constant ' right'"] < 0.55
    assert 0.6 < acc["majority sign of relevant samples"] < 1.0


def test_ignore_context_is_perfect_on_congruent_extremes():
    # sanity of the latents: where both streams are strong and agree, ignoring context works
    trials = make_splits(TaskConfig(noise=0.05), 300, 0, 0)["train"]
    strong = [t for t in trials if t.congruent and abs(t.motion_coh) == 0.5 and abs(t.color_coh) == 0.5]
    assert strong
    preds = task.baseline_predictions(strong)
    choice = np.array([t.choice for t in strong])
    assert np.all(preds["ignore context: sum of both streams"] == choice)


# ---- serialisation -----------------------------------------------------------------------------

LATENTS = {"prompt", "answer", "choice", "context", "motion_coh", "color_coh", "motion_samples",
           "color_samples", "motion_sum", "color_sum", "motion_sign", "color_sign", "relevant_coh",
           "irrelevant_coh", "congruent"}


def test_write_jsonl_round_trip(tmp_path):
    trials = make_splits(TaskConfig(seed=5), 30, 0, 0)["train"]
    path = tmp_path / "trials.jsonl"
    text = task.write_jsonl(trials, path)
    assert path.read_text() == text
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == len(trials)
    fields = {f.name for f in dataclasses.fields(Trial)}
    for row, t in zip(rows, trials):
        assert set(row) == LATENTS
        rebuilt = Trial(**{k: (tuple(v) if isinstance(v, list) else v)
                           for k, v in row.items() if k in fields})
        assert rebuilt == t
        assert row["motion_sign"] == t.motion_sign and row["color_sign"] == t.color_sign
        assert row["relevant_coh"] == t.relevant_coh and row["congruent"] == t.congruent


def test_trials_frame_has_one_row_per_trial():
    trials = make_splits(TaskConfig(), 12, 0, 0)["train"]
    df = task.trials_frame(trials)
    assert len(df) == 12
    assert LATENTS <= set(df.columns)
    assert df["choice"].tolist() == [t.choice for t in trials]


def test_make_splits_fails_instead_of_hanging_on_a_tiny_prompt_space():
    # n_samples=1, noise=0, one level per stream: 2 contexts x 2 motion signs x 2 color signs = 8
    # possible prompts.  Run in a subprocess so that a hang cannot stall the test session.
    import subprocess
    import sys
    code = ("from helpers.tasks.decision import TaskConfig, make_splits\n"
            "cfg = TaskConfig(n_samples=1, noise=0.0, motion_levels=(0.5,), color_levels=(0.5,))\n"
            "assert len(make_splits(cfg, 8, 0, 0)['train']) == 8\n"
            "try:\n"
            "    make_splits(cfg, 9, 0, 0)\n"
            "except ValueError as e:\n"          # ParameterError, a ValueError subclass
            "    raise SystemExit(f'ValueError ({type(e).__name__}): {e}')\n")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("make_splits hung asking for 9 distinct prompts out of 8 possible")
    assert proc.returncode != 0
    assert "ValueError" in proc.stderr and "too few distinct prompts" in proc.stderr
