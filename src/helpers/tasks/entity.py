"""Entity tracking, the task of Prakash et al. (2024) (after Kim & Schuster, 2023).

A context puts one object in each of `n_boxes` boxes, each box labelled by a distinct capital
letter; the query names one box and the answer is its object::

    The magnet is in Box X, the bell is in Box T, the coin is in Box A. Box T contains the -> " bell"

Objects are distinct common nouns and labels distinct letters, drawn at random per context; every
context is queried at every one of its boxes (consecutive trials share a context, as in Prakash
et al.'s data).  Every object and label must be **one token with its leading space** in each
tokenizer used (:func:`check_vocabulary` says which are not); the defaults are, in GPT-2's and
SmolLM2's tokenizers, so prompts of one box count have one token length.

Positions of the task's roles (:func:`role_positions`: the last token, the query label, the query
label's earlier occurrence in the context, every object and label, every box's clause) come from the
tokenizer's character spans of words this module placed, never from fixed offsets or substring
search (which would find the label ``B`` inside ``Box``).

Counterfactuals for path patching (:func:`counterfactual_pairs`) and the three DCM desiderata
(:data:`DESIDERATA`, :func:`dcm_pairs`) are built, not searched for, so their invariants hold by
construction and are checked again on every pair.
"""
from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from helpers.core.errors import ParameterError
from helpers.tasks.base import CounterfactualPair, token_offsets

# 85 common nouns, as many as Prakash et al.'s object list; each is one token with its leading
# space in GPT-2's and SmolLM2's tokenizers (tests/test_entity_task.py checks); no noun that is
# also a common verb or the word "box".
OBJECTS = (
    "book", "car", "bell", "magnet", "wire", "cup", "key", "coin", "map", "ring", "lamp", "hat", "shoe",
    "sock", "fork", "spoon", "knife", "plate", "bowl", "bottle", "bag", "ball", "doll", "drum", "rope",
    "chain", "pen", "pencil", "brush", "comb", "clock", "phone", "camera", "radio", "guitar", "piano",
    "violin", "apple", "banana", "orange", "lemon", "grape", "cake", "egg", "cookie", "toy", "ticket",
    "shirt", "coat", "dress", "jacket", "glove", "belt", "necklace", "mirror", "pillow", "blanket",
    "towel", "soap", "candle", "bucket", "basket", "jar", "hammer", "boat", "plane", "truck", "bike",
    "sword", "shield", "crown", "flag", "poster", "painting", "photo", "wallet", "purse", "umbrella",
    "battery", "paper", "flower", "stone", "shell", "feather", "brick",
)
LABELS = tuple(string.ascii_uppercase)
MAX_REJECTED_DRAWS = 20_000
_SPLIT_STREAM = {"test": 0, "val": 1, "train": 2}

COUNTERFACTUALS = {
    "context": "another context (objects disjoint from the clean prompt's, labels drawn anew) queried at "
               "another box: its answer is an object the clean prompt does not contain, and its query "
               "index differs from the clean prompt's",
}

DESIDERATA = {
    "object": "the source's answer (an object the base prompt does not contain): heads that carry the "
              "object's value copy it",
    "position": "the base's object at the source's query index: heads that carry which box (by its "
                "position in the context) is queried",
    "label": "the base's object in the box that carries the source's query label: heads that carry the "
             "queried box's label",
}


@dataclass(frozen=True)
class EntityConfig:
    """Everything that defines the task.  All fields are validated on construction."""

    n_boxes: int = 7
    seed: int = 0
    objects: tuple[str, ...] = OBJECTS
    labels: tuple[str, ...] = LABELS

    def __post_init__(self):
        object.__setattr__(self, "objects", tuple(self.objects))
        object.__setattr__(self, "labels", tuple(self.labels))
        for name in ("objects", "labels"):
            words = getattr(self, name)
            bad = [w for w in words if not isinstance(w, str) or not w or not w.isalpha()]
            if bad:
                raise ParameterError(f"{name} {bad[:5]!r} are not accepted: accepted values are single words of "
                                     "letters only")
            if len(set(words)) != len(words):
                raise ParameterError(f"{name} repeat a word: accepted values are distinct words")
        if any(w[0].isupper() or w.lower() == "box" for w in self.objects):
            raise ParameterError("objects must be lower-case nouns other than 'box' (the prompt's own word)")
        if any(not (len(w) == 1 and w.isupper()) for w in self.labels):
            raise ParameterError(f"labels {self.labels!r} are not accepted: accepted values are single capital "
                                 "letters (a longer label could occur inside a word)")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool) or self.seed < 0:
            raise ParameterError(f"seed={self.seed!r} is out of range: accepted values are integers >= 0")
        top = max_boxes(self.objects, self.labels)
        if (not isinstance(self.n_boxes, (int, np.integer)) or isinstance(self.n_boxes, bool)
                or not 2 <= self.n_boxes <= top):
            raise ParameterError(f"n_boxes={self.n_boxes!r} is out of range: accepted values are integers 2..{top} "
                                 f"(at most the number of labels, and half the number of objects so that a "
                                 "counterfactual context can use objects disjoint from the clean one)")

    @property
    def chance(self) -> float:
        """A uniform guess among the context's objects."""
        return 1 / self.n_boxes

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def max_boxes(objects: Sequence[str] = OBJECTS, labels: Sequence[str] = LABELS) -> int:
    return min(len(labels), len(objects) // 2)


@dataclass(frozen=True)
class EntityTrial:
    prompt: str
    answer: str                       # " magnet": the queried box's object with its leading space
    objects: tuple[str, ...]          # the object in each box, in the order the context names them
    labels: tuple[str, ...]           # each box's label, same order
    query_index: int                  # which box the query names (0-based, in context order)
    context: int                      # the context's number in its split (trials of a context share it)

    @property
    def n_boxes(self) -> int:
        return len(self.objects)

    @property
    def query_label(self) -> str:
        return self.labels[self.query_index]

    @property
    def candidates(self) -> tuple[str, ...]:
        """The context's objects with their leading space (a forced choice among them has chance
        1 / n_boxes)."""
        return tuple(" " + o for o in self.objects)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(query_label=self.query_label, n_boxes=self.n_boxes)
        return d


# ---- prompts ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """A prompt and the character span ``(start, end)`` of every word the task placed in it."""
    prompt: str
    objects: tuple[tuple[int, int], ...]
    labels: tuple[tuple[int, int], ...]
    clauses: tuple[tuple[int, int], ...]      # "The magnet is in Box X" of each box (no comma)
    query_label: tuple[int, int]


def layout(objects: Sequence[str], labels: Sequence[str], query_index: int) -> Layout:
    """The prompt of a context queried at `query_index`, with the span of each placed word."""
    if len(objects) != len(labels) or not 0 <= query_index < len(objects):
        raise ParameterError(f"query_index={query_index!r} with {len(objects)} objects and {len(labels)} labels: "
                             "accepted are as many labels as objects and 0 <= query_index < boxes")
    text, obj_spans, lab_spans, clauses = "", [], [], []
    for i, (o, lab) in enumerate(zip(objects, labels)):
        if i:
            text += ", "
        start = len(text)
        text += ("The " if i == 0 else "the ")
        obj_spans.append((len(text), len(text) + len(o)))
        text += f"{o} is in Box "
        lab_spans.append((len(text), len(text) + len(lab)))
        text += lab
        clauses.append((start, len(text)))
    text += ". Box "
    q = (len(text), len(text) + len(labels[query_index]))
    text += f"{labels[query_index]} contains the"
    return Layout(text, tuple(obj_spans), tuple(lab_spans), tuple(clauses), q)


def make_prompt(objects: Sequence[str], labels: Sequence[str], query_index: int) -> str:
    return layout(objects, labels, query_index).prompt


def make_trial(objects: Sequence[str], labels: Sequence[str], query_index: int, context: int = 0) -> EntityTrial:
    objects, labels = tuple(objects), tuple(labels)
    if len(set(objects)) != len(objects) or len(set(labels)) != len(labels):
        raise ParameterError(f"a context needs distinct objects and distinct labels: got {objects} and {labels}")
    return EntityTrial(prompt=make_prompt(objects, labels, query_index), answer=" " + objects[query_index],
                       objects=objects, labels=labels, query_index=int(query_index), context=int(context))


def context_trials(objects: Sequence[str], labels: Sequence[str], context: int = 0) -> list[EntityTrial]:
    """The context queried at each of its boxes, in order."""
    return [make_trial(objects, labels, q, context) for q in range(len(objects))]


# ---- splits -------------------------------------------------------------------------------------

def _draw_context(rng: np.random.Generator, cfg: EntityConfig,
                  avoid_objects: Sequence[str] = ()) -> tuple[tuple[str, ...], tuple[str, ...]]:
    pool = [o for o in cfg.objects if o not in set(avoid_objects)]
    objects = tuple(pool[i] for i in rng.choice(len(pool), cfg.n_boxes, replace=False))
    labels = tuple(cfg.labels[i] for i in rng.choice(len(cfg.labels), cfg.n_boxes, replace=False))
    return objects, labels


def _contexts(cfg: EntityConfig, split: str) -> Iterator[tuple[tuple[str, ...], tuple[str, ...]]]:
    rng = np.random.default_rng([cfg.seed, _SPLIT_STREAM[split]])
    while True:
        yield _draw_context(rng, cfg)


def make_splits(cfg: EntityConfig, n_train: int, n_val: int, n_test: int) -> dict[str, list[EntityTrial]]:
    """Train, validation and test trials whose splits **never share a context** (so no test
    query's answer was seen in training, under another query of the same context).

    Each split comes from its own random stream of contexts; each context gives its `n_boxes`
    trials in query order, and a split is the first `n` trials of its stream (its last context may
    be cut short), so ``train`` of size N is a prefix of ``train`` of size M > N.  Priority for
    de-duplication: test, val, train."""
    for name, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ParameterError(f"{name}={n!r} is out of range: accepted values are integers >= 0")
    seen: set = set()
    out: dict[str, list[EntityTrial]] = {}
    for split, n in (("test", n_test), ("val", n_val), ("train", n_train)):
        trials: list[EntityTrial] = []
        local: set = set()
        rejected = 0
        for objects, labels in _contexts(cfg, split):
            if len(trials) >= n:
                break
            key = (objects, labels)
            if key in seen or key in local:
                rejected += 1
                if rejected > MAX_REJECTED_DRAWS:
                    raise ParameterError(f"{split}: found only {len(trials)} of {n} trials in distinct contexts; "
                                         "the configuration allows too few contexts: give more objects or labels")
                continue
            rejected = 0
            local.add(key)
            trials.extend(context_trials(objects, labels, len(local) - 1)[: n - len(trials)])
        seen |= local
        out[split] = trials
    return out


@dataclass(frozen=True)
class EntityTracking:
    """Entity tracking as a :class:`helpers.tasks.base.Task`: its config and its splits."""
    config: EntityConfig = EntityConfig()
    name: str = "entity-tracking"

    def make_splits(self, n_train: int, n_val: int, n_test: int) -> dict[str, list[EntityTrial]]:
        return make_splits(self.config, n_train, n_val, n_test)


# ---- tokens and role positions --------------------------------------------------------------

def check_vocabulary(tokenizer, cfg: EntityConfig | None = None, name: str = "tokenizer") -> dict[str, int]:
    """Token id of every object and label of `cfg` with its leading space; raises
    :class:`~helpers.core.errors.ParameterError` naming the words that are not one token."""
    cfg = cfg or EntityConfig()
    ids, bad = {}, []
    for w in cfg.objects + cfg.labels:
        toks = tokenizer.encode(" " + w, add_special_tokens=False)
        if len(toks) == 1:
            ids[w] = toks[0]
        else:
            bad.append(f"{w!r} ({len(toks)} tokens)")
    if bad:
        raise ParameterError(f"in {name}, entity tracking needs every object and label to be one token with its "
                             f"leading space; these are not: {', '.join(bad)}. Choose other objects or labels")
    return ids


def answer_ids(tokenizer, trials: Sequence[EntityTrial], name: str = "tokenizer") -> np.ndarray:
    """The token id of each trial's answer (its object with the leading space), checked to be one token."""
    out = []
    for t in trials:
        toks = tokenizer.encode(t.answer, add_special_tokens=False)
        if len(toks) != 1:
            raise ParameterError(f"answer {t.answer!r} is {len(toks)} tokens in {name}: entity tracking needs "
                                 "one-token objects (see check_vocabulary)")
        out.append(toks[0])
    return np.array(out)


def object_ids(tokenizer, trials: Sequence[EntityTrial], name: str = "tokenizer") -> np.ndarray:
    """``(n, boxes)`` token ids of each trial's objects in context order (the answer is at the
    trial's ``query_index``)."""
    out = []
    for t in trials:
        ids = [tokenizer.encode(c, add_special_tokens=False) for c in t.candidates]
        bad = [c.strip() for c, i in zip(t.candidates, ids) if len(i) != 1]
        if bad:
            raise ParameterError(f"objects {bad} are not one token in {name}: entity tracking needs one-token "
                                 "objects (see helpers.tasks.entity.check_vocabulary)")
        out.append([i[0] for i in ids])
    return np.array(out)


ROLES = ("last", "query label", "earlier label")


@dataclass(frozen=True)
class RolePositions:
    """Token positions of a prompt's roles (Prakash et al.'s groups read them: value fetchers and
    position transmitters at ``last``, position detectors at ``query_label``, structure readers at
    ``earlier_label``, the query label's occurrence in the context)."""
    last: int
    query_label: int
    earlier_label: int
    objects: tuple[int, ...]
    labels: tuple[int, ...]
    clauses: tuple[tuple[int, int], ...]       # token [start, end) of each box's clause

    def role(self, name: str) -> int:
        if name not in ROLES:
            raise ParameterError(f"role={name!r} is not accepted: accepted values are {list(ROLES)}")
        return {"last": self.last, "query label": self.query_label, "earlier label": self.earlier_label}[name]


def _word_token(offsets, span: tuple[int, int], word: str, name: str) -> int:
    """The one token that holds the word at character `span` (its leading space may belong to it)."""
    s, e = span
    hits = [i for i, (a, b) in enumerate(offsets) if b > a and a < e and b > s]
    if len(hits) != 1:
        raise ParameterError(f"{word!r} is {len(hits)} tokens in {name} at this position: entity tracking needs "
                             "every object and label to be one token (see check_vocabulary)")
    return hits[0]


def role_positions(tokenizer, trial: EntityTrial, name: str = "tokenizer") -> RolePositions:
    """The token positions of `trial`'s roles in ``tokenizer.encode(trial.prompt)``, from the
    tokenizer's character spans of the words the prompt placed (see the module docstring)."""
    lay = layout(trial.objects, trial.labels, trial.query_index)
    if lay.prompt != trial.prompt:
        raise ParameterError(f"not an entity-tracking prompt of this module: {trial.prompt!r}")
    ids, offsets = token_offsets(tokenizer, trial.prompt)
    objects = tuple(_word_token(offsets, sp, w, name) for sp, w in zip(lay.objects, trial.objects))
    labels = tuple(_word_token(offsets, sp, w, name) for sp, w in zip(lay.labels, trial.labels))

    def first_token(c):
        return min(i for i, (a, b) in enumerate(offsets) if b > a and b > c)

    clauses = tuple((first_token(s), labels[i] + 1) for i, (s, _) in enumerate(lay.clauses))
    return RolePositions(last=len(ids) - 1,
                         query_label=_word_token(offsets, lay.query_label, trial.query_label, name),
                         earlier_label=labels[trial.query_index], objects=objects, labels=labels,
                         clauses=clauses)


# ---- counterfactual pairs ---------------------------------------------------------------------

def _check_cfg_for(cfg: EntityConfig, trial: EntityTrial) -> None:
    if trial.n_boxes != cfg.n_boxes:
        raise ParameterError(f"a trial of {trial.n_boxes} boxes with a config of n_boxes={cfg.n_boxes}: "
                             "give the config the trials were made with")


def counterfactual(cfg: EntityConfig, clean: EntityTrial, rng: np.random.Generator) -> EntityTrial:
    """A counterfactual of kind ``"context"`` (:data:`COUNTERFACTUALS`) for `clean`: a new context
    drawn with objects disjoint from the clean one's, queried at another box.  Same box count, so
    the same token layout when every word is one token.  (Prakash et al.'s code instead replaces the
    query label by a random letter, not checked against the context; here every counterfactual has
    a real answer.)"""
    _check_cfg_for(cfg, clean)
    objects, labels = _draw_context(rng, cfg, avoid_objects=clean.objects)
    q = int(rng.choice([i for i in range(cfg.n_boxes) if i != clean.query_index]))
    return make_trial(objects, labels, q, context=-1)


def counterfactual_pairs(cfg: EntityConfig, trials: Sequence[EntityTrial], seed: int = 0) -> list[CounterfactualPair]:
    """One counterfactual pair per trial, in the order of `trials` (see :func:`counterfactual`)."""
    rng = np.random.default_rng([seed, 11])
    return [CounterfactualPair(t, counterfactual(cfg, t, rng), "context") for t in trials]


def desideratum_targets(base: EntityTrial, source: EntityTrial) -> dict[str, str | None]:
    """What each desideratum of :data:`DESIDERATA` predicts the patched base run answers (an
    object with its leading space), or None where it predicts nothing (the source's query label is
    not a label of the base)."""
    label = (" " + base.objects[base.labels.index(source.query_label)]
             if source.query_label in base.labels else None)
    return {"object": source.answer, "position": " " + base.objects[source.query_index], "label": label}


def dcm_source(cfg: EntityConfig, base: EntityTrial, rng: np.random.Generator) -> EntityTrial:
    """A DCM source for `base` under which the three desiderata predict three different objects,
    none the base's answer: objects disjoint from the base's (object value), a query index other
    than the base's (position), and as its query label the label of a third box of the base
    (label).  Needs at least 3 boxes."""
    _check_cfg_for(cfg, base)
    if cfg.n_boxes < 3:
        raise ParameterError(f"n_boxes={cfg.n_boxes}: DCM pairs need at least 3 boxes, so that the position and "
                             "the label desiderata point at different boxes, neither the queried one")
    objects, _ = _draw_context(rng, cfg, avoid_objects=base.objects)
    qs = int(rng.choice([i for i in range(cfg.n_boxes) if i != base.query_index]))
    j = int(rng.choice([i for i in range(cfg.n_boxes) if i not in (base.query_index, qs)]))
    shared = base.labels[j]
    others = [lab for lab in cfg.labels if lab != shared]
    labels = [others[i] for i in rng.choice(len(others), cfg.n_boxes - 1, replace=False)]
    labels.insert(qs, shared)
    return make_trial(objects, labels, qs, context=-1)


def dcm_pairs(cfg: EntityConfig, trials: Sequence[EntityTrial], desideratum: str, n: int,
              seed: int = 0) -> list[tuple[EntityTrial, EntityTrial, str]]:
    """`n` (base, source, target) triples for the DCM `desideratum` (:data:`DESIDERATA`), target an
    object with its leading space.  Bases are taken in turn from `trials`, each source built by
    :func:`dcm_source`; the sources do not depend on the desideratum (the same seed gives the same
    pairs for all three, each with its own target), and every pair is checked: the three targets
    differ from each other and from the base's answer."""
    if desideratum not in DESIDERATA:
        raise ParameterError(f"desideratum={desideratum!r} is not accepted: accepted values are {list(DESIDERATA)}")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ParameterError(f"n={n!r} is out of range: accepted values are integers >= 1")
    if not trials:
        raise ParameterError("no trials were given")
    rng = np.random.default_rng([seed, 12])
    out = []
    for k in range(n):
        base = trials[k % len(trials)]
        source = dcm_source(cfg, base, rng)
        t = desideratum_targets(base, source)
        values = [base.answer, *t.values()]
        if None in values or len(set(values)) != len(values):      # by construction never; checked anyway
            raise AssertionError(f"DCM pair with targets that do not separate the desiderata: {t}, base {base.answer}")
        out.append((base, source, t[desideratum]))
    return out
