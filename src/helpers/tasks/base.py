"""What every task of the book provides, and what patching needs of any task's prompts.

A task (:class:`Task`) is a frozen configuration that makes train, validation and test trials that
never share a prompt; a trial (:class:`Trial`) is a prompt, its answer (one token with its leading
space), the answers a forced choice picks among, and every latent variable as a dict.  Two tasks
implement it: the decision task (:mod:`helpers.tasks.decision`), entity tracking
(:mod:`helpers.tasks.entity`) and synthetic arithmetic (:mod:`helpers.tasks.arithmetic`, the other
task chapter 10's variants learn); :func:`make_task` builds each by name.

Counterfactual pairs (:class:`CounterfactualPair`) are shared too: patching aligns positions one to
one, so :func:`pair_token_ids` refuses pairs whose prompts have different token lengths.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

from helpers.core.errors import ParameterError

TASK_NAMES = ("decision", "entity-tracking", "arithmetic")


@runtime_checkable
class Trial(Protocol):
    prompt: str
    answer: str                       # one token, e.g. " right", " magnet" (arithmetic: a digit after "=")

    @property
    def candidates(self) -> tuple[str, ...]:
        """The answers a forced choice picks among (the answer is one of them)."""

    def to_dict(self) -> dict: ...


@runtime_checkable
class Task(Protocol):
    name: str
    config: Any                       # a frozen dataclass with ``to_dict()``

    def make_splits(self, n_train: int, n_val: int, n_test: int) -> dict[str, list]: ...


def make_task(name: str, **params) -> Task:
    """The task called `name` (:data:`TASK_NAMES`) with its configuration's `params`."""
    if name == "decision":
        from helpers.tasks.decision import DecisionTask, TaskConfig
        return DecisionTask(TaskConfig(**params))
    if name == "entity-tracking":
        from helpers.tasks.entity import EntityConfig, EntityTracking
        return EntityTracking(EntityConfig(**params))
    if name == "arithmetic":
        from helpers.tasks.arithmetic import Arithmetic, ArithmeticConfig
        return Arithmetic(ArithmeticConfig(**params))
    raise ParameterError(f"task={name!r} is not accepted: accepted values are {list(TASK_NAMES)}")


def task_of(config) -> Task:
    """The task a configuration configures (the inverse of :func:`make_task`)."""
    from helpers.tasks.arithmetic import Arithmetic, ArithmeticConfig
    from helpers.tasks.decision import DecisionTask, TaskConfig
    from helpers.tasks.entity import EntityConfig, EntityTracking
    for cfg_type, task in ((TaskConfig, DecisionTask), (EntityConfig, EntityTracking), (ArithmeticConfig, Arithmetic)):
        if isinstance(config, cfg_type):
            return task(config)
    raise ParameterError(f"task={config!r} is not accepted: expected a task configuration "
                         "(TaskConfig, EntityConfig or ArithmeticConfig)")


def write_jsonl(trials, path=None) -> str:
    """Trials as JSON lines (each :meth:`Trial.to_dict`), written to `path` when given; returns the text."""
    import json
    from pathlib import Path
    from helpers.core.artifacts import atomic_write_text
    lines = "".join(json.dumps(t.to_dict()) + "\n" for t in trials)
    if path is not None:
        path = Path(path)
        if not path.parent.is_dir():
            raise ParameterError(f"--out {path}: the folder {path.parent} does not exist")
        if path.is_dir():
            raise ParameterError(f"--out {path} is a folder: give a file name, e.g. {path / 'trials.jsonl'}")
        atomic_write_text(path, lines)
    return lines


def trials_frame(trials):
    """One row per trial, its :meth:`Trial.to_dict` columns."""
    import pandas as pd
    return pd.DataFrame([t.to_dict() for t in trials])


# ---- counterfactual pairs ---------------------------------------------------------------------

@dataclass(frozen=True)
class CounterfactualPair:
    """A clean trial and its counterfactual (a prompt of the same token layout whose answer
    differs); `kind` names how the counterfactual was made (each task's ``COUNTERFACTUALS``)."""
    clean: Any
    counterfactual: Any
    kind: str


def pair_token_ids(tokenizer, pairs: Sequence[CounterfactualPair]):
    """Token ids of the clean and the counterfactual prompts, ``(clean, counterfactual)``, each
    ``(n, T)``: patching aligns positions one to one, so every prompt of the pairs must have the
    same token length (true of both tasks in SmolLM2's and GPT-2's tokenizers).  Raises
    :class:`~helpers.core.errors.ParameterError` naming the first pair that does not;
    :func:`same_length_pairs` keeps the pairs of the most common length."""
    import torch
    clean = [tokenizer.encode(p.clean.prompt) for p in pairs]
    cf = [tokenizer.encode(p.counterfactual.prompt) for p in pairs]
    if not pairs:
        raise ParameterError("no counterfactual pairs were given")
    T = len(clean[0])
    for i, (a, b) in enumerate(zip(clean, cf)):
        if len(a) != T or len(b) != T:
            raise ParameterError(
                f"pair {i} has prompts of {len(a)} and {len(b)} tokens, the first pair {T}: patching needs one "
                f"token length; keep the pairs of one length with same_length_pairs ({pairs[i].clean.prompt!r})")
    return torch.tensor(clean), torch.tensor(cf)


def same_length_pairs(tokenizer, pairs: Sequence[CounterfactualPair]) -> list[CounterfactualPair]:
    """The pairs whose clean and counterfactual prompts both have the most common token length of
    the clean prompts (with the book's tasks every prompt has one length in SmolLM2's and GPT-2's
    tokenizers; a tokenizer or a prompt format where a changed word changes the token count would
    not).  The chapters report how many were kept."""
    from collections import Counter
    lengths = [(len(tokenizer.encode(p.clean.prompt)), len(tokenizer.encode(p.counterfactual.prompt)))
               for p in pairs]
    if not lengths:
        return []
    T = Counter(a for a, _ in lengths).most_common(1)[0][0]
    return [p for p, (a, b) in zip(pairs, lengths) if a == b == T]


# ---- token offsets ----------------------------------------------------------------------------

def token_offsets(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids (exactly ``tokenizer.encode(text)``) and each token's character span (special
    tokens such as a BOS: an empty span)."""
    ids = tokenizer.encode(text)
    try:
        enc = tokenizer(text, return_offsets_mapping=True)
        offsets = [tuple(o) for o in enc["offset_mapping"]]
        if list(enc["input_ids"]) == list(ids):
            return ids, offsets
    except (NotImplementedError, KeyError, TypeError, ValueError):
        pass
    # fallback for tokenizers without offsets: decode growing prefixes (special tokens: empty span)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    offsets, pos = [], 0
    for i in range(len(ids)):
        if ids[i] in special:
            offsets.append((pos, pos))
            continue
        decoded = tokenizer.decode([t for t in ids[: i + 1] if t not in special])
        end = min(len(decoded), len(text))
        offsets.append((pos, end))
        pos = end
    return ids, offsets
