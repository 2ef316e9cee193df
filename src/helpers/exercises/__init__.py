"""Exercises with checks, in the manner of ARENA: each chapter ends with small functions the reader
writes in the notebook, and :func:`check` runs one at once, on tiny random GPT-2 and Llama models
(grouped key/value heads) or random inputs, in seconds.  A checker compares the reader's function
with the library's own and says what differs (the shape, the positions or heads whose values
differ, or the typical mistake the output matches: the wrong axis, an off-by-one head, a hook left
behind) instead of a bare assertion.

>>> from helpers.exercises import check
>>> def zero_head(z, head):
...     z[:, :, head] = 0
...     return z
>>> check("03-zero-head", zero_head)          # doctest: +SKIP
✅ 03-zero-head: zeroes exactly head 2 at every position, ...

The solutions live apart, one module per chapter in :mod:`helpers.exercises.solutions`; a chapter
shows each one folded under its exercise (:func:`show_solution`) unless the build hides them (the
chapter parameter ``show_solutions``, false in the ``course`` profile).
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Callable

from helpers.core.errors import ParameterError
from helpers.exercises import decision, entity, heads, readouts, statistics
from helpers.exercises.checking import FunctionRaised, NotAttempted, Result


@dataclass(frozen=True)
class Exercise:
    id: str
    chapter: str
    title: str
    checker: Callable[[Callable], Result]
    solution: str                 # the name of the function in helpers.exercises.solutions.ch<chapter>


EXERCISES = {e.id: e for e in [
    Exercise("01-answer", "01", "The task's rule", decision.check_answer, "answer_of"),
    Exercise("01-ignore-context", "01", "What a strategy that ignores the context scores", decision.check_ignore_context,
             "ignore_context_accuracy"),
    Exercise("02-wilson", "02", "The Wilson interval of an accuracy", statistics.check_wilson, "wilson_interval"),
    Exercise("02-paired-bootstrap", "02", "A paired bootstrap interval of a difference", statistics.check_paired_bootstrap,
             "paired_bootstrap_diff"),
    Exercise("03-zero-head", "03", "Zero-ablate one head with a hook function", heads.check_zero_head, "zero_head"),
    Exercise("03-hook-removed", "03", "A raw PyTorch hook that is always removed", heads.check_hook_removed,
             "logits_without_head"),
    Exercise("04-attention", "04", "One head's attention pattern from its queries and keys",
             heads.check_attention_pattern, "attention_pattern"),
    Exercise("04-answer-mass", "04", "The answer position's attention on a token type", heads.check_answer_mass,
             "answer_mass"),
    Exercise("05-permutation-p", "05", "A permutation p-value against shuffled labels", readouts.check_permutation_p,
             "permutation_p"),
    Exercise("05-holm", "05", "Holm's correction for a family of tests", readouts.check_holm, "holm"),
    Exercise("06-standardize", "06", "Standardise without leaking the held-out fold", readouts.check_standardize,
             "standardize"),
    Exercise("06-regression-t", "06", "A unit's selectivity by regression t-tests", readouts.check_regression_t,
             "regression_t"),
    Exercise("07-patch-head", "07", "Patch one head's output from a counterfactual run", heads.check_patch_head,
             "patch_head"),
    Exercise("07-path-patch", "07", "Path patching of one sender to the logits", heads.check_path_patch,
             "path_patch_sender"),
    Exercise("08-cmap-head", "08", "Cross-model patching of one head", heads.check_cmap_head, "cmap_head"),
    Exercise("08-random-circuit", "08", "A random circuit of the same group sizes", statistics.check_random_circuit,
             "random_circuit"),
    Exercise("09-counterfactual", "09", "A counterfactual pair of the entity-tracking task", entity.check_counterfactual,
             "make_counterfactual"),
    Exercise("09-label-position", "09", "The queried label's earlier occurrence", entity.check_label_position,
             "earlier_label_position"),
    Exercise("10-share-moved", "10", "The share of an advantage a patch moves", statistics.check_share_moved,
             "share_moved"),
    Exercise("10-dcm-mix", "10", "DCM's mask over a group of heads", heads.check_dcm_mix, "dcm_mix"),
]}


def exercise(exercise_id: str) -> Exercise:
    if exercise_id not in EXERCISES:
        raise ParameterError(f"unknown exercise {exercise_id!r}: accepted exercises are {list(EXERCISES)}")
    return EXERCISES[exercise_id]


def check(exercise_id: str, fn: Callable) -> Result:
    """Run the checker of `exercise_id` on the reader's function `fn`.  A function that still
    raises NotImplementedError (the notebook's stub) is reported as not attempted."""
    ex = exercise(exercise_id)
    try:
        return ex.checker(fn)
    except NotAttempted:
        return Result(ex.id, False, "not attempted yet: replace `raise NotImplementedError` with your code",
                      attempted=False)
    except FunctionRaised as e:
        return Result(ex.id, False, f"your function raised {e} (on the checker's inputs: read the exercise's "
                                    "shapes again)")


def solution(exercise_id: str) -> Callable:
    """The solution function of `exercise_id`."""
    ex = exercise(exercise_id)
    module = importlib.import_module(f"helpers.exercises.solutions.ch{ex.chapter}")
    return getattr(module, ex.solution)


def show_solution(exercise_id: str, show: bool = True):
    """What a chapter shows under an exercise: the solution's source folded in a ``<details>``
    block, and its check; with ``show=False`` (a course build) a sentence that the solutions are
    left out, and nothing of them."""
    from IPython.display import Markdown
    ex = exercise(exercise_id)
    if not show:
        return Markdown(f"*The solution of {ex.id} is not part of this build.*")
    fn = solution(exercise_id)
    result = check(exercise_id, fn)
    if not result.passed:        # a broken solution is the book's bug: say so loudly
        raise AssertionError(f"the solution of {ex.id} fails its own check: {result.message}")
    source = inspect.getsource(fn).rstrip()
    return Markdown(f"<details><summary>Solution: {ex.title}</summary>\n\n```python\n{source}\n```\n\n"
                    f"{result._repr_markdown_()}\n\n</details>")


__all__ = ["EXERCISES", "Exercise", "Result", "check", "exercise", "show_solution", "solution"]
