"""Chapter 1's exercise: the rule of the context-dependent decision task.

* ``01-answer``: ``answer_of(context, motion_samples, color_samples) -> str``: the answer token of a
  trial, ``" right"`` when the shown samples of the stream the context names sum to more than 0,
  else ``" left"`` (with the leading space: the answer is one token of the prompt's continuation),
  checked against the generator's answers (:mod:`helpers.tasks.decision`).
"""
from __future__ import annotations

from helpers.exercises.checking import Result, call


def check_answer(fn) -> Result:
    from helpers.tasks.decision import TaskConfig, make_splits
    name = "01-answer"
    trials = make_splits(TaskConfig(seed=4), 0, 0, 200)["test"]
    wrong = []
    for t in trials:
        got = call(fn, t.context, t.motion_samples, t.color_samples)
        if got != t.answer:
            wrong.append((t, got))
    if not wrong:
        return Result(name, True, f"gives the generator's answer on {len(trials)} trials of both contexts")
    t, got = wrong[0]
    if isinstance(got, str) and got.strip() == t.answer.strip():
        why = f"you return {got!r}; the answer token has a leading space: {t.answer!r}"
    elif all(w.context == "color" for w, _ in wrong):
        why = "in colour trials you answered from the motion stream: the context says which stream counts"
    elif all(w.context == "motion" for w, _ in wrong):
        why = "in motion trials you answered from the colour stream: the context says which stream counts"
    elif len(wrong) == len(trials):
        why = "every answer is the opposite one: a positive sum of the relevant samples means ' right'"
    else:
        why = f"for {t.prompt!r} you return {got!r}, expected {t.answer!r}"
    return Result(name, False, f"{len(wrong)} of {len(trials)} trials wrong; {why}")


def check_ignore_context(fn) -> Result:
    """``01-ignore-context``: ``ignore_context_accuracy(trials, stream) -> float``: the share of
    `trials` a strategy gets right that always answers from one `stream` (``"motion"`` or
    ``"color"``: the sign of the sum of its *shown* samples), whatever the context says; the
    baselines of :func:`helpers.tasks.decision.baseline_predictions` (why a model must beat about 75%)."""
    import numpy as np

    from helpers.tasks.decision import TaskConfig, baseline_predictions, make_splits
    name = "01-ignore-context"
    trials = make_splits(TaskConfig(seed=6), 0, 0, 300)["test"]
    choice = np.array([t.choice for t in trials])
    base = baseline_predictions(trials)
    for stream in ("motion", "color"):
        got = float(call(fn, trials, stream))
        key = "ignore context: always motion" if stream == "motion" else "ignore context: always color"
        want = float((base[key] == choice).mean())
        if np.isclose(got, want):
            continue
        coh = np.array([np.sign(t.motion_coh if stream == "motion" else t.color_coh) for t in trials])
        if np.isclose(got, float((coh == choice).mean())):
            why = ("that uses the stream's true coherence; a strategy only sees the samples shown in the prompt: use "
                   "the sign of their sum")
        elif np.isclose(got, want * len(trials)):
            why = "that is a count; return the share of trials"
        elif np.isclose(got, 1 - want):
            why = "that is the share it gets wrong"
        else:
            why = f"expected {want:.3f}"
        return Result(name, False, f"for stream {stream!r} you return {got:.3f}: {why}")
    return Result(name, True, "equals the book's context-blind baselines for both streams on 300 trials")
