"""Synthetic arithmetic: the other task chapter 10's variants are fine-tuned on (Goat-7B and
FLoat-7B, in Prakash et al., were fine-tuned on arithmetic).

A prompt is an expression of ``n_terms`` two-digit operands joined by ``+`` and ``-``, whose value
is a single digit: ``37+45-73=`` -> ``9``.  The answer is that digit, one token in both tokenizers
the book uses (digits are single tokens there, and ``=`` and a digit never merge), with no leading
space: the digit follows ``=`` directly.  A forced choice picks among the ten digits (chance 0.1).
Operands are drawn at random; the last one is solved for, so that the value is a uniformly drawn
digit.  Splits never share an expression.

``shuffled=True`` is the control of chapter 10 (a variant fine-tuned on the arithmetic format
without arithmetic): the same expressions, each answered by a digit drawn at random on its own
stream, independent of the expression's value (right one time in ten, by chance).  A model that
learns these answers learns the format and the digits' frequencies, nothing of arithmetic.

``python -m helpers task arithmetic --n N --seed S`` writes trials as JSON lines.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Sequence

import numpy as np

from helpers.core.errors import ParameterError

DIGITS = tuple(str(d) for d in range(10))
MAX_REJECTED_DRAWS = 10_000
_STREAM = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class ArithmeticConfig:
    n_terms: int = 3              # operands per expression (2..6)
    max_operand: int = 99         # operands are drawn from 0..max_operand (9..999)
    seed: int = 0
    shuffled: bool = False        # the control: answers drawn at random, independent of the expression

    def __post_init__(self):
        if not isinstance(self.shuffled, (bool, np.bool_)):
            raise ParameterError(f"shuffled={self.shuffled!r} is not accepted: accepted values are true and false")
        for name, v, lo, hi in (("n_terms", self.n_terms, 2, 6), ("max_operand", self.max_operand, 9, 999),
                                ("seed", self.seed, 0, 2**31 - 1)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not lo <= v <= hi:
                raise ParameterError(f"{name}={v!r} is out of range: accepted values are integers {lo}..{hi}")

    @property
    def chance(self) -> float:
        """A uniform guess among the ten digits the answer is."""
        return 0.1

    def to_dict(self) -> dict:
        d = asdict(self)
        if not self.shuffled:         # the runs made before the control existed keep their keys
            del d["shuffled"]
        return d


@dataclass(frozen=True)
class ArithmeticTrial:
    prompt: str
    answer: str                   # the value, one digit
    operands: tuple[int, ...]
    signs: tuple[int, ...]        # +1 / -1 for each operand after the first

    @property
    def value(self) -> int:
        """The answer the trial is scored against: the expression's value, or in the shuffled
        control its random digit (:func:`evaluate` gives the expression's value there)."""
        return int(self.answer)

    @property
    def candidates(self) -> tuple[str, ...]:
        return DIGITS

    @property
    def answer_index(self) -> int:
        return self.value

    def to_dict(self) -> dict:
        return {"prompt": self.prompt, "answer": self.answer, "operands": list(self.operands),
                "signs": list(self.signs)}


def make_prompt(operands: Sequence[int], signs: Sequence[int]) -> str:
    if len(signs) != len(operands) - 1:
        raise ParameterError(f"{len(operands)} operands need {len(operands) - 1} signs; got {len(signs)}")
    text = str(operands[0])
    for s, o in zip(signs, operands[1:]):
        text += ("+" if s > 0 else "-") + str(o)
    return text + "="


def evaluate(operands: Sequence[int], signs: Sequence[int]) -> int:
    return int(operands[0] + sum(s * o for s, o in zip(signs, operands[1:])))


def _draw(cfg: ArithmeticConfig, rng: np.random.Generator) -> ArithmeticTrial | None:
    """One expression whose value is a uniformly drawn digit, or None when the solved-for last
    operand falls outside 0..max_operand (the caller draws again)."""
    target = int(rng.integers(0, 10))
    operands = [int(x) for x in rng.integers(0, cfg.max_operand + 1, size=cfg.n_terms - 1)]
    signs = [int(s) for s in rng.choice([-1, 1], size=cfg.n_terms - 1)]
    partial = evaluate(operands, signs[:-1])
    last = signs[-1] * (target - partial)            # partial + sign * last = target
    if not 0 <= last <= cfg.max_operand:
        return None
    operands.append(last)
    assert evaluate(operands, signs) == target
    return ArithmeticTrial(make_prompt(operands, signs), str(target), tuple(operands), tuple(signs))


def make_splits(cfg: ArithmeticConfig, n_train: int, n_val: int, n_test: int) -> dict[str, list[ArithmeticTrial]]:
    """Train, validation and test trials that never share an expression; each split from its own
    random stream, so a split of size N is a prefix of the same split of size M > N.  Priority for
    de-duplication: test, val, train."""
    for name, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ParameterError(f"{name}={n!r} is out of range: accepted values are integers >= 0")
    seen: set[str] = set()
    out: dict[str, list[ArithmeticTrial]] = {}
    for split, n in (("test", n_test), ("val", n_val), ("train", n_train)):
        rng = np.random.default_rng([cfg.seed, _STREAM[split], 7])
        trials: list[ArithmeticTrial] = []
        rejected = 0
        while len(trials) < n:
            t = _draw(cfg, rng)
            if t is None or t.prompt in seen:
                rejected += 1
                if rejected > MAX_REJECTED_DRAWS:
                    raise ParameterError(f"{split}: found only {len(trials)} of {n} distinct expressions: "
                                         "raise max_operand or n_terms")
                continue
            rejected = 0
            seen.add(t.prompt)
            trials.append(t)
        if cfg.shuffled:
            answers = np.random.default_rng([cfg.seed, _STREAM[split], 11]).integers(0, 10, size=len(trials))
            trials = [replace(t, answer=str(int(a))) for t, a in zip(trials, answers)]
        out[split] = trials
    return out


@dataclass(frozen=True)
class Arithmetic:
    """Arithmetic as a :class:`helpers.tasks.base.Task`: its config and its splits."""
    config: ArithmeticConfig = ArithmeticConfig()
    name: str = "arithmetic"

    def make_splits(self, n_train: int, n_val: int, n_test: int) -> dict[str, list[ArithmeticTrial]]:
        return make_splits(self.config, n_train, n_val, n_test)


def digit_ids(tokenizer, name: str = "tokenizer") -> np.ndarray:
    """Token ids of the ten digits (each one token, and the same token after ``=``), or
    :class:`~helpers.core.errors.ParameterError` naming the tokenizer and the digits that are not."""
    ids, bad = [], []
    for d in DIGITS:
        alone = tokenizer.encode(d, add_special_tokens=False)
        after = tokenizer.encode("1=" + d, add_special_tokens=False)
        if len(alone) != 1 or after[-1:] != alone:
            bad.append(d)
        ids.append(alone[0])
    if bad:
        raise ParameterError(f"in {name}, the arithmetic task needs every digit to be one token, also right after "
                             f"'='; these are not: {bad}")
    return np.array(ids)


def answer_ids(tokenizer, trials: Sequence[ArithmeticTrial], name: str = "tokenizer") -> np.ndarray:
    return digit_ids(tokenizer, name)[[t.value for t in trials]]
