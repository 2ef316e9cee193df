"""Entity tracking's circuit (chapters 9-10): Prakash et al.'s four groups on this package's tools.

* **Counterfactual pairs** (:func:`helpers.tasks.entity.counterfactual_pairs`: another context,
  queried at another box) tokenised by :func:`entity_batch`, with each prompt's role positions
  found from its tokens (:func:`helpers.tasks.entity.role_positions`).
* **The search** (:func:`search_groups`), group by group as Prakash et al. do it
  (:func:`~helpers.interventions.path_patching.iterate_groups`), with :data:`GROUPS`:

  ======================  =================  ==============================================
  group                   senders at         receivers
  ======================  =================  ==============================================
  value fetchers          last token         the logits
  position transmitters   last token         the value fetchers' q at the last token
  position detectors      query label        the transmitters' v at the query label
  structure readers       earlier label      the detectors' v at the earlier label
  ======================  =================  ==============================================

  ("earlier label": the query label's occurrence in the context.)  Score of a path: the share of
  the counterfactual's drop of the **choice margin** (the correct object's logit minus the mean
  logit of the context's other objects, :class:`~helpers.interventions.metrics.ChoiceMargin`) that
  the path alone makes (:func:`~helpers.interventions.path_patching.flip_share`; -1: all of it).
  *Deviation from Prakash et al.*, whose score is ``(p_patched - p_clean) / p_clean`` of the
  correct object: a model taught the task is sure of its answers (p near 1 on most prompts), and
  there a path that moves the correct object's logit by a unit changes p by well under 1%, so the
  probability score ranks heads by the few unsure prompts; the margin is linear in the logits and
  does not saturate (chapter 7 met the same problem on the decision task).  Selection:
  the `keep` most negative scores per group (their fixed count), each strictly negative (a sender
  with no path scores exactly 0).
* **The circuit** (:func:`circuit_of`): each group's heads kept at its senders' position role,
  evaluated by :func:`~helpers.interventions.circuits.evaluate_circuit` (every other head
  mean-ablated at every position, means per position over reference prompts of the same box count).

Search results are cached by their config (:func:`helpers.core.cache.cached`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from helpers.core.cache import cached
from helpers.core.errors import ParameterError
from helpers.interventions.cmap import moved_share
from helpers.interventions.circuits import Circuit, Group as CircuitGroup
from helpers.interventions.metrics import ChoiceMargin
from helpers.interventions.path_patching import Group, flip_share, iterate_groups
from helpers.models.arch import Arch
from helpers.tasks.base import CounterfactualPair, pair_token_ids
from helpers.tasks.entity import ROLES, EntityTrial, answer_ids, object_ids, role_positions

if TYPE_CHECKING:
    import pandas as pd

# group -> (sender role, receiver point, receiver role)
GROUPS = {
    "value fetchers": ("last", "logits", None),
    "position transmitters": ("last", "q", "last"),
    "position detectors": ("query label", "v", "query label"),
    "structure readers": ("earlier label", "v", "earlier label"),
}
SEARCH_VERSION = 2          # 2: the choice-margin flip share replaced the relative change of p

Head = tuple[int, int]


@dataclass
class EntityBatch:
    """Clean and counterfactual prompts tokenised (one token length), the clean answers' token ids,
    the token ids of each clean context's other objects ``(n, boxes - 1)``, and each clean prompt's
    role positions (``role -> (n,)``)."""
    pairs: list[CounterfactualPair]
    ids: torch.Tensor
    cf_ids: torch.Tensor
    correct: torch.Tensor
    others: torch.Tensor
    positions: dict[str, torch.Tensor]

    def first(self, n: int) -> "EntityBatch":
        return EntityBatch(self.pairs[:n], self.ids[:n], self.cf_ids[:n], self.correct[:n], self.others[:n],
                           {r: p[:n] for r, p in self.positions.items()})

    def metric(self) -> ChoiceMargin:
        """The choice margin of the clean answers (module docstring)."""
        return ChoiceMargin(self.correct, self.others)


def prompts_positions(tokenizer, trials: Sequence[EntityTrial], device=None) -> dict[str, torch.Tensor]:
    """``role -> (n,)`` token positions of :data:`helpers.tasks.entity.ROLES` in each trial."""
    roles = [role_positions(tokenizer, t) for t in trials]
    return {r: torch.tensor([rp.role(r) for rp in roles], device=device or "cpu") for r in ROLES}


def entity_batch(tokenizer, pairs: Sequence[CounterfactualPair], device=None) -> EntityBatch:
    """:class:`EntityBatch` of `pairs` (every prompt of one token length, or
    :class:`~helpers.core.errors.ParameterError` naming the first that is not)."""
    pairs = list(pairs)
    ids, cf = pair_token_ids(tokenizer, pairs)
    dev = device or "cpu"
    clean = [p.clean for p in pairs]
    correct = torch.as_tensor(answer_ids(tokenizer, clean), device=dev)
    objects = object_ids(tokenizer, clean)
    keep = np.arange(objects.shape[1])[None, :] != np.array([t.query_index for t in clean])[:, None]
    others = torch.as_tensor(objects[keep].reshape(len(clean), -1), device=dev)
    return EntityBatch(pairs, ids.to(dev), cf.to(dev), correct, others, prompts_positions(tokenizer, clean, dev))


@torch.no_grad()
def margins(arch: Arch, batch: EntityBatch) -> tuple[np.ndarray, np.ndarray]:
    """The clean answer's choice margin per pair on the clean and on the counterfactual prompts."""
    from helpers.interventions.patching import last_logits
    m = batch.metric()
    last = batch.positions["last"]
    return tuple(m(last_logits(arch, arch.residual_streams(ids)[-1], last)).float().cpu().numpy()
                 for ids in (batch.ids, batch.cf_ids))


def search_groups(arch: Arch, batch: EntityBatch, keep: int, groups: Sequence[str] = tuple(GROUPS)) -> dict:
    """Path patching group by group (module docstring), `keep` heads at most per group: per group,
    the kept heads and every sender's score (share of the margin's flip); the clean and
    counterfactual margins.  Stops at a group that keeps no head."""
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups or groups[0] != "value fetchers":
        raise ParameterError(f"groups={list(groups)!r} are not accepted: accepted are names from {list(GROUPS)}, "
                             "in order, starting with 'value fetchers'")
    specs = []
    for name in groups:
        sender, point, receiver = GROUPS[name]
        specs.append(Group(name, batch.positions[sender], point, keep=keep, threshold=np.nextafter(0.0, -1.0),
                           receiver_positions=None if receiver is None else batch.positions[receiver]))
    clean, cf = margins(arch, batch)
    results = iterate_groups(arch, batch.ids, batch.cf_ids, batch.correct, specs, last=batch.positions["last"],
                             metric=batch.metric(), score=lambda res: flip_share(res.patched, clean, cf))
    out = {r.group.name: {"heads": [list(h) for h in r.heads], "scores": r.result.scores} for r in results}
    out["clean_margin"], out["cf_margin"] = clean, cf
    out["n_pairs"] = int(batch.ids.shape[0])
    return out


def search_circuit(arch: Arch, batch: EntityBatch, keep: int, run_key: str, bf16: bool = False) -> dict:
    """:func:`search_groups`, cached by the run's key, the prompts, `keep` and the precision."""
    from helpers.core.device import autocast, model_device
    config = {"version": SEARCH_VERSION, "run": run_key, "keep": int(keep), "bf16": bool(bf16),
              "pairs": [[p.clean.prompt, p.counterfactual.prompt] for p in batch.pairs]}

    def compute():
        with autocast(model_device(arch.model), bf16):
            return search_groups(arch, batch, keep)
    return cached("entity-circuit", config, compute)


def circuit_of(search: dict) -> Circuit:
    """The circuit of a search: each group that kept a head, at its senders' position role."""
    return Circuit([CircuitGroup(name, GROUPS[name][0], [tuple(h) for h in search[name]["heads"]])
                    for name in GROUPS if name in search and search[name]["heads"]])


def search_table(search: dict) -> "pd.DataFrame":
    """One row per kept head: group, layer, head, score, rank."""
    import pandas as pd
    rows = []
    for name in GROUPS:
        if name not in search:
            continue
        for rank, (l, h) in enumerate(search[name]["heads"], 1):
            rows.append({"group": name, "layer": l, "head": h, "score": float(search[name]["scores"][l, h]),
                         "rank": rank})
    return pd.DataFrame(rows, columns=["group", "layer", "head", "score", "rank"])


@dataclass
class EvalPrompts:
    """Trials tokenised for circuit evaluation and CMAP: ids (one token length), role positions,
    the correct object's token id."""
    trials: list[EntityTrial]
    ids: torch.Tensor
    positions: dict[str, torch.Tensor]
    correct: torch.Tensor

    @property
    def query_index(self) -> np.ndarray:
        """The box each prompt queries (0-based), for the entity gate's accuracy per query position."""
        return np.array([t.query_index for t in self.trials], dtype=int)


def eval_prompts(tokenizer, trials: Sequence[EntityTrial], device=None) -> EvalPrompts:
    from helpers.models.scoring import encode_prompts
    seqs = encode_prompts(tokenizer, [t.prompt for t in trials])
    if len({len(s) for s in seqs}) != 1:
        raise ParameterError("the prompts have different token lengths: evaluate one box count at a time")
    dev = device or "cpu"
    return EvalPrompts(list(trials), torch.tensor(seqs, device=dev), prompts_positions(tokenizer, trials, dev),
                       torch.as_tensor(answer_ids(tokenizer, trials), device=dev))


def evaluate(arch: Arch, circuit: Circuit, test: EvalPrompts, reference: EvalPrompts, n_random: int,
             seed: int = 0, minimality: bool = True, bf16: bool = False, ablation: str = "mean"):
    """The circuit on held-out prompts (top-1 accuracy over the vocabulary, Prakash's metric), every
    other head mean-ablated at every position with means over `reference` (or zero-ablated:
    `ablation`, :func:`~.circuits.ablated_means`); `n_random` random circuits of the same group
    sizes; minimality."""
    from helpers.core.device import autocast, model_device
    from helpers.interventions.circuits import ablated_means, circuit_means, evaluate_circuit
    with autocast(model_device(arch.model), bf16):
        means = ablated_means(circuit_means(arch, reference.ids, reference.positions["last"], reference.positions),
                              ablation)
        return evaluate_circuit(arch, test.ids, test.positions, circuit, means, test.correct,
                                last=test.positions["last"], n_random=n_random, seed=seed,
                                minimality=minimality and circuit.size > 0)


def seeds_correct(first, runs, test: EvalPrompts, reference: EvalPrompts, device=None, bf16: bool = False):
    """Per-prompt top-1 correctness of several training seeds of one model on `test`:
    ``(seeds, prompts)``, the first row `first` (the seed already evaluated), then each of `runs`
    (finished runs of the other seeds) loaded one at a time and scored as :func:`evaluate` scores
    the full model."""
    rows = [np.asarray(first, dtype=bool)]
    for run in runs:
        model = run.load_model()[0].to(device if device is not None else "cpu").eval()
        rows.append(np.asarray(evaluate(Arch(model), Circuit.empty(), test, reference, 0, minimality=False,
                                        bf16=bf16).model_correct, dtype=bool))
        del model
    return np.stack(rows)


# ---- DCM on entity tracking -----------------------------------------------------------------------

def dcm_batch(tokenizer, triples: Sequence[tuple[EntityTrial, EntityTrial, str]], role: str, device=None):
    """:class:`~helpers.interventions.dcm.Pairs` from :func:`helpers.tasks.entity.dcm_pairs`
    triples for a group at position `role` (:data:`helpers.tasks.entity.ROLES`): base and source
    prompts, the role's position in each (they differ when the role is the earlier label), the
    target object's token id."""
    from helpers.interventions.dcm import Pairs
    from helpers.models.scoring import encode_prompts
    if role not in ROLES:
        raise ParameterError(f"role={role!r} is not accepted: accepted values are {list(ROLES)}")
    base = encode_prompts(tokenizer, [b.prompt for b, _, _ in triples])
    src = encode_prompts(tokenizer, [s.prompt for _, s, _ in triples])
    if len({len(x) for x in base + src}) != 1:
        raise ParameterError("DCM pairs of different token lengths: use one box count")
    dev = device or "cpu"
    pos_b = prompts_positions(tokenizer, [b for b, _, _ in triples], dev)[role]
    pos_s = prompts_positions(tokenizer, [s for _, s, _ in triples], dev)[role]
    targets = []
    for _, _, t in triples:
        ids = tokenizer.encode(t, add_special_tokens=False)
        if len(ids) != 1:
            raise ParameterError(f"target {t!r} is {len(ids)} tokens: entity tracking needs one-token objects")
        targets.append(ids[0])
    return Pairs(torch.tensor(base, device=dev), torch.tensor(src, device=dev), pos_b, pos_s,
                 torch.tensor(targets, device=dev))


def dcm_groups(arch: Arch, tokenizer, circuit: Circuit, cfg, trials: Sequence[EntityTrial], n_pairs: int,
               epochs: int, batch_size: int = 16, seed: int = 0, bf16: bool = False) -> "pd.DataFrame":
    """DCM on each group of `circuit` (at its position role) for each desideratum of
    :data:`helpers.tasks.entity.DESIDERATA`: `n_pairs` pairs (the same bases and sources for every
    desideratum, each with its target), split 50/25/25 into training, evaluation and test.  One
    row per group, desideratum and head: ``selected`` (its kept rounded mask is 0) and the
    desideratum's accuracies."""
    import pandas as pd
    from helpers.core.device import autocast, model_device
    from helpers.core.progress import bar
    from helpers.interventions.dcm import split_pairs, train_dcm
    from helpers.tasks.entity import DESIDERATA, dcm_pairs
    dev = model_device(arch.model)
    rows = []
    jobs = [(g, d) for g in circuit.groups for d in DESIDERATA]
    for g, d in bar(jobs, desc="DCM", leave=False):
        pairs = dcm_batch(tokenizer, dcm_pairs(cfg, trials, d, n_pairs, seed), g.position, dev)
        train, evalp, test = split_pairs(pairs, seed=seed)
        with autocast(dev, bf16):
            res = train_dcm(arch, sorted(g.heads), train, evalp, test, epochs=epochs, batch_size=batch_size,
                            seed=seed)
        before = float(res.evals["eval_accuracy"].iloc[0])
        for l, h in res.group:
            rows.append({"group": g.name, "desideratum": d, "layer": l, "head": h, "selected": (l, h) in res.heads,
                         "eval accuracy before": before, "eval accuracy": res.eval_accuracy,
                         "test accuracy": res.test_accuracy, "test lo": res.test_accuracy_ci[0],
                         "test hi": res.test_accuracy_ci[1], "pairs": len(pairs)})
    return pd.DataFrame(rows)


# ---- CMAP on entity tracking ----------------------------------------------------------------------

@torch.no_grad()
def cmap_sets(a: Arch, b: Arch, prompts: EvalPrompts, circuit: Circuit, n_random: int, seed: int = 0,
              bf16: bool = False, with_probability: bool = False, every_position: bool = False):
    """Cross-model activation patching (Prakash et al.): model A on `prompts` with some heads'
    outputs ``z``, each at its group's position role, taken from model B on the same prompts.
    Per prompt, 1.0 where A's top-1 token is then the correct object (Prakash's accuracy), for:
    ``"A"`` and ``"B"`` alone, ``"circuit"`` (every group), each group alone (by its name), and
    ``"random i"`` (`n_random` random circuits with the same number of heads per group,
    :func:`~helpers.interventions.circuits.random_circuits`).  All sets run in one batched
    :func:`~helpers.interventions.patching.generic_patch` call.  With `with_probability`, returns
    two such dicts from the same pass: the outcomes, and the probability of the correct object (the
    alternative metric of the verdicts' robustness).  With `every_position`, every group's heads are
    patched at every position instead of their position role (the alternative patch of the
    verdicts' robustness, in the sense of Zhang & Nanda 2024 on token positions)."""
    from helpers.core.device import autocast, model_device
    from helpers.interventions.circuits import ALL, random_circuits
    from helpers.interventions.cmap import check_same_shape
    from helpers.interventions.metrics import Accuracy, Prob, Stacked
    from helpers.interventions.patching import generic_patch, heads_components, last_logits, record
    check_same_shape(a, b)
    sets: dict[str, Circuit] = {"circuit": circuit}
    sets.update({g.name: Circuit([g]) for g in circuit.groups})
    if circuit.size:
        sets.update({f"random {i}": c for i, c in
                     enumerate(random_circuits(circuit, a.n_layers, a.n_heads, n_random, seed=seed))})
    ids, last = prompts.ids, prompts.positions["last"]
    metric = Stacked(Accuracy(prompts.correct), Prob(prompts.correct))
    with autocast(model_device(a.model), bf16):
        cache = record(b, ids, {("z", l) for c in sets.values() for l, _ in c.heads})
        out = {"A": metric(last_logits(a, a.residual_streams(ids)[-1], last)).float().cpu().numpy(),
               "B": metric(last_logits(b, b.residual_streams(ids)[-1], last)).float().cpu().numpy()}
        patches = [[comp for g in c.groups for comp in
                    heads_components(sorted(g.heads), "z", None if every_position or g.position == ALL
                                     else prompts.positions[g.position])]
                   for c in sets.values()]
        vals = generic_patch(a, ids, cache, patches, metric, last)
    out.update({name: vals[i] for i, name in enumerate(sets)})
    outcomes = {k: v[..., 0] for k, v in out.items()}
    return (outcomes, {k: v[..., 1] for k, v in out.items()}) if with_probability else outcomes


def cmap_table(outcomes: dict[str, np.ndarray], circuit: Circuit) -> "pd.DataFrame":
    """One row per patched set of :func:`cmap_sets` (circuit, each group, the random circuits'
    mean): heads, accuracy with its Wilson interval, and the share of B's advantage over A that
    moved (NaN when B is not better than A)."""
    import pandas as pd
    from helpers.stats.intervals import wilson_ci
    a, b = outcomes["A"], outcomes["B"]
    rows = []

    def row(name, heads, x):
        lo, hi = wilson_ci(int(round(float(np.sum(x)))), len(x))
        rows.append({"patched": name, "heads": heads, "accuracy": float(np.mean(x)), "lo": lo, "hi": hi,
                     "moved": moved_share(x, a, b)})
    row("nothing (receiver alone)", 0, a)
    row("circuit", circuit.size, outcomes["circuit"])
    for g in circuit.groups:
        row(g.name, len(g.heads), outcomes[g.name])
    randoms = [v for k, v in outcomes.items() if k.startswith("random ")]
    if randoms:
        row(f"random circuits (mean of {len(randoms)})", circuit.size, np.mean(randoms, axis=0))
    row("everything (donor alone)", float("nan"), b)
    return pd.DataFrame(rows)


def find_circuit(arch: Arch, tokenizer, cfg, pool: Sequence[EntityTrial], n_pairs: int, keep: int, run_key: str,
                 bf16: bool = False, seed: int = 0, device=None) -> tuple[EntityBatch, dict]:
    """What chapters 9 and 10 start from: counterfactual pairs of the first `n_pairs` trials of
    `pool` (:func:`helpers.tasks.entity.counterfactual_pairs` with `cfg`, `seed`) and the cached
    search on them (:func:`search_circuit`): chapter 10 reads the circuit chapter 9 found."""
    from helpers.tasks.entity import counterfactual_pairs
    batch = entity_batch(tokenizer, counterfactual_pairs(cfg, list(pool)[:n_pairs], seed=seed), device)
    return batch, search_circuit(arch, batch, keep, run_key, bf16)


def dcm_summary(rows: "pd.DataFrame") -> "pd.DataFrame":
    """One row per group and desideratum of :func:`dcm_groups`: the group's heads, how many DCM
    selected, and the test accuracy (how often the patched model gives the target) with its
    interval.  Empty (with these columns) when there was no group."""
    import pandas as pd
    columns = ["group", "desideratum", "heads", "selected", "test_accuracy", "lo", "hi", "pairs"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    return (rows.groupby(["group", "desideratum"], sort=False)
            .agg(heads=("head", "size"), selected=("selected", "sum"), test_accuracy=("test accuracy", "first"),
                 lo=("test lo", "first"), hi=("test hi", "first"), pairs=("pairs", "first"))
            .reset_index()[columns])
