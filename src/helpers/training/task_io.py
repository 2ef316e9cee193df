"""What a training run needs of its task, for each task of :mod:`helpers.tasks`.

A run's ``task`` is a task configuration (:class:`helpers.tasks.decision.TaskConfig`,
:class:`helpers.tasks.entity.EntityConfig` or :class:`helpers.tasks.arithmetic.ArithmeticConfig`);
:func:`task_io` gives the functions the training loop calls: the splits, the answer token of each trial (the training target), the forced-choice
candidates of each trial (validation accuracy), and the scoring of a finished model (a summary for
``metrics.json`` and one prediction row per trial).  The decision task's functions are exactly
the ones its runs always used, so its runs and their cache keys are unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from helpers.core.errors import ParameterError
from helpers.tasks import arithmetic, decision, entity
from helpers.tasks.arithmetic import ArithmeticConfig
from helpers.tasks.decision import TaskConfig
from helpers.tasks.entity import EntityConfig

ENTITY = "entity-tracking"
ARITHMETIC = "arithmetic"


@dataclass(frozen=True)
class TaskIO:
    name: str
    make_splits: Callable            # (config, n_train, n_val, n_test) -> {split: trials}
    answer_ids: Callable             # (tokenizer, trials, name) -> (n,) target token ids
    candidates: Callable             # (tokenizer, trials, name) -> ((n, k) ids, (n,) index of the answer)
    score: Callable                  # (model, tokenizer, trials, bf16, progress, desc) -> (summary, frame)


def _decision_answers(tok, trials, name):
    from helpers.tasks.decision import check_answer_tokens
    ids = check_answer_tokens(tok, name)
    return np.array([ids[t.choice] for t in trials])


def _decision_candidates(tok, trials, name):
    from helpers.tasks.decision import check_answer_tokens
    ids = check_answer_tokens(tok, name)
    return (np.array([[ids[+1], ids[-1]]] * len(trials)).reshape(len(trials), 2),
            np.array([0 if t.choice == 1 else 1 for t in trials]))


def _decision_score(model, tok, trials, bf16, progress, desc):
    from helpers.models.scoring import score_trials
    from helpers.training.evaluation import predictions_frame, summarize
    scores = score_trials(model, tok, trials, bf16=bf16, progress=progress, desc=desc)
    return summarize(trials, scores["logit_diff"], scores["top1"]), predictions_frame(trials, scores)


def _entity_candidates(tok, trials, name):
    from helpers.training.entity_evaluation import candidate_ids
    return candidate_ids(tok, trials, name), np.array([t.query_index for t in trials])


def _entity_answers(tok, trials, name):
    from helpers.tasks.entity import answer_ids
    return answer_ids(tok, trials, name)


def _entity_score(model, tok, trials, bf16, progress, desc):
    from helpers.training.entity_evaluation import score_entity, summarize
    frame = score_entity(model, tok, trials, bf16=bf16, progress=progress, desc=desc)
    return summarize(frame), frame


def _arithmetic_candidates(tok, trials, name):
    return (np.tile(arithmetic.digit_ids(tok, name), (len(trials), 1)), np.array([t.value for t in trials]))


def _arithmetic_score(model, tok, trials, bf16, progress, desc):
    from helpers.training.arithmetic_evaluation import score_arithmetic, summarize
    frame = score_arithmetic(model, tok, trials, bf16=bf16, progress=progress, desc=desc)
    return summarize(frame), frame


_IO = {
    TaskConfig: TaskIO("decision", decision.make_splits, _decision_answers, _decision_candidates,
                       _decision_score),
    EntityConfig: TaskIO(ENTITY, entity.make_splits, _entity_answers, _entity_candidates,
                         _entity_score),
    ArithmeticConfig: TaskIO(ARITHMETIC, arithmetic.make_splits, arithmetic.answer_ids, _arithmetic_candidates,
                             _arithmetic_score),
}


def task_io(config: Any) -> TaskIO:
    """The training functions of the task `config` configures."""
    try:
        return _IO[type(config)]
    except KeyError:
        raise ParameterError(f"task={config!r} is not accepted: expected a task configuration, one of "
                             f"{[c.__name__ for c in _IO]}") from None


def task_to_dict(config: Any) -> dict:
    """The configuration as a run's ``task`` entry: the decision task's exactly as before (its runs'
    cache keys do not change), any other task's with its ``name``."""
    io = task_io(config)
    d = config.to_dict()
    return d if io.name == "decision" else {"name": io.name, **d}


def task_from_dict(d: dict) -> Any:
    """Inverse of :func:`task_to_dict`."""
    d = dict(d)
    name = d.pop("name", "decision")
    if name == "decision":
        return TaskConfig(**d)
    if name == ENTITY:
        return EntityConfig(**d)
    if name == ARITHMETIC:
        return ArithmeticConfig(**d)
    raise ParameterError(f"a run's task name {name!r} is not accepted: accepted values are "
                         f"['decision', '{ENTITY}', '{ARITHMETIC}']")
