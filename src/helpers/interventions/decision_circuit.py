"""The decision task's circuit (chapter 7) and what other models make of it (chapter 8).

Prakash et al.'s procedure asked of the decision task, on the tools of this package:

* **Counterfactuals** (:data:`helpers.tasks.decision.COUNTERFACTUALS`): the relevant evidence
  negated, and separately the context word swapped; both flip the answer and keep every token in
  place.  :func:`pair_batch` tokenises them.
* **Where the information is** (:func:`resid_map`): the residual stream entering some layers,
  patched from the counterfactual one position at a time; the share of the flip of the logit
  difference each patch makes.
* **The search** (:func:`search_circuit`), group by group as Prakash et al. do it, per
  counterfactual: *writers* are senders at the last position whose path to the logits carries the
  flip (every other head frozen, MLPs recomputed); *movers* are senders at the last position whose
  path into the writers' queries does.  Score of a path: ``mean(LD_patched - LD_clean) /
  mean(LD_clean - LD_counterfactual)``, the share of the counterfactual's flip of the logit
  difference ``logit(correct) - logit(wrong)`` that the path alone makes (-1: all of it).
  *Deviation from Prakash et al.*, whose score is ``(p_patched - p_clean) / p_clean`` of the
  correct token: with two answers and a model at p = 0.9, a head that moves the logit difference by
  half a unit changes p by about 1%, so the probability score saturates and ranks heads by noise;
  the logit difference does not.  Selection: the `keep` most negative scores per group (their
  fixed count).
* The circuit: per role, the heads both counterfactuals found, kept at the **last position**
  (:class:`~helpers.interventions.circuits.Circuit`, role ``"last"``), evaluated by
  :func:`~helpers.interventions.circuits.evaluate_circuit` on held-out prompts.
* **DCM** (:func:`dcm_batch`) on the circuit's heads with the desiderata of
  :func:`helpers.tasks.decision.dcm_pairs`.
* **CMAP** (:func:`cmap_sets`): another model with the circuit's heads' outputs at the last
  position taken from the fine-tuned model, for the circuit, each group, and random head sets of
  the same size.

Search results are cached by their config (:func:`helpers.core.cache.cached`): chapter 8 reads
the circuit chapter 7 found without searching again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from helpers.core.cache import cached
from helpers.core.errors import ParameterError
from helpers.interventions.cmap import moved_share  # noqa: F401  (the "moved" column; re-exported)
from helpers.interventions.circuits import Circuit, Group
from helpers.interventions.metrics import ForcedChoice, LogitDiff
from helpers.interventions.path_patching import flip_share, path_patch, select_heads
from helpers.interventions.patching import generic_patch, heads_components, patch_resid, record
from helpers.models.arch import Arch
from helpers.tasks.decision import (COUNTERFACTUALS, CounterfactualPair, Trial, check_answer_tokens,
                                    counterfactual_pairs, pair_token_ids, same_length_pairs)

if TYPE_CHECKING:
    import pandas as pd

KINDS = tuple(COUNTERFACTUALS)
GROUPS = {"writers": "senders at the last position -> the logits",
          "movers": "senders at the last position -> the writers' queries (q)"}
SEARCH_VERSION = 1

Head = tuple[int, int]


@dataclass
class PairBatch:
    """Clean and counterfactual prompts of one kind, tokenised (every prompt the same length)."""
    kind: str
    pairs: list[CounterfactualPair]
    ids: torch.Tensor           # (n, T) clean
    cf_ids: torch.Tensor        # (n, T) counterfactual
    correct: torch.Tensor       # (n,) token id of the clean answer
    wrong: torch.Tensor         # (n,) token id of the other answer (the counterfactual's)
    n_candidates: int           # pairs of this kind before keeping one token length

    @property
    def last(self) -> torch.Tensor:
        return torch.full((self.ids.shape[0],), self.ids.shape[1] - 1, dtype=torch.long, device=self.ids.device)

    def metric(self) -> LogitDiff:
        return LogitDiff(self.correct, self.wrong)

    def first(self, n: int) -> "PairBatch":
        """The first `n` pairs."""
        return PairBatch(self.kind, self.pairs[:n], self.ids[:n], self.cf_ids[:n], self.correct[:n],
                         self.wrong[:n], self.n_candidates)


def pair_batch(tokenizer, trials: Sequence[Trial], kind: str, n: int, device=None) -> PairBatch:
    """The first `n` counterfactual pairs of `kind` among `trials` whose prompts have the most
    common token length (all of them with SmolLM2's tokenizer); fewer when there are fewer."""
    if kind not in KINDS:
        raise ParameterError(f"kind={kind!r} is not accepted: accepted values are {list(KINDS)}")
    candidates = counterfactual_pairs(trials, kind)
    pairs = same_length_pairs(tokenizer, candidates)[:n]
    if not pairs:
        raise ParameterError(f"no {kind} counterfactual pair among {len(trials)} trials: give more trials")
    ids, cf = pair_token_ids(tokenizer, pairs)
    ans = check_answer_tokens(tokenizer)
    correct = torch.tensor([ans[p.clean.choice] for p in pairs])
    wrong = torch.tensor([ans[-p.clean.choice] for p in pairs])
    dev = device or "cpu"
    return PairBatch(kind, pairs, ids.to(dev), cf.to(dev), correct.to(dev), wrong.to(dev), len(candidates))


@torch.no_grad()
def logit_diffs(arch: Arch, batch: PairBatch) -> tuple[np.ndarray, np.ndarray]:
    """Logit difference (correct - wrong) per pair on the clean and on the counterfactual prompts."""
    m = batch.metric()
    out = []
    for ids in (batch.ids, batch.cf_ids):
        logits = arch.model(input_ids=ids).logits[:, -1]
        out.append(m(logits).float().cpu().numpy())
    return out[0], out[1]


@torch.no_grad()
def resid_map(arch: Arch, batch: PairBatch, layers: Sequence[int]) -> np.ndarray:
    """``(len(layers), T)``: the share of the flip (:func:`flip_share`, sign reversed so that 1 is
    the whole flip) when the residual stream entering each layer is patched from the
    counterfactual at one position."""
    clean, cf = logit_diffs(arch, batch)
    vals = patch_resid(arch, batch.ids, batch.cf_ids, batch.metric(), layers=list(layers))
    return -flip_share(vals, clean, cf)


@torch.no_grad()
def search_kind(arch: Arch, batch: PairBatch, keep: int, min_share: float) -> dict:
    """Writers then movers for one counterfactual (module docstring): the kept heads (at most
    `keep` per group, each carrying at least `min_share` of the flip) and every sender's score per
    group.  No movers are searched when no writer was kept."""
    clean, cf = logit_diffs(arch, batch)
    metric = batch.metric()
    last = batch.last
    w = path_patch(arch, batch.ids, batch.cf_ids, batch.correct, last, metric=metric)
    w_scores = flip_share(w.patched, clean, cf)
    writers = _kept(w_scores, keep, min_share)
    if writers:
        m = path_patch(arch, batch.ids, batch.cf_ids, batch.correct, last, receivers=writers,
                       receiver_point="q", metric=metric)
        m_scores = flip_share(m.patched, clean, cf)
        movers = _kept(m_scores, keep, min_share)
    else:
        m_scores, movers = np.full_like(w_scores, np.nan), []
    return {"writers": {"heads": [list(h) for h in writers], "scores": w_scores},
            "movers": {"heads": [list(h) for h in movers], "scores": m_scores},
            "clean_ld": clean, "cf_ld": cf, "n_pairs": int(batch.ids.shape[0])}


def circuit_search(arch: Arch, tokenizer, pool: Sequence[Trial], n_pairs: int, keep: int, min_share: float,
                   run_key: str, bf16: bool = False, device=None) -> tuple[dict[str, PairBatch], dict]:
    """What chapters 7 and 8 start from: the counterfactual pairs of every kind among `pool`
    (:func:`pair_batch`) and the cached search on them (:func:`search_circuit`)."""
    batches = {kind: pair_batch(tokenizer, pool, kind, n_pairs, device) for kind in KINDS}
    return batches, search_circuit(arch, batches, keep, min_share, run_key, bf16=bf16)


def _kept(scores: np.ndarray, keep: int, min_share: float) -> list[Head]:
    """The most negative scores, at most `keep`, each at most ``-min_share`` and strictly below 0
    (a sender with no path to the receivers scores exactly 0 and is never kept)."""
    return [h for h in select_heads(scores, keep=keep, threshold=-min_share) if scores[h] < 0]


def search_circuit(arch: Arch, batches: dict[str, PairBatch], keep: int, min_share: float, run_key: str,
                   bf16: bool = False) -> dict:
    """:func:`search_kind` for every counterfactual in `batches`, cached by the run's key, the
    prompts, `keep`, `min_share` and the precision (:func:`helpers.core.cache.cached`)."""
    from helpers.core.device import autocast, model_device
    from helpers.core.progress import bar
    config = {"version": SEARCH_VERSION, "run": run_key, "keep": int(keep), "min_share": float(min_share),
              "bf16": bool(bf16), "pairs": {k: [p.clean.prompt for p in b.pairs] for k, b in batches.items()}}

    def compute():
        with autocast(model_device(arch.model), bf16):
            return {k: search_kind(arch, batches[k], keep, min_share)
                    for k in bar(list(batches), desc="path patching", leave=False)}
    return cached("decision-circuit", config, compute)


def circuit_of(search: dict, position: str = "last") -> Circuit:
    """The circuit of a search: one group per role (writers, movers) that kept a head, the union of
    the heads both counterfactuals found for it (the table of :func:`search_table` says which
    found which), kept at the last position.  One group per role, not per counterfactual: a head
    found by both would otherwise be in two groups, and removing it from one (the minimality
    check) would leave it in the circuit."""
    heads: dict[str, set] = {}
    for res in search.values():
        for role in GROUPS:
            heads.setdefault(role, set()).update(tuple(h) for h in res[role]["heads"])
    return Circuit([Group(role, position, hs) for role, hs in heads.items() if hs])


def at_every_position(circuit: Circuit) -> Circuit:
    """The same heads kept at every position (:data:`~helpers.interventions.circuits.ALL`)."""
    from helpers.interventions.circuits import ALL
    return Circuit([Group(g.name, ALL, g.heads) for g in circuit.groups])


def every_head_at_last(arch: Arch) -> Circuit:
    """Every head kept at the last position (and ablated elsewhere): the ceiling of any circuit
    whose heads all act at the last position."""
    return Circuit.all_heads(arch.n_layers, arch.n_heads, position="last", name="every head")


def search_table(search: dict) -> "pd.DataFrame":
    """One row per kept head: counterfactual, group, layer, head, score, rank."""
    import pandas as pd
    rows = []
    for kind, res in search.items():
        for role in GROUPS:
            for rank, (l, h) in enumerate(res[role]["heads"], 1):
                rows.append({"counterfactual": kind, "group": role, "layer": l, "head": h,
                             "share of the flip": float(res[role]["scores"][l, h]), "rank": rank})
    return pd.DataFrame(rows)


@dataclass
class EvalPrompts:
    """Trials tokenised for circuit evaluation and CMAP: right-padded ids, each prompt's last
    position, the correct and the wrong answer's token ids."""
    trials: list[Trial]
    ids: torch.Tensor
    last: torch.Tensor
    correct: torch.Tensor
    wrong: torch.Tensor


def eval_prompts(tokenizer, trials: Sequence[Trial], device=None) -> EvalPrompts:
    from helpers.models.scoring import encode_prompts, pad_batch
    ans = check_answer_tokens(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids, last = pad_batch(encode_prompts(tokenizer, [t.prompt for t in trials]), pad)
    dev = device or "cpu"
    return EvalPrompts(list(trials), ids.to(dev), last.to(dev),
                       torch.tensor([ans[t.choice] for t in trials], device=dev),
                       torch.tensor([ans[-t.choice] for t in trials], device=dev))


def scores_table(search: dict) -> "pd.DataFrame":
    """Every sender's score, one row per counterfactual, group, layer and head (NaN: not a sender)."""
    import pandas as pd
    frames = []
    for kind, res in search.items():
        for role in GROUPS:
            sc = np.asarray(res[role]["scores"], float)
            L, H = sc.shape
            frames.append(pd.DataFrame({"counterfactual": kind, "group": role, "layer": np.repeat(np.arange(L), H),
                                        "head": np.tile(np.arange(H), L), "share of the flip": sc.ravel()}))
    return pd.concat(frames, ignore_index=True)


# ---- DCM on the decision task -----------------------------------------------------------------

def dcm_batch(tokenizer, triples: Sequence[tuple[Trial, Trial, int]], device=None):
    """:class:`~helpers.interventions.dcm.Pairs` from :func:`helpers.tasks.decision.dcm_pairs`
    triples: base and source prompts, both positions the last token, the target's token id."""
    from helpers.interventions.dcm import Pairs
    from helpers.models.scoring import encode_prompts, pad_batch
    ans = check_answer_tokens(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    base, base_last = pad_batch(encode_prompts(tokenizer, [b.prompt for b, _, _ in triples]), pad)
    src, src_last = pad_batch(encode_prompts(tokenizer, [s.prompt for _, s, _ in triples]), pad)
    dev = device or "cpu"
    return Pairs(base.to(dev), src.to(dev), base_last.to(dev), src_last.to(dev),
                 torch.tensor([ans[t] for _, _, t in triples], device=dev), base_last.to(dev))


# ---- CMAP across models -------------------------------------------------------------------------

def random_head_sets(size: int, n_layers: int, n_heads: int, n_draws: int, seed: int = 0) -> list[list[Head]]:
    """`n_draws` sets of `size` distinct heads, draw ``i`` from ``default_rng([seed, i])``."""
    every = [(l, h) for l in range(n_layers) for h in range(n_heads)]
    if size > len(every):
        raise ParameterError(f"size={size} is out of range: the model has {len(every)} heads")
    return [[every[j] for j in np.random.default_rng([seed, i]).choice(len(every), size, replace=False)]
            for i in range(n_draws)]


@torch.no_grad()
def cmap_sets(a: Arch, b: Arch, ids: torch.Tensor, correct: torch.Tensor, wrong: torch.Tensor,
              sets: dict[str, Sequence[Head]], last=None, every_position: bool = False,
              with_probability: bool = False):
    """Per head set: model A on `ids` with those heads' outputs ``z`` at each prompt's last position
    (every position with `every_position`) taken from model B on the same prompts; 1.0 where A
    then prefers the correct answer to the wrong one (:class:`~.metrics.ForcedChoice`), per prompt.  Also ``"A"`` and ``"B"``: the two models alone.  All sets run in one batched
    :func:`~helpers.interventions.patching.generic_patch` call.  With `with_probability`, returns
    two such dicts from the same pass: the outcomes, and the probability of the correct token (the
    alternative metric of the verdicts' robustness)."""
    from helpers.interventions.cmap import check_same_shape
    from helpers.interventions.metrics import Prob, Stacked
    from helpers.interventions.patching import _last, last_logits
    check_same_shape(a, b)
    last = _last(ids, last)
    metric = Stacked(ForcedChoice(correct, wrong), Prob(correct))
    names = list(sets)
    keys = {("z", l) for hs in sets.values() for l, _ in hs}
    cache = record(b, ids, keys)
    out = {"A": metric(last_logits(a, a.residual_streams(ids)[-1], last)).float().cpu().numpy(),
           "B": metric(last_logits(b, b.residual_streams(ids)[-1], last)).float().cpu().numpy()}
    patches = [heads_components(sets[n], "z", None if every_position else last) for n in names]
    vals = generic_patch(a, ids, cache, patches, metric, last)
    out.update({n: vals[i] for i, n in enumerate(names)})
    outcomes = {k: v[..., 0] for k, v in out.items()}
    return (outcomes, {k: v[..., 1] for k, v in out.items()}) if with_probability else outcomes


# ---- what the chapters call -----------------------------------------------------------------------

def evaluate_circuits(arch: Arch, circuit: Circuit, test: EvalPrompts, reference: EvalPrompts,
                      n_random: int, seed: int = 0, minimality: bool = True, bf16: bool = False,
                      references: bool = True, ablation: str = "mean") -> dict:
    """The circuit on held-out prompts (two-alternative accuracy; every other head mean-ablated at
    every position, means over `reference`), with `n_random` random circuits and minimality; the
    same heads kept at every position; and every head kept at the last position (the ceiling of
    circuits that act at the last position only), and no head at all (every head mean-ablated: the
    floor); the three references only with `references`.  `ablation`: ``"zero"`` replaces the
    heads outside the circuit by zero instead of their mean (:func:`~.circuits.ablated_means`)."""
    from helpers.core.device import autocast, model_device
    from helpers.interventions.circuits import ablated_means, circuit_means, evaluate_circuit, run_circuit
    pos = {"last": test.last}
    with autocast(model_device(arch.model), bf16):
        means = ablated_means(circuit_means(arch, reference.ids, reference.last, {"last": reference.last}), ablation)
        full = run_circuit(arch, test.ids, pos, None, None, test.correct, last=test.last, wrong_ids=test.wrong)
        common = dict(last=test.last, wrong_ids=test.wrong, seed=seed, model_outcomes=full)   # the full model once
        out = {"circuit": evaluate_circuit(arch, test.ids, pos, circuit, means, test.correct, n_random=n_random,
                                           minimality=minimality and circuit.size > 0, **common)}
        if not references:
            return out
        out["same heads, every position"] = evaluate_circuit(arch, test.ids, pos, at_every_position(circuit), means,
                                                             test.correct, n_random=0, minimality=False, **common)
        out["every head, last position"] = evaluate_circuit(arch, test.ids, pos, every_head_at_last(arch), means,
                                                            test.correct, n_random=0, minimality=False, **common)
        out["no head (all mean-ablated)"] = evaluate_circuit(arch, test.ids, pos, Circuit.empty(), means,
                                                             test.correct, n_random=0, minimality=False, **common)
    return out


def evaluation_table(evaluations: dict) -> "pd.DataFrame":
    """One row per evaluated circuit: heads, accuracy and the full model's, faithfulness with its
    interval, the random circuits' faithfulness (mean, sd, range) where drawn."""
    import pandas as pd
    rows = []
    for name, ev in evaluations.items():
        s = ev.summary()
        rows.append({"circuit": name, **{k: s[k] for k in s if k != "n"}, "prompts": s["n"]})
    return pd.DataFrame(rows)


def dcm_desiderata(arch: Arch, tokenizer, heads: Sequence[Head], trials: Sequence[Trial], n_pairs: int,
                   epochs: int, batch_size: int = 16, seed: int = 0, bf16: bool = False) -> "pd.DataFrame":
    """DCM on `heads` at the last position for every desideratum of
    :data:`helpers.tasks.decision.DESIDERATA`: `n_pairs` pairs each, split 50/25/25 into training,
    evaluation (which rounded masks to keep) and test (their accuracy).  One row per head and
    desideratum: ``selected`` (its kept rounded mask is 0), with the desideratum's accuracies."""
    import pandas as pd
    from helpers.core.device import autocast, model_device
    from helpers.core.progress import bar
    from helpers.interventions.dcm import split_pairs, train_dcm
    from helpers.tasks.decision import DESIDERATA, dcm_pairs
    dev = model_device(arch.model)
    rows = []
    for d in bar(list(DESIDERATA), desc="DCM", leave=False):
        pairs = dcm_batch(tokenizer, dcm_pairs(trials, d, n_pairs, seed), dev)
        train, evalp, test = split_pairs(pairs, seed=seed)
        with autocast(dev, bf16):
            res = train_dcm(arch, list(heads), train, evalp, test, epochs=epochs, batch_size=batch_size, seed=seed)
        before = float(res.evals["eval_accuracy"].iloc[0])
        for l, h in res.group:
            rows.append({"desideratum": d, "layer": l, "head": h, "selected": (l, h) in res.heads,
                         "eval accuracy before": before, "eval accuracy": res.eval_accuracy,
                         "test accuracy": res.test_accuracy, "test lo": res.test_accuracy_ci[0],
                         "test hi": res.test_accuracy_ci[1], "pairs": len(pairs)})
    return pd.DataFrame(rows)


def cmap_table(receiver: Arch, donor: Arch, test: EvalPrompts, sets: dict[str, Sequence[Head]], n_random: int,
               seed: int = 0, bf16: bool = False, with_probability: bool = False, every_position: bool = False):
    """CMAP of each head set of `sets` (name -> heads) and, for the first set, `n_random` random
    sets of its size, from `donor` into `receiver` at the last position (at every position with
    `every_position`: the verdicts' alternative patch): per set, the receiver's
    accuracy with the patch (Wilson interval) and the share of the donor's advantage moved.
    Returns the table and the per-prompt outcomes (``"A"``: receiver, ``"B"``: donor, then every
    set; random sets as ``"random i"``); with `with_probability` also the probabilities of the
    correct token of the same patches (a third value)."""
    import pandas as pd
    from helpers.core.device import autocast, model_device
    from helpers.stats.intervals import wilson_ci
    first = next(iter(sets.values()), [])
    all_sets = {k: list(v) for k, v in sets.items() if len(v)}
    if first:
        all_sets.update({f"random {i}": hs for i, hs in
                         enumerate(random_head_sets(len(first), receiver.n_layers, receiver.n_heads, n_random, seed))})
    with autocast(model_device(receiver.model), bf16):
        out, prob = cmap_sets(receiver, donor, test.ids, test.correct, test.wrong, all_sets, test.last,
                              every_position=every_position, with_probability=True)
    rows = []
    for name, v in out.items():
        k, n = int(v.sum()), len(v)
        lo, hi = wilson_ci(k, n)
        label = {"A": "receiver alone", "B": "donor alone"}.get(name, name)
        rows.append({"patched": label, "heads": 0 if name in ("A", "B") else len(all_sets[name]),
                     "accuracy": k / n, "lo": lo, "hi": hi,
                     "moved": float("nan") if name in ("A", "B") else moved_share(v, out["A"], out["B"])})
    return (pd.DataFrame(rows), out, prob) if with_probability else (pd.DataFrame(rows), out)
