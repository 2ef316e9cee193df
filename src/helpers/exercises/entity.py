"""Chapter 9's exercise: a counterfactual pair of the entity-tracking task.

* ``09-counterfactual``: ``make_counterfactual(clean, rng, cfg) -> EntityTrial``: for the clean trial,
  a new context with objects disjoint from the clean one's (so that the clean answer cannot leak
  in), queried at another box, with the same number of boxes (so that every role sits at the same
  token position), built with :func:`helpers.tasks.entity.make_trial`.  Its answer must be the
  object of its own queried box.  The checker verifies these invariants on many clean trials and
  tokenizes both prompts with the GPT-2 tokenizer: random draws cannot be compared value for value.
"""
from __future__ import annotations

import numpy as np

from helpers.exercises.checking import Result, call


def check_counterfactual(fn) -> Result:
    from helpers.models.sources import gpt2_tokenizer
    from helpers.tasks.entity import EntityConfig, make_splits, role_positions
    name = "09-counterfactual"
    cfg = EntityConfig(n_boxes=4, seed=3)
    tok = gpt2_tokenizer()
    trials = make_splits(cfg, 0, 0, 24)["test"]
    rng = np.random.default_rng(0)
    for t in trials:
        cf = call(fn, t, rng, cfg)
        where = f"for the clean prompt {t.prompt!r} you made {getattr(cf, 'prompt', cf)!r}"
        if not hasattr(cf, "objects") or not hasattr(cf, "query_index"):
            return Result(name, False, f"{where}: return an EntityTrial (helpers.tasks.entity.make_trial)")
        if cf.n_boxes != t.n_boxes:
            return Result(name, False, f"{where}: {cf.n_boxes} boxes instead of {t.n_boxes}; the roles would sit at "
                                       "other token positions than the clean prompt's")
        shared = sorted(set(cf.objects) & set(t.objects))
        if shared:
            return Result(name, False, f"{where}: it shares the object(s) {shared} with the clean context; draw its "
                                       "objects from those the clean context does not use, or patching could "
                                       "copy the clean answer back in")
        if cf.query_index == t.query_index:
            return Result(name, False, f"{where}: it queries the same box ({t.query_index}); query another box, so "
                                       "that the position changes as well as the objects")
        if cf.answer != " " + cf.objects[cf.query_index]:
            return Result(name, False, f"{where}: its answer {cf.answer!r} is not the object of its queried box "
                                       f"with a leading space ({' ' + cf.objects[cf.query_index]!r})")
        a, b = role_positions(tok, t), role_positions(tok, cf)
        layout_a, layout_b = [(r.last, r.query_label, r.objects, r.labels) for r in (a, b)]
        if len(tok(t.prompt)["input_ids"]) != len(tok(cf.prompt)["input_ids"]) or layout_a != layout_b:
            return Result(name, False, f"{where}: its roles sit at other token positions (last, query label, objects, "
                                       f"labels: {layout_b} against {layout_a})")
    return Result(name, True, f"on {len(trials)} clean 4-box trials: same layout, disjoint objects, another "
                              "queried box, a real answer")


def check_label_position(fn) -> Result:
    """``09-label-position``: ``earlier_label_position(tokenizer, trial) -> int``: the token position
    of the queried box's label in the context (its earlier occurrence, not the query's), found from
    the tokenizer's character spans so that a label never matches inside a word (``T`` inside
    ``The``), as :func:`helpers.tasks.entity.role_positions` finds ``earlier_label``."""
    from helpers.models.sources import gpt2_tokenizer
    from helpers.tasks.entity import EntityConfig, make_splits, role_positions
    name = "09-label-position"
    tok = gpt2_tokenizer()
    trials = make_splits(EntityConfig(n_boxes=5, seed=8, labels=tuple("TABCDEFGHIJ")), 0, 0, 40)["test"]
    for t in trials:
        got = call(fn, tok, t)
        r = role_positions(tok, t)
        if got == r.earlier_label:
            continue
        where = f"for {t.prompt!r} (label {t.query_label!r}) you return {got}, expected {r.earlier_label}"
        if got == r.query_label:
            why = "that is the query's occurrence (the second); the earlier occurrence is in the context"
        elif isinstance(got, int) and 0 <= got < len(tok(t.prompt)["input_ids"]) and got < r.earlier_label:
            why = (f"token {got} is {tok.decode(tok(t.prompt)['input_ids'][got])!r}: a label must match a whole word, "
                   "never a letter inside one")
        else:
            why = "find the token whose character span is the label's word in the context"
        return Result(name, False, f"{where}: {why}")
    return Result(name, True, f"equals role_positions(...).earlier_label on {len(trials)} prompts whose labels include "
                              "'T' and 'A' (letters of 'The' and 'a')")
