"""The text version of the context-dependent decision task of Mante et al. (2013).

A trial shows a context word (``motion`` or ``color``) and two streams of noisy numbers.  Each
stream has a mean coherence drawn from the levels Mante et al. used (motion +-0.05, +-0.15, +-0.50;
color +-0.06, +-0.18, +-0.50), independently for the two streams.  Each shown sample is the
mean plus Gaussian noise, clipped to [-0.99, 0.99] and written with a sign and two decimals.
The answer is `` right`` when the *sum of the shown samples of the relevant stream* is positive
and `` left`` when it is negative; exact zeros are re-drawn.  The label is therefore a
deterministic function of the prompt, so an ideal observer is 100% correct.

Every trial carries its latent variables so that the analyses (and any reader) can audit the
labels: see :class:`Trial`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from helpers.core.errors import ParameterError
from helpers.tasks.base import (CounterfactualPair, pair_token_ids, same_length_pairs,  # noqa: F401 (re-exported)
                                trials_frame, write_jsonl)

CONTEXTS = ("motion", "color")
MOTION_LEVELS = (0.05, 0.15, 0.50)
COLOR_LEVELS = (0.06, 0.18, 0.50)
ANSWERS = {+1: " right", -1: " left"}
SPLITS = ("train", "val", "test")
MAX_REJECTED_DRAWS = 20_000   # consecutive repeats before a split is declared impossible

# Independent random streams per split: the same (config, split) always gives the same trials.
_SPLIT_STREAM = {"test": 0, "val": 1, "train": 2}


@dataclass(frozen=True)
class TaskConfig:
    """Everything that defines the task.  All fields are validated on construction."""

    n_samples: int = 4
    noise: float = 0.2
    motion_levels: tuple[float, ...] = MOTION_LEVELS
    color_levels: tuple[float, ...] = COLOR_LEVELS
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "motion_levels", tuple(float(x) for x in self.motion_levels))
        object.__setattr__(self, "color_levels", tuple(float(x) for x in self.color_levels))
        if (not isinstance(self.n_samples, (int, np.integer)) or isinstance(self.n_samples, bool)
                or not 1 <= self.n_samples <= 16):
            raise ParameterError(f"n_samples={self.n_samples!r} is out of range: accepted values are integers 1..16")
        if (not isinstance(self.noise, (int, float, np.floating)) or isinstance(self.noise, bool)
                or not 0.0 <= float(self.noise) <= 1.0):
            raise ParameterError(f"noise={self.noise!r} is out of range: accepted values are 0.0..1.0")
        for name in ("motion_levels", "color_levels"):
            levels = getattr(self, name)
            if not levels or any(not 0.0 < x < 1.0 for x in levels):
                raise ParameterError(
                    f"{name}={levels!r} is out of range: accepted values are non-empty lists of "
                    "coherence magnitudes strictly between 0 and 1")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool) or self.seed < 0:
            raise ParameterError(f"seed={self.seed!r} is out of range: accepted values are integers >= 0")

    @property
    def chance(self) -> float:
        """A uniform guess between the two answers (the context-blind baselines do better)."""
        return 0.5

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Trial:
    prompt: str
    answer: str             # " right" or " left"
    choice: int             # +1 right, -1 left (sign of the relevant shown sum)
    context: str            # "motion" or "color"
    motion_coh: float       # signed mean coherence of the motion stream
    color_coh: float        # signed mean coherence of the color stream
    motion_samples: tuple[float, ...]
    color_samples: tuple[float, ...]
    motion_sum: float       # sum of the shown motion samples
    color_sum: float

    @property
    def candidates(self) -> tuple[str, ...]:
        """The two answers a choice is between."""
        return tuple(ANSWERS.values())

    @property
    def motion_sign(self) -> int:
        return 1 if self.motion_coh > 0 else -1

    @property
    def color_sign(self) -> int:
        return 1 if self.color_coh > 0 else -1

    @property
    def relevant_coh(self) -> float:
        return self.motion_coh if self.context == "motion" else self.color_coh

    @property
    def irrelevant_coh(self) -> float:
        return self.color_coh if self.context == "motion" else self.motion_coh

    @property
    def congruent(self) -> bool:
        """Both streams' mean coherences point the same way (then context does not matter)."""
        return self.motion_sign == self.color_sign

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(motion_sign=self.motion_sign, color_sign=self.color_sign,
                 relevant_coh=self.relevant_coh, irrelevant_coh=self.irrelevant_coh,
                 congruent=self.congruent)
        return d


def format_sample(x: float) -> str:
    return f"{x:+.2f}"


def make_prompt(context: str, motion: Sequence[float], color: Sequence[float]) -> str:
    if context not in CONTEXTS:
        raise ValueError(f"context={context!r} is not accepted: accepted values are {CONTEXTS}")
    m = " ".join(format_sample(x) for x in motion)
    c = " ".join(format_sample(x) for x in color)
    return f"Context: {context}. Motion: {m}. Color: {c}. Answer:"


def _draw_stream(rng: np.random.Generator, mean: float, cfg: TaskConfig) -> np.ndarray:
    """Samples in integer hundredths (exact arithmetic for the label)."""
    x = rng.normal(mean, cfg.noise, size=cfg.n_samples)
    return np.clip(np.round(x * 100), -99, 99).astype(int)


def _draw_trial(rng: np.random.Generator, cfg: TaskConfig) -> Trial:
    context = CONTEXTS[rng.integers(2)]
    motion_coh = float(rng.choice(cfg.motion_levels)) * (1 if rng.integers(2) else -1)
    color_coh = float(rng.choice(cfg.color_levels)) * (1 if rng.integers(2) else -1)
    while True:
        m = _draw_stream(rng, motion_coh, cfg)
        c = _draw_stream(rng, color_coh, cfg)
        rel = m if context == "motion" else c
        if rel.sum() != 0:          # exact zeros are re-drawn
            break
    choice = 1 if rel.sum() > 0 else -1
    motion = tuple(v / 100 for v in m.tolist())
    color = tuple(v / 100 for v in c.tolist())
    return Trial(prompt=make_prompt(context, motion, color), answer=ANSWERS[choice], choice=choice,
                 context=context, motion_coh=motion_coh, color_coh=color_coh,
                 motion_samples=motion, color_samples=color,
                 motion_sum=round(m.sum() / 100, 2), color_sum=round(c.sum() / 100, 2))


def _stream(cfg: TaskConfig, split: str) -> Iterable[Trial]:
    rng = np.random.default_rng([cfg.seed, _SPLIT_STREAM[split]])
    while True:
        yield _draw_trial(rng, cfg)


def make_splits(cfg: TaskConfig, n_train: int, n_val: int, n_test: int) -> dict[str, list[Trial]]:
    """Train, validation and test trials that never share a prompt.

    Each split comes from its own random stream, so the test set does not depend on how many
    training trials are asked for, and ``train`` of size N is a prefix of ``train`` of size M > N
    (nested training sets for the learning curves).  Priority for de-duplication: test, val, train.
    """
    for name, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ParameterError(f"{name}={n!r} is out of range: accepted values are integers >= 0")
    seen: set[str] = set()
    out: dict[str, list[Trial]] = {}
    for split, n in (("test", n_test), ("val", n_val), ("train", n_train)):
        trials: list[Trial] = []
        local: set[str] = set()
        rejected = 0
        for t in _stream(cfg, split):
            if len(trials) >= n:
                break
            if t.prompt in seen or t.prompt in local:
                rejected += 1
                if rejected > MAX_REJECTED_DRAWS:
                    raise ParameterError(
                        f"{split}: found only {len(trials)} of {n} distinct prompts after "
                        f"{MAX_REJECTED_DRAWS} repeated draws; the task config allows too few distinct "
                        f"prompts for n_train + n_val + n_test = {n_train + n_val + n_test}: add noise, "
                        "samples or levels, or ask for fewer trials")
                continue
            rejected = 0
            local.add(t.prompt)
            trials.append(t)
        seen |= local
        out[split] = trials
    return out


@dataclass(frozen=True)
class DecisionTask:
    """The decision task as a :class:`helpers.tasks.base.Task`: its config and its splits."""
    config: TaskConfig = TaskConfig()
    name: str = "decision"

    def make_splits(self, n_train: int, n_val: int, n_test: int) -> dict[str, list[Trial]]:
        return make_splits(self.config, n_train, n_val, n_test)


def check_answer_tokens(tokenizer, name: str = "tokenizer") -> dict[int, int]:
    """Token id of each answer; raises if an answer is not exactly one token."""
    ids = {}
    for choice, word in ANSWERS.items():
        toks = tokenizer.encode(word, add_special_tokens=False)
        if len(toks) != 1:
            raise ValueError(
                f"answer {word!r} is {len(toks)} tokens in {name} ({tokens_of(tokenizer, word)}); "
                f"the task needs every answer ({list(ANSWERS.values())}) to be a single token")
        ids[choice] = toks[0]
    return ids


def tokens_of(tokenizer, text: str) -> list[str]:
    """How the tokenizer splits `text`, as readable strings."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return [tokenizer.decode([i]) for i in ids]


# ---- baselines ------------------------------------------------------------------------------

def baseline_predictions(trials: Sequence[Trial]) -> dict[str, np.ndarray]:
    """Choices (+1/-1) of an ideal observer and of simple strategies that ignore part of the task."""
    def sgn(x):
        return np.where(np.asarray(x) > 0, 1, -1)
    motion_sum = np.array([t.motion_sum for t in trials])
    color_sum = np.array([t.color_sum for t in trials])
    ctx_motion = np.array([t.context == "motion" for t in trials])
    rel_maj = np.array([np.sign(np.sign(t.motion_samples if t.context == "motion" else t.color_samples).sum())
                        for t in trials])
    rng = np.random.default_rng(0)
    rel_maj = np.where(rel_maj == 0, rng.choice([-1, 1], size=len(trials)), rel_maj)
    return {
        "ideal observer (sum of relevant samples)": sgn(np.where(ctx_motion, motion_sum, color_sum)),
        "majority sign of relevant samples": rel_maj.astype(int),
        "ignore context: always motion": sgn(motion_sum),
        "ignore context: always color": sgn(color_sum),
        "ignore context: sum of both streams": sgn(motion_sum + color_sum),
        "constant ' right'": np.ones(len(trials), dtype=int),
    }


DECODED = ("context", "motion_sign", "color_sign", "choice")   # the variables the analyses decode
RESPONSE_TYPES = ("motion-left", "motion-right", "color-left", "color-right")
HEAD_TARGETS = {"response_type": "response type (context x choice, 4 classes)",
                "congruent": "congruent vs incongruent"}


def task_variables(trials) -> pd.DataFrame:
    """One row per trial with the decoded variables (0/1 codes, see the module docstring) and
    ``congruent``, ``response_type``, the signed coherences and the relevant / irrelevant signs."""
    rows = []
    for t in trials:
        rows.append({
            "context": int(t.context == "color"),
            "motion_sign": int(t.motion_coh > 0),
            "color_sign": int(t.color_coh > 0),
            "choice": int(t.choice > 0),
            "congruent": int(t.congruent),
            "response_type": f"{t.context}-{'right' if t.choice > 0 else 'left'}",
            "relevant_sign": int(t.relevant_coh > 0),
            "irrelevant_sign": int(t.irrelevant_coh > 0),
            "motion_coh": t.motion_coh, "color_coh": t.color_coh,
            "relevant_coh": t.relevant_coh, "irrelevant_coh": t.irrelevant_coh,
        })
    return pd.DataFrame(rows)


def choice_from_context_accuracy(variables: pd.DataFrame) -> float:
    """Accuracy of the best guess of the choice from the context alone (the majority choice within
    each context) on these trials: what a choice probe can reach before any number is read.  50%
    when the trials are balanced within each context."""
    majority = variables.groupby("context")["choice"].agg(lambda c: max(c.mean(), 1 - c.mean()))
    return float(majority.mul(variables["context"].value_counts(normalize=True)).sum())


def one_factor_baseline(variables: pd.DataFrame, target: str = "response_type",
                        factors: Sequence[str] = ("context", "choice")) -> float:
    """The best accuracy at predicting `target` from one of `factors` alone (the majority class of
    `target` within each value of the factor), on these trials: what a decoder that knows only
    the context, or only the choice, reaches.  About 50% for the response type (context x choice,
    four balanced classes)."""
    best = 0.0
    for f in factors:
        majority = variables.groupby(f)[target].agg(lambda t: t.value_counts(normalize=True).iloc[0])
        best = max(best, float(majority.mul(variables[f].value_counts(normalize=True)).sum()))
    return best


def baseline_table(trials: Sequence[Trial]):
    """Accuracy of each strategy of :func:`baseline_predictions` on `trials`, with a 95% Wilson
    interval (columns strategy, accuracy, and "95% CI" as text)."""
    from helpers.stats.intervals import wilson_ci
    y = np.array([t.choice for t in trials])
    rows = []
    for name, pred in baseline_predictions(trials).items():
        k = int((pred == y).sum())
        lo, hi = wilson_ci(k, len(y))
        rows.append({"strategy": name, "accuracy": k / len(y), "95% CI": f"[{lo:.3f}, {hi:.3f}]"})
    return pd.DataFrame(rows)


def best_context_blind(table) -> float:
    """The best accuracy of the strategies that ignore the context, from :func:`baseline_table`."""
    return float(table.loc[table["strategy"].str.startswith("ignore context"), "accuracy"].max())


# ---- counterfactual pairs ---------------------------------------------------------------------

COUNTERFACTUALS = {
    "evidence": "the relevant stream's shown samples negated (context and irrelevant stream unchanged): "
                "the answer always flips",
    "context": "the context word swapped (both streams unchanged): the answer flips when the two streams' "
               "shown sums have opposite signs; other trials have no such pair",
}


def _negate(samples: Sequence[float]) -> tuple[float, ...]:
    return tuple(-x if x else 0.0 for x in samples)      # keeps "+0.00" as it was written


def counterfactual(trial: Trial, kind: str) -> Trial | None:
    """The counterfactual trial of `kind` (:data:`COUNTERFACTUALS`), or None when it would not
    change the answer (a ``"context"`` swap of a trial whose two streams agree, or whose irrelevant
    stream sums to exactly zero).  Every field of the returned trial is recomputed, so its labels
    are audited like any other trial's.  Prompts keep their token layout: a sign or a context word
    is swapped for another, nothing else moves (checked per tokenizer by :func:`pair_token_ids`)."""
    if kind not in COUNTERFACTUALS:
        raise ParameterError(f"kind={kind!r} is not accepted: accepted values are {list(COUNTERFACTUALS)}")
    motion, color = trial.motion_samples, trial.color_samples
    motion_coh, color_coh, context = trial.motion_coh, trial.color_coh, trial.context
    if kind == "evidence":
        if context == "motion":
            motion, motion_coh = _negate(motion), -motion_coh
        else:
            color, color_coh = _negate(color), -color_coh
    else:
        context = "color" if context == "motion" else "motion"
    rel = round(sum(motion if context == "motion" else color) * 100)
    if rel == 0:
        return None
    choice = 1 if rel > 0 else -1
    if choice == trial.choice:
        return None
    return Trial(prompt=make_prompt(context, motion, color), answer=ANSWERS[choice], choice=choice,
                 context=context, motion_coh=motion_coh, color_coh=color_coh,
                 motion_samples=tuple(motion), color_samples=tuple(color),
                 motion_sum=round(sum(round(x * 100) for x in motion) / 100, 2),
                 color_sum=round(sum(round(x * 100) for x in color) / 100, 2))


def counterfactual_pairs(trials: Sequence[Trial], kind: str) -> list[CounterfactualPair]:
    """The pairs of `kind` of every trial that has one (all trials for ``"evidence"``; the
    trials whose streams disagree for ``"context"``), in the order of `trials`."""
    out = []
    for t in trials:
        cf = counterfactual(t, kind)
        if cf is not None:
            out.append(CounterfactualPair(t, cf, kind))
    return out


# ---- desiderata for DCM -------------------------------------------------------------------------

DESIDERATA = {
    "choice": "the source's own answer (heads that carry the decision copy it)",
    "context": "the answer the base's numbers give under the source's context",
    "evidence": "the answer the source's numbers give under the base's context (the relevant evidence's sign)",
}


def answer_under(context: str, numbers_of: Trial) -> int | None:
    """The answer (+1/-1) that `numbers_of`'s shown samples give under `context`; None when the
    stream that context makes relevant sums to exactly zero."""
    s = numbers_of.motion_sum if context == "motion" else numbers_of.color_sum
    return None if round(s * 100) == 0 else (1 if s > 0 else -1)


def desideratum_targets(base: Trial, source: Trial) -> dict[str, int | None]:
    """What each desideratum of :data:`DESIDERATA` predicts the patched base run answers."""
    return {"choice": source.choice, "context": answer_under(source.context, base),
            "evidence": answer_under(base.context, source)}


def dcm_pairs(trials: Sequence[Trial], desideratum: str, n: int, seed: int = 0) -> list[tuple[Trial, Trial, int]]:
    """`n` distinct (base, source, target) triples for the DCM `desideratum` (:data:`DESIDERATA`):
    the bases taken in turn from `trials` (a base for which 20 random sources give no pair is
    skipped on that pass), each source drawn at random from `trials`, a pair kept only when the
    desideratum's target differs from the base's answer **and** the other two desiderata predict
    the base's answer: so a mask that moves the answer to the target can only have found heads
    carrying this variable (on a binary answer, that is the only way to tell them apart)."""
    if desideratum not in DESIDERATA:
        raise ParameterError(f"desideratum={desideratum!r} is not accepted: accepted values are {list(DESIDERATA)}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ParameterError(f"n={n!r} is out of range: accepted values are integers >= 1")
    rng = np.random.default_rng([seed, list(DESIDERATA).index(desideratum)])
    out: list[tuple[Trial, Trial, int]] = []
    seen: set[tuple[int, int]] = set()
    for _ in range(4 * (n // max(len(trials), 1) + 1)):          # passes over the bases, in turn
        for i, base in enumerate(trials):
            for _ in range(20):                                   # sources tried for this base
                j = int(rng.integers(len(trials)))
                source = trials[j]
                t = desideratum_targets(base, source)
                others = [v for k, v in t.items() if k != desideratum]
                if (j == i or (i, j) in seen or t[desideratum] is None or t[desideratum] == base.choice
                        or any(v != base.choice for v in others)):
                    continue
                seen.add((i, j))
                out.append((base, source, int(t[desideratum])))
                break
            if len(out) == n:
                return out
    raise ParameterError(f"found only {len(out)} of {n} distinct pairs for desideratum {desideratum!r} in "
                         f"{len(trials)} trials: give more trials")
