"""Entity tracking (helpers.tasks.entity): the generator's answers read back from the prompt text by
an independent parser, role positions found from the tokens of both tokenizers, and the invariants
of the counterfactual and DCM pairs (none of the pitfalls of the reference code: a source query
index equal to the base's, a label matched inside a word, targets without their leading space)."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from helpers.core.errors import ParameterError
from helpers.tasks import entity
from helpers.tasks.base import Task, Trial, make_task, pair_token_ids
from helpers.tasks.entity import DESIDERATA, EntityConfig, make_splits

CLAUSE = re.compile(r"(?:The|the) (\w+) is in Box ([A-Z])")
QUERY = re.compile(r"\. Box ([A-Z]) contains the$")


def parse(prompt: str) -> tuple[dict[str, str], str]:
    """Label -> object of the context, and the queried label, read from the text alone."""
    body, _, _ = prompt.rpartition(". Box ")
    boxes = {lab: obj for obj, lab in CLAUSE.findall(body)}
    return boxes, QUERY.search(prompt).group(1)


@pytest.fixture(scope="module")
def splits():
    return make_splits(EntityConfig(n_boxes=7, seed=3), n_train=70, n_val=21, n_test=35)


@pytest.fixture(params=["gpt2", "smollm2"])
def tok(request, gpt2_tok, smollm2_tok):
    return gpt2_tok if request.param == "gpt2" else smollm2_tok


def test_answers_match_an_independent_reading_of_the_prompt(splits):
    for trials in splits.values():
        for t in trials:
            boxes, q = parse(t.prompt)
            assert len(boxes) == t.n_boxes == 7                 # seven distinct labels
            assert q == t.query_label and t.answer == " " + boxes[q]
            assert sorted(boxes.values()) == sorted(t.objects) and len(set(t.objects)) == 7
            assert t.answer in t.candidates and len(t.candidates) == 7


def test_every_context_is_queried_at_every_box_and_splits_share_no_context(splits):
    contexts = {}
    for name, trials in splits.items():
        for t in trials:
            contexts.setdefault((name, t.context), []).append(t)
        assert [t.query_index for t in trials] == [i % 7 for i in range(len(trials))]
    for ts in contexts.values():
        assert len({(t.objects, t.labels) for t in ts}) == 1 and [t.query_index for t in ts] == list(range(7))
    keys = {name: {(t.objects, t.labels) for t in trials} for name, trials in splits.items()}
    assert not (keys["train"] & keys["test"]) and not (keys["val"] & keys["test"]) and not (keys["train"] & keys["val"])


def test_splits_are_nested_deterministic_and_depend_on_the_seed():
    cfg = EntityConfig(n_boxes=4, seed=1)
    small, large = make_splits(cfg, 10, 4, 8), make_splits(cfg, 30, 4, 8)
    assert large["train"][:10] == small["train"] and large["test"] == small["test"]
    assert make_splits(cfg, 10, 4, 8) == small
    assert make_splits(EntityConfig(n_boxes=4, seed=2), 10, 4, 8)["test"] != small["test"]
    assert len(small["train"]) == 10 and small["train"][-1].query_index == 1      # the last context cut short


@pytest.mark.parametrize("kwargs,fragment", [
    ({"n_boxes": 1}, "n_boxes=1 is out of range: accepted values are integers 2..26"),
    ({"n_boxes": 27}, "2..26"),
    ({"objects": ("cup", "Box", "key", "pen")}, "lower-case nouns other than 'box'"),
    ({"labels": ("AB", "C", "D")}, "single capital letters"),
    ({"objects": ("cup", "cup", "key", "pen")}, "distinct words"),
    ({"seed": -1}, "seed=-1"),
])
def test_bad_configs_name_the_value_and_what_is_accepted(kwargs, fragment):
    with pytest.raises(ParameterError, match=re.escape(fragment)):
        EntityConfig(**kwargs)


def test_every_object_and_label_is_one_token_in_both_tokenizers(gpt2_tok, smollm2_tok):
    for name, t in (("gpt2", gpt2_tok), ("smollm2-135m", smollm2_tok)):
        ids = entity.check_vocabulary(t, name=name)
        assert len(ids) == len(entity.OBJECTS) + len(entity.LABELS) == 85 + 26
        assert all(t.decode([i]) == " " + w for w, i in ids.items())
    with pytest.raises(ParameterError, match=r"'eggnog' \(3 tokens\)"):
        entity.check_vocabulary(gpt2_tok, EntityConfig(n_boxes=3, objects=entity.OBJECTS[:10] + ("eggnog",)), "gpt2")


def test_answer_ids_are_the_objects_with_their_leading_space(tok, splits):
    trials = splits["test"][:14]
    ids = entity.answer_ids(tok, trials)
    assert [tok.decode([int(i)]) for i in ids] == [t.answer for t in trials]
    assert all(tok.decode([int(i)]).startswith(" ") for i in ids)


def test_role_positions_come_from_the_tokens(tok, splits):
    for t in splits["test"]:
        pos = entity.role_positions(tok, t)
        words = [tok.decode([i]) for i in tok.encode(t.prompt)]
        assert len(words) == 53                                  # 7 boxes: 53 tokens in both (reference note)
        assert pos.last == 52 and words[pos.last] == " the"
        assert words[pos.query_label] == " " + t.query_label and pos.query_label == pos.last - 2
        assert words[pos.earlier_label] == " " + t.query_label and pos.earlier_label == pos.labels[t.query_index]
        assert [words[i] for i in pos.objects] == list(t.candidates)
        assert [words[i] for i in pos.labels] == [" " + lab for lab in t.labels]
        assert [words[a] for a, _ in pos.clauses] == ["The"] + [" the"] * 6
        assert all(b - a == 6 for a, b in pos.clauses) and [b - 1 for _, b in pos.clauses] == list(pos.labels)
        assert pos.role("earlier label") == pos.earlier_label
    with pytest.raises(ParameterError, match="accepted values are"):
        pos.role("value fetchers")


def test_a_label_is_never_found_inside_a_word(tok):
    """Labels T and B against 'The' and 'Box' (pitfall 2 of the reference code): positions are the
    label tokens themselves, not the first token whose text contains the letter."""
    t = entity.make_trial(("magnet", "bell", "coin"), ("T", "B", "X"), query_index=0)
    pos = entity.role_positions(tok, t)
    words = [tok.decode([i]) for i in tok.encode(t.prompt)]
    assert words[0] == "The" and pos.earlier_label == 5 and words[5] == " T"
    assert words[pos.labels[1]] == " B" and words[pos.labels[1] - 1] == " Box"


def test_a_multi_token_word_is_refused_with_its_name(gpt2_tok):
    t = entity.make_trial(("eggnog", "bell", "coin"), ("A", "B", "C"), query_index=1)
    with pytest.raises(ParameterError, match="'eggnog' is 3 tokens in gpt2"):
        entity.role_positions(gpt2_tok, t, name="gpt2")


def test_counterfactuals_query_another_box_of_another_context(tok, splits):
    cfg = EntityConfig(n_boxes=7, seed=3)
    pairs = entity.counterfactual_pairs(cfg, splits["test"], seed=0)
    assert [p.clean for p in pairs] == splits["test"]
    for p in pairs:
        c, s = p.clean, p.counterfactual
        assert s.query_index != c.query_index and not set(s.objects) & set(c.objects)
        assert s.answer != c.answer and s.answer not in c.candidates and p.kind == "context"
        assert parse(s.prompt)[0][s.query_label] == s.answer.strip()
    clean, cf = pair_token_ids(tok, pairs)
    assert clean.shape == cf.shape == (len(pairs), 53)
    a = np.array([entity.role_positions(tok, p.clean).last for p in pairs])
    assert (a == 52).all()
    assert entity.counterfactual_pairs(cfg, splits["test"], seed=0) == pairs
    assert entity.counterfactual_pairs(cfg, splits["test"], seed=1) != pairs


def test_dcm_targets_separate_the_three_desiderata(splits):
    cfg = EntityConfig(n_boxes=7, seed=3)
    bases = splits["train"]
    by = {d: entity.dcm_pairs(cfg, bases, d, n=100, seed=0) for d in DESIDERATA}
    for k in range(100):
        base, source, _ = by["object"][k]
        assert all(by[d][k][:2] == (base, source) for d in DESIDERATA)      # same pairs, own targets
        targets = {d: by[d][k][2] for d in DESIDERATA}
        assert targets["object"] == source.answer and targets["object"] not in base.candidates
        assert source.query_index != base.query_index
        assert targets["position"] == base.candidates[source.query_index]
        j = base.labels.index(source.query_label)
        assert j not in (base.query_index, source.query_index) and targets["label"] == base.candidates[j]
        assert len({base.answer, *targets.values()}) == 4 and all(v.startswith(" ") for v in targets.values())
    assert base is bases[99 % len(bases)]


def test_dcm_refuses_what_cannot_separate_the_desiderata(splits):
    two = make_splits(EntityConfig(n_boxes=2), 4, 0, 0)["train"]
    with pytest.raises(ParameterError, match="at least 3 boxes"):
        entity.dcm_pairs(EntityConfig(n_boxes=2), two, "label", n=2)
    with pytest.raises(ParameterError, match="accepted values are \\['object', 'position', 'label'\\]"):
        entity.dcm_pairs(EntityConfig(n_boxes=7, seed=3), splits["train"], "value", n=2)
    with pytest.raises(ParameterError, match="give the config the trials were made with"):
        entity.dcm_pairs(EntityConfig(n_boxes=5), splits["train"], "label", n=2)


def test_both_tasks_implement_the_task_protocol():
    for name, params in (("decision", {"n_samples": 3}), ("entity-tracking", {"n_boxes": 3}),
                         ("arithmetic", {"n_terms": 2})):
        task = make_task(name, **params)
        assert isinstance(task, Task) and task.name == name
        trials = task.make_splits(4, 2, 3)
        assert [len(trials[s]) for s in ("train", "val", "test")] == [4, 2, 3]
        for t in trials["train"]:
            assert isinstance(t, Trial) and t.answer in t.candidates and json.dumps(t.to_dict())
    with pytest.raises(ParameterError, match="accepted values are \\['decision', 'entity-tracking', 'arithmetic'\\]"):
        make_task("geometry")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "helpers", "task", *args], capture_output=True, text=True,
                          timeout=120)


def test_cli_writes_auditable_json_lines(tmp_path):
    res = _cli("entity-tracking", "--n", "10", "--seed", "4", "--boxes", "5", "--split", "test")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == 10 and {r["n_boxes"] for r in rows} == {5}
    expected = make_splits(EntityConfig(n_boxes=5, seed=4), 0, 0, 10)["test"]
    assert rows == [json.loads(json.dumps(t.to_dict())) for t in expected]
    for r in rows:
        boxes, q = parse(r["prompt"])
        assert r["query_label"] == q and r["answer"] == " " + boxes[q] == " " + r["objects"][r["query_index"]]
    out = tmp_path / "t.jsonl"
    assert _cli("entity-tracking", "--n", "3", "--out", str(out)).returncode == 0
    assert len(out.read_text().splitlines()) == 3


@pytest.mark.parametrize("args,fragment", [
    (["entity-tracking", "--n", "2", "--noise", "0.3"], "--noise is an option of the decision task"),
    (["decision", "--n", "2", "--boxes", "3"], "--boxes is an option of the entity-tracking task"),
    (["entity-tracking", "--n", "2", "--boxes", "40"], "n_boxes=40 is out of range"),
])
def test_cli_bad_options_give_one_message(args, fragment):
    res = _cli(*args)
    assert res.returncode == 2 and "Traceback" not in res.stderr and fragment in res.stderr, res.stderr
