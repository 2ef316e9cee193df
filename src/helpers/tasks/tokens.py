"""Token types and positions of the decision task's prompts, from the tokenizer's character spans.

:func:`token_types` types every token (context word, motion numbers, color numbers, punctuation,
other) so the same code works for tokenizers that write ``+0.12`` as one, three or five tokens;
:func:`landmark_positions` finds the task's landmarks from those types.
"""
from __future__ import annotations

import re

from helpers.tasks.base import token_offsets

TOKEN_TYPES = ("context word", "motion numbers", "color numbers", "punctuation", "other")


NUMBER_TYPES = ("motion numbers", "color numbers")


# when a token mixes characters of several parts (a tokenizer that merges "2." say), the type
# covering most of its non-space characters wins; ties go to the first type in this order
_PRIORITY = ("motion numbers", "color numbers", "context word", "punctuation", "other")


_PROMPT_RE = re.compile(
    r"^Context: (?P<context>\w+)\. "
    r"Motion: (?P<motion>[+-]\d+\.\d+(?: [+-]\d+\.\d+)*)\. "
    r"Color: (?P<color>[+-]\d+\.\d+(?: [+-]\d+\.\d+)*)\. Answer:$")


_NUMBER_RE = re.compile(r"[+-]\d+\.\d+")


def char_types(prompt: str) -> list[str | None]:
    """The type of every character of a task prompt (None for whitespace).

    The prompt format is :func:`helpers.tasks.decision.make_prompt`'s: ``Context: <word>. Motion: <numbers>.
    Color: <numbers>. Answer:``.  A number is its sign, digits and decimal point (``+0.12``); the
    periods that end the streams and the colons are punctuation; the keywords are "other".
    """
    m = _PROMPT_RE.match(prompt)
    if m is None:
        raise ValueError(f"not a task prompt: {prompt!r}; expected the format of helpers.tasks.decision.make_prompt, "
                         "'Context: <word>. Motion: <numbers>. Color: <numbers>. Answer:'")
    out: list[str | None] = [None if c.isspace() else ("punctuation" if c in ".:" else "other")
                             for c in prompt]
    for i in range(*m.span("context")):
        out[i] = "context word"
    for group, kind in (("motion", "motion numbers"), ("color", "color numbers")):
        start = m.start(group)
        for num in _NUMBER_RE.finditer(m.group(group)):
            for i in range(start + num.start(), start + num.end()):
                out[i] = kind
    return out


def token_types(tokenizer, prompt: str) -> list[str]:
    """A type from :data:`TOKEN_TYPES` for every token of ``tokenizer.encode(prompt)``.

    Each token gets the type that covers most of its non-space characters (ties: numbers first).
    Special tokens (empty span, e.g. a BOS) are "other"; a token made only of whitespace is a
    separator, "punctuation".
    """
    chars = char_types(prompt)
    _, offsets = token_offsets(tokenizer, prompt)
    out = []
    for s, e in offsets:
        if e <= s:
            out.append("other")
            continue
        kinds = [k for k in chars[s:e] if k is not None]
        if not kinds:
            out.append("punctuation")
            continue
        counts = {k: kinds.count(k) for k in set(kinds)}
        best = max(counts.values())
        out.append(next(k for k in _PRIORITY if counts.get(k) == best))
    return out


def token_labels(tokenizer, prompt: str) -> list[str]:
    """Each token of the prompt as readable text (spaces shown as a visible mark)."""
    return [tokenizer.decode([i]).replace(" ", "\u2423") for i in tokenizer.encode(prompt)]


LANDMARKS = ("context word", "end of motion stream", "end of color stream", "answer")


def landmark_positions(tokenizer, prompt: str) -> dict[str, int]:
    """Token positions of the task's landmarks in `prompt` (see :data:`LANDMARKS`): the context
    word, the last token of the motion and of the color numbers, and the answer position (the
    prompt's last token).  Tokens are typed by :func:`token_types`, the same
    character-span typing chapter 4 uses, so a prompt that is not of this task is an error there."""
    types = token_types(tokenizer, prompt)
    last_of = {kind: max(i for i, t in enumerate(types) if t == kind)
               for kind in ("context word", "motion numbers", "color numbers")}
    return {"context word": last_of["context word"], "end of motion stream": last_of["motion numbers"],
            "end of color stream": last_of["color numbers"], "answer": len(types) - 1}


def tokenizer_table(tokenizers: dict, trials):
    """Per tokenizer (name -> tokenizer): the ids of the two answers (checked to be single tokens)
    and the token length of the prompts of `trials` (mean, min, max)."""
    import numpy as np
    import pandas as pd

    from helpers.tasks.decision import check_answer_tokens
    rows = []
    for name, tok in tokenizers.items():
        ids = check_answer_tokens(tok, name)
        lengths = [len(tok.encode(t.prompt, add_special_tokens=False)) for t in trials]
        rows.append({"tokenizer": name, "answer ids (right, left)": (ids[1], ids[-1]),
                     "prompt tokens (mean)": np.mean(lengths), "min": min(lengths), "max": max(lengths)})
    return pd.DataFrame(rows)


def token_type_table(tokenizer, prompt: str):
    """Per token type: the prompt's tokens of that type (joined by ``|``), how many there are, and
    their share of the prompt (the attention mass that uniform attention from the last token would
    give the type).  Rows in the order of :data:`TOKEN_TYPES`."""
    import pandas as pd
    labels, types = token_labels(tokenizer, prompt), token_types(tokenizer, prompt)
    counts = pd.Series(types).value_counts().reindex(list(TOKEN_TYPES), fill_value=0)
    return pd.DataFrame({"tokens": [" | ".join(l for l, t in zip(labels, types) if t == k) for k in TOKEN_TYPES],
                         "count": counts.to_numpy(),
                         "share (uniform attention)": (counts / counts.sum()).round(3).to_numpy()},
                        index=list(TOKEN_TYPES))
