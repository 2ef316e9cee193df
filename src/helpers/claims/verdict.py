"""The one :class:`Verdict` type, the claims file, the decision rule and the gates.

Every claim the book tests is written down in ``claims.yaml`` (repository root) before the
numbers: its id, the paper's words, the models it is about, the statistic, the comparison, the
smallest effect that counts as material, and its gates.  :func:`claim` reads one entry; every
verdict function of :mod:`helpers.claims` decides with :func:`decide` and returns a
:class:`Verdict`.

The rule (:func:`decide`), one for every claim: the statistic is an effect in the claimed
direction with an interval; **replicated** when the interval excludes no effect and the estimate
is at least material; **not replicated** only when the interval excludes a material effect
(evidence of absence); **inconclusive** otherwise, and whenever a gate failed (:func:`gated`).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import yaml

from helpers.core.errors import ParameterError
from helpers.core.paths import REPO
from helpers.stats.intervals import rates_by_group, wilson_ci, z_for

CLAIMS_FILE = REPO / "claims.yaml"
STATUSES = ("replicated", "not replicated", "inconclusive")


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str
    words: str
    chapter: str
    anchor: str
    models: tuple[str, ...]
    statistic: str
    comparison: str
    material: float
    criterion: str
    gates: tuple[str, ...] = ()
    family: str | None = None
    threshold: float | None = None
    floor: str | None = None          # faithfulness claims: what a blind circuit scores (see claims.yaml)
    seeds: int | None = None          # claims about training: the fewest seeds per arm that can replicate it


@dataclass(frozen=True)
class Verdict:
    """One claim judged on one model (or pair of models): what a chapter shows and the scorecard
    lists.  `gate` names the gate that made it inconclusive (with the numbers that failed it);
    `value`, `lo`, `hi` are the statistic and its interval (NaN when there is none)."""
    claim: str
    model: str
    status: str
    statistic: str
    value: float
    lo: float
    hi: float
    criterion: str
    evidence: str
    gate: str | None = None
    level: float = 0.95         # confidence level of [lo, hi] (above 0.95 when simultaneous over a family)
    seeds: int | None = None    # training runs per arm the verdict rests on (None: not said)
    robustness: tuple = ()      # ((method, status), ...): the verdict under alternative ablations / metrics

    @property
    def robust(self) -> str:
        """"robust" when every alternative method gives this verdict's status; "depends on the
        method (...)" naming those that flip it; "" when no alternative was computed, or when a
        gate failed (a verdict that is not judged is not robust to anything)."""
        if not self.robustness or self.gate is not None:
            return ""
        flips = [(m, s) for m, s in self.robustness if s != self.status]
        if not flips:
            return "robust"
        return "depends on the method (" + "; ".join(f"{m}: {s}" for m, s in flips) + ")"

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status={self.status!r} is not accepted: accepted values are {list(STATUSES)}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["robustness"] = [list(r) for r in self.robustness]
        d["robust"] = self.robust
        for k in ("value", "lo", "hi"):
            d[k] = None if d[k] is None or not math.isfinite(d[k]) else float(d[k])
        return d

    def markdown(self) -> str:
        """The verdict as a chapter prints it: claim, verdict, statistic and interval, criterion,
        evidence, and the gate when one failed."""
        c = claim(self.claim)
        shown = "not judged (inconclusive)" if self.gate else self.status
        out = f"**Claim ({c.paper}, `{c.id}`): {c.words.rstrip('.')}.** Model: {self.model}. Verdict: **{shown}**."
        if math.isfinite(self.value):
            interval = (f" ({_level_text(self.level)} CI {self.lo:+.3f} to {self.hi:+.3f})"
                        if math.isfinite(self.lo) and math.isfinite(self.hi) else "")
            out += f" Statistic: {self.statistic} = {self.value:+.3f}{interval}."
        if self.seeds:
            out += (f" Seeds: {'one' if self.seeds == 1 else self.seeds} per arm"
                    + (f" (the claim needs {c.seeds} to be decided)." if c.seeds and self.seeds < c.seeds else "."))
        if self.robustness:
            out += (f"\n\n*Robustness:* {self.robust}. Under each alternative: "
                    + "; ".join(f"{m}: {s}" for m, s in self.robustness) + ".")
        if self.gate:
            out += f"\n\n*Gate failed: {self.gate}.* The analysis is shown, but a model that fails a gate is not judged."
        out += f"\n\n*Criterion:* {c.criterion}\n\n{self.evidence}"
        return out


def _level_text(level: float) -> str:
    """95% -> "95%", 0.98333 -> "98.3%"."""
    return f"{level:.0%}" if abs(level * 100 - round(level * 100)) < 1e-9 else f"{level:.1%}"


@functools.lru_cache(maxsize=None)
def _load(path: str) -> tuple[dict, dict[str, Claim]]:
    data = yaml.safe_load(open(path))
    claims = {}
    for entry in data["claims"]:
        fields = {f.name for f in dataclasses.fields(Claim)}
        kw = {k: v for k, v in entry.items() if k in fields}
        kw["models"] = tuple(kw["models"])
        kw["gates"] = tuple(kw.get("gates", ()))
        kw["chapter"] = str(kw["chapter"])
        claims[entry["id"]] = Claim(**kw)
    return data["policy"], claims, data.get("gates", {})


def policy() -> dict:
    """The statistics policy of ``claims.yaml`` (alpha, multiplicity, permutation, seeds)."""
    return _load(str(CLAIMS_FILE))[0]


def alpha() -> float:
    return float(policy()["alpha"])


def claims() -> dict[str, Claim]:
    """Every claim of ``claims.yaml``, by id, in file order."""
    return _load(str(CLAIMS_FILE))[1]


def gate_threshold(name: str) -> float:
    """The number a gate of ``claims.yaml`` (its ``gates:`` section) is judged against."""
    known = _load(str(CLAIMS_FILE))[2]
    if name not in known or "threshold" not in known[name]:
        raise ParameterError(f"gate {name!r} has no threshold in {CLAIMS_FILE.name}: gates with one are "
                             f"{[k for k, v in known.items() if 'threshold' in v]}")
    return float(known[name]["threshold"])


def claim(claim_id: str) -> Claim:
    known = claims()
    if claim_id not in known:
        raise ParameterError(f"claim {claim_id!r} is not in {CLAIMS_FILE.name}: accepted values are {list(known)}")
    return known[claim_id]


# ---- the rule --------------------------------------------------------------------------------

def decide(value: float, lo: float, hi: float, material: float, null: float = 0.0) -> str:
    """The book's decision rule on an effect `value` (claimed direction positive) with interval
    ``[lo, hi]``: replicated when ``lo > null`` and ``value >= null + material``; not replicated
    when ``hi < null + material``; inconclusive otherwise (also when the interval is undefined)."""
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(value)):
        return "inconclusive"
    if lo > null and value >= null + material:
        return "replicated"
    if hi < null + material:
        return "not replicated"
    return "inconclusive"


def verdict(claim_id: str, model: str, value: float, lo: float, hi: float, evidence: str,
            statistic: str = "", gate: str | None = None, status: str | None = None,
            null: float = 0.0, level: float = 0.95, seeds: int | None = None,
            given_models: bool = False) -> Verdict:
    """A :class:`Verdict` of `claim_id` decided by :func:`decide` with the claim's material
    effect (or with `status` when the claim combines several conditions), made inconclusive by a
    failed `gate`, and by fewer `seeds` than a claim about training needs (the claim's ``seeds``;
    not given counts as fewer) unless `given_models`: the verdict is about models given as they are
    (e.g. Prakash et al.'s published Goat-7B), not about a training procedure run here.  Gates fail
    closed: any `gate` that is not None has failed, an empty text too (it is reported as a gate
    that failed without a reason)."""
    c = claim(claim_id)
    if status is None:
        status = decide(value, lo, hi, c.material, null)
    if c.seeds and not given_models and (seeds is None or seeds < c.seeds):
        status = "inconclusive"         # a claim about training needs its seeds (fail closed when not said)
    if gate is not None:
        status = "inconclusive"
        gate = str(gate).strip() or "a gate failed without saying why (fail closed)"
    return Verdict(claim=c.id, model=model, status=status, statistic=statistic or "effect",
                   value=float(value), lo=float(lo), hi=float(hi), criterion=c.criterion,
                   evidence=evidence, gate=gate, level=float(level), seeds=seeds)


def with_robustness(main: Sequence[Verdict], alternatives: dict[str, Sequence[Verdict]]) -> list[Verdict]:
    """The verdicts `main` with, for each, its status under every alternative method (a name:
    the same verdicts computed with another ablation or metric), matched by claim and model; an
    alternative that did not judge a (claim, model) is "not computed"."""
    out = []
    for v in main:
        rows = []
        for method, alts in alternatives.items():
            match = [a for a in alts if a.claim == v.claim and a.model == v.model]
            rows.append((method, match[0].status if match else "not computed"))
        out.append(dataclasses.replace(v, robustness=tuple(rows)))
    return out


# ---- the gates -------------------------------------------------------------------------------

def solves_task(correct: Sequence[bool], baseline: float, level: float | None = None) -> tuple[bool, str]:
    """The solves-the-task gate: the lower end of the Wilson interval (level ``1 - alpha``) of the
    accuracy over `correct` is above `baseline` (the best context-blind strategy's accuracy on the
    same trials).  Returns (passed, a sentence with the numbers)."""
    correct = np.asarray(correct, dtype=bool)
    level = 1 - alpha() if level is None else level
    lo, hi = wilson_ci(int(correct.sum()), len(correct), z=z_for(level))
    acc = float(correct.mean()) if len(correct) else float("nan")
    passed = bool(len(correct) and lo > baseline)
    text = (f"{acc:.1%} correct on {len(correct)} held-out trials ({level:.0%} CI {lo:.1%} to {hi:.1%}) "
            f"{'above' if passed else 'not above'} the best context-blind strategy's {baseline:.1%}")
    return passed, text


def combine_gates(gates, required) -> str | None:
    """The `gate` of a statistic that rests on every model in `required`: None only when each of
    them has a gate in `gates` (model -> None when passed, else the reason) and every one passed.
    Fails closed: a model whose gate was not evaluated (missing from `gates`, or `gates` None)
    fails with that reason, so a statistic of two models is never judged on one model's gate."""
    gates = {} if gates is None else dict(gates)
    failed = []
    for model in required:
        if model not in gates:
            failed.append(f"the gate of the {model} model was not evaluated")
        elif gates[model] is not None:
            failed.append(str(gates[model]).strip() or f"a gate of the {model} model failed without a reason")
    return "; ".join(failed) if failed else None


def gate_reason(model: str, passed: bool, text: str) -> str | None:
    """The `gate` text of a verdict: None when the solves-task gate passed."""
    return None if passed else f"the {model} model does not solve the task: {text}"


def task_gate(model: str, correct: Sequence[bool], trials) -> str | None:
    """The solves-task gate of `model` from its per-trial correctness on held-out `trials` (the
    run's test set): None when it passes, else the reason (for :func:`verdict`'s `gate`).  The
    baseline is the best context-blind strategy of chapter 1 on the same trials."""
    from helpers.tasks.decision import baseline_table, best_context_blind
    passed, text = solves_task(correct, best_context_blind(baseline_table(trials)))
    return gate_reason(model, passed, text)


def entity_gate(model: str, correct: Sequence[bool], query_index: Sequence[int], n_boxes: int) -> str | None:
    """The solves-task gate on entity tracking, from `model`'s top-1 correctness (Prakash et al.'s
    metric) on held-out prompts of `n_boxes` boxes and the box each one queries (`query_index`,
    0-based).  Passes when the accuracy's interval is above 1 / boxes, what any strategy that
    ignores the query gets (always the first box, always the last-mentioned, ...), **and so is the
    accuracy at every query position** (Wilson intervals simultaneous over the positions,
    Bonferroni; a position with no prompt fails): a model that answers the queries of three slots
    and never the others has an average far above chance and no binding to analyse.  Fails closed."""
    correct = np.asarray(correct, dtype=bool)
    query_index = np.asarray(query_index)
    chance = 1 / n_boxes
    if query_index.shape != correct.shape:
        return (f"the {model} model's gate cannot be evaluated: {len(correct)} outcomes but "
                f"{query_index.size} query positions (fail closed)")
    passed, text = solves_task(correct, chance)
    text = text.replace("the best context-blind strategy's", "a strategy that ignores the query:")
    rows = rates_by_group(correct, query_index, level=1 - alpha(), expected=range(n_boxes))
    outside = [r for r in rows if not 0 <= r["group"] < n_boxes]
    low = [r for r in rows if 0 <= r["group"] < n_boxes and not (r["n"] and r["lo"] > chance)]
    if outside:
        return (f"the {model} model's gate cannot be evaluated: query positions "
                f"{sorted(int(r['group']) + 1 for r in outside)} lie outside {n_boxes} boxes (fail closed)")
    if low:
        passed = False
        where = ", ".join(f"box {int(r['group']) + 1}: " + (f"{r['rate']:.0%} of {r['n']} (CI {r['lo']:.0%} to {r['hi']:.0%})"
                                                            if r["n"] else "no prompt")
                          for r in low)
        text += (f"; but at {'this query position' if len(low) == 1 else 'these query positions'} "
                 f"the accuracy is not above {chance:.1%} (intervals simultaneous over the {n_boxes} positions): "
                 f"{where}")
    return gate_reason(model, passed, text)


def task_gates(runs: dict, trials) -> dict[str, str | None]:
    """:func:`task_gate` of every run in `runs` (name -> a finished run with ``predictions('test')``)
    on its test `trials`."""
    return {name: task_gate(name, run.predictions("test")["correct"].to_numpy(dtype=bool), trials)
            for name, run in runs.items()}


def gate_note(gates: dict[str, str | None]) -> str:
    """A paragraph for the top of an analysis chapter: which models pass the solves-task gate, and
    that the analyses of one that fails are shown but never judged."""
    passed = [m for m, g in gates.items() if g is None]
    lines = [f"**Solves-the-task gate** (held-out accuracy interval above the best context-blind strategy, "
             f"chapter 1): passed by {', '.join(passed) if passed else 'no model'}."]
    for m, g in gates.items():
        if g is not None:
            lines.append(f"*{g[0].upper() + g[1:]}.* Its analyses below are shown, marked, and not judged.")
    lines.append("The analyses read one training run per model (the runs chapter 2 selected), so the "
                 "verdicts of this chapter are about these runs, not about training seeds.")
    return " ".join(lines)
