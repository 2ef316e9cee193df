"""The synthetic arithmetic task (helpers.tasks.arithmetic): every answer is the expression's value,
a uniformly drawn digit; splits share no expression and are nested; the ten digits are one token,
also right after '=', in both tokenizers; the task trains and scores through task_io."""
import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from helpers.core.errors import ParameterError
from helpers.tasks import arithmetic as A
from helpers.tasks.base import make_task
from helpers.training.task_io import task_from_dict, task_io, task_to_dict


def test_answers_are_the_values_and_uniform_digits():
    cfg = A.ArithmeticConfig(n_terms=3, seed=4)
    trials = A.make_splits(cfg, 2000, 0, 0)["train"]
    for t in trials:
        assert eval(t.prompt[:-1]) == t.value == int(t.answer)          # the prompt is the expression
        assert t.prompt.endswith("=") and len(t.operands) == 3 and all(0 <= o <= 99 for o in t.operands)
    counts = Counter(t.value for t in trials)
    assert set(counts) == set(range(10)) and min(counts.values()) > 150       # about 200 each
    assert A.make_splits(A.ArithmeticConfig(n_terms=2, seed=1), 5, 0, 0)["train"][0].prompt.count("=") == 1


def test_splits_are_disjoint_nested_and_seeded():
    cfg = A.ArithmeticConfig(seed=2)
    small, big = A.make_splits(cfg, 50, 30, 30), A.make_splits(cfg, 200, 30, 30)
    assert big["train"][:50] == small["train"] and big["test"] == small["test"]
    prompts = {s: {t.prompt for t in big[s]} for s in big}
    assert not (prompts["train"] & prompts["test"]) and not (prompts["train"] & prompts["val"])
    assert not (prompts["val"] & prompts["test"])
    assert A.make_splits(A.ArithmeticConfig(seed=3), 50, 0, 0)["train"] != small["train"]
    with pytest.raises(ParameterError, match="n_terms=7 is out of range"):
        A.ArithmeticConfig(n_terms=7)
    with pytest.raises(ParameterError, match="found only"):
        A.make_splits(A.ArithmeticConfig(n_terms=2, max_operand=9), 200, 0, 0)    # too few expressions


def test_digits_are_single_tokens_in_both_tokenizers(gpt2_tok, smollm2_tok):
    trials = A.make_splits(A.ArithmeticConfig(seed=0), 20, 0, 0)["train"]
    for tok in (gpt2_tok, smollm2_tok):
        ids = A.digit_ids(tok)
        assert len(set(ids.tolist())) == 10 and [tok.decode([int(i)]) for i in ids] == list(A.DIGITS)
        for t in trials:      # the answer token is what the prompt + answer tokenises to
            assert tok.encode(t.prompt + t.answer, add_special_tokens=False)[-1] == A.answer_ids(tok, [t])[0]


def test_task_io_and_task_protocol():
    cfg = A.ArithmeticConfig(n_terms=2, seed=5)
    assert task_from_dict(task_to_dict(cfg)) == cfg and task_to_dict(cfg)["name"] == "arithmetic"
    assert task_io(cfg).name == "arithmetic"
    assert make_task("arithmetic", n_terms=2, seed=5).make_splits(3, 0, 0)["train"] == A.make_splits(cfg, 3, 0, 0)["train"]


def test_cli_writes_json_lines():
    out = subprocess.run([sys.executable, "-m", "helpers", "task", "arithmetic", "--n", "4", "--seed", "1",
                          "--terms", "2"], capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 4 and all(np.sign(r["signs"][0]) in (-1, 1) and len(r["operands"]) == 2 for r in rows)


def test_the_shuffled_control_keeps_the_expressions_and_carries_no_arithmetic():
    """The control's data, audited from the prompt text: the same expressions as the real task,
    answers uniform over the digits and right (equal to the expression's value) only at chance:
    its Wilson 99.9% interval over 3000 trials holds 1 in 10 and excludes 0.2.  No entity content:
    every prompt is digits, '+', '-' and '='."""
    from helpers.stats.intervals import wilson_ci
    real = A.make_splits(A.ArithmeticConfig(seed=6), 3000, 0, 0)["train"]
    ctrl = A.make_splits(A.ArithmeticConfig(seed=6, shuffled=True), 3000, 0, 0)["train"]
    assert [t.prompt for t in ctrl] == [t.prompt for t in real]
    agree = np.array([eval(t.prompt[:-1]) == t.value for t in ctrl])
    lo, hi = wilson_ci(int(agree.sum()), len(agree), z=3.29)
    assert lo < 0.1 < hi < 0.2
    assert set(Counter(t.value for t in ctrl)) == set(range(10))
    assert all(set(t.prompt) <= set("0123456789+-=") for t in ctrl)
    # its own stream: the answers do not follow the real ones either
    assert np.mean([a.answer == b.answer for a, b in zip(ctrl, real)]) < 0.2


def test_the_control_is_its_own_run_and_the_real_task_keeps_its_keys():
    from helpers.training.runs import RunConfig
    real, ctrl = A.ArithmeticConfig(seed=1), A.ArithmeticConfig(seed=1, shuffled=True)
    assert "shuffled" not in real.to_dict() and ctrl.to_dict()["shuffled"] is True
    assert task_from_dict(task_to_dict(ctrl)) == ctrl and task_from_dict(task_to_dict(real)) == real
    assert RunConfig("tiny-gpt2", 8, task=real).key() != RunConfig("tiny-gpt2", 8, task=ctrl).key()
    with pytest.raises(ParameterError, match="shuffled='yes' is not accepted"):
        A.ArithmeticConfig(shuffled="yes")
