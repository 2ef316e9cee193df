"""Circuit evaluation by mean-ablation (Wang et al. 2023, as Prakash et al. 2024 use it).

A :class:`Circuit` is a set of head groups; each group has a *role* name (Prakash's A, B, C, D:
value fetchers, position transmitters, ...) and the token *position role* where its heads are kept
(``"last"``, ``"query"``, ...; :data:`ALL` keeps them at every position).  Positions are given per
prompt, ``positions[role]`` a ``(batch,)`` tensor of token indices, because they differ between
prompts.

:func:`evaluate_circuit` runs the model with **every head mean-ablated at every position, except
the circuit's heads at their group's positions**, which keep their own output.  A head that is in
two groups is kept at both groups' positions.

Means (:func:`circuit_means`).  The book's ablation replaces a head's ``z`` by its mean over
reference prompts *position by position*.  Prompts of different lengths are aligned as follows:

* at a prompt's **role positions** (the roles given to :func:`circuit_means`, e.g. the query label,
  the last token) the replacement is the mean of the head's ``z`` over the reference prompts at
  *their* position of that role (aligned by role);
* at every **other position** ``t`` it is the mean over the reference prompts that reach ``t``
  (aligned by absolute position; right padding is never averaged in).

When all prompts share one length and the same role offsets (the entity-tracking prompts do), both
are the book's per-position mean (:func:`helpers.interventions.ablation.head_means`).  A prompt
position no reference prompt reaches is an error.  Two roles at one position of one prompt are an
error too (which role's mean to use would be ambiguous).

Statistics (the book's policy, :mod:`helpers.stats`):

* accuracies (argmax of the next-token logits at the last position == the correct token) with
  Wilson intervals;
* faithfulness = circuit accuracy / full-model accuracy, with a BCa bootstrap interval over prompts,
  resampling each prompt's pair (circuit correct, model correct) together (a paired bootstrap of the
  ratio, :func:`helpers.stats.bootstrap.bootstrap_ci`);
* random circuits: the same number of heads in each group, each group's heads drawn *without*
  replacement from all ``n_layers * n_heads`` heads, groups drawn independently, draw ``i`` from
  ``numpy.random.default_rng([seed, i])`` (groups in name order, so the draws do not depend on the
  order in which the circuit was written); their faithfulness' mean, standard deviation and range;
* minimality: for each (group, head) entry the circuit is evaluated without it; the drop of
  accuracy (circuit - circuit without the head, the same prompts) gets Newcombe's paired interval
  (:func:`helpers.stats.intervals.paired_diff_ci`) at the Bonferroni level over the circuit's
  entries (simultaneous intervals, the policy for a family of heads).  Rule: an entry is
  ``"needed"`` when the whole interval is above 0, ``"harmful"`` when it is below 0 (the circuit
  is more accurate without it), and ``"no effect"`` otherwise: its removal changes nothing beyond
  noise.  Entries that are not ``"needed"`` are *flagged*.  (Prakash et al. instead keep a head if
  removing it with its best partners costs at least 1%; their pair loop has bugs, see the note.)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch

from helpers.core.errors import ParameterError
from helpers.interventions.metrics import ForcedChoice
from helpers.models.arch import Arch

ALL = "all"
"""The position role of a group whose heads are kept at every position."""

Head = tuple[int, int]


# ---- circuits --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Group:
    """Heads of one role, kept at the token position of role `position` (or :data:`ALL`)."""
    name: str
    position: str
    heads: frozenset[Head]

    def __post_init__(self):
        object.__setattr__(self, "heads", frozenset((int(l), int(h)) for l, h in self.heads))


class Circuit:
    """Head groups; the order of groups and of heads within a group does not matter.

    ``Circuit({"value fetchers": ("last", [(12, 3), (14, 0)]), "detectors": ("query", [...])})``
    """

    def __init__(self, groups: Mapping[str, tuple[str, Iterable[Head]]] | Iterable[Group] = ()):
        if isinstance(groups, Mapping):
            groups = [Group(name, pos, frozenset(heads)) for name, (pos, heads) in groups.items()]
        groups = list(groups)
        names = [g.name for g in groups]
        if len(set(names)) != len(names):
            raise ValueError(f"group names must be distinct: got {names}")
        self.groups: tuple[Group, ...] = tuple(sorted(groups, key=lambda g: g.name))

    @classmethod
    def all_heads(cls, n_layers: int, n_heads: int, position: str = ALL, name: str = "all") -> "Circuit":
        return cls({name: (position, [(l, h) for l in range(n_layers) for h in range(n_heads)])})

    @classmethod
    def empty(cls) -> "Circuit":
        return cls([])

    @property
    def heads(self) -> set[Head]:
        return set().union(*(g.heads for g in self.groups)) if self.groups else set()

    @property
    def sizes(self) -> dict[str, int]:
        return {g.name: len(g.heads) for g in self.groups}

    @property
    def size(self) -> int:
        """Number of (group, head) entries."""
        return sum(self.sizes.values())

    def entries(self) -> list[tuple[str, Head]]:
        """(group name, head) pairs in a canonical order."""
        return [(g.name, hd) for g in self.groups for hd in sorted(g.heads)]

    def without(self, group: str, head: Head) -> "Circuit":
        if group not in {g.name for g in self.groups}:
            raise ValueError(f"no group {group!r} in this circuit: groups are {[g.name for g in self.groups]}")
        return Circuit([Group(g.name, g.position, g.heads - {tuple(head)}) if g.name == group else g
                        for g in self.groups])

    def roles(self) -> set[str]:
        return {g.position for g in self.groups if g.position != ALL}

    def __eq__(self, other):
        return isinstance(other, Circuit) and self.groups == other.groups

    def __hash__(self):
        return hash(self.groups)

    def __repr__(self):
        parts = [f"{g.name!r}: ({g.position!r}, {sorted(g.heads)})" for g in self.groups]
        return "Circuit({" + ", ".join(parts) + "})"


def random_circuits(circuit: Circuit, n_layers: int, n_heads: int, n_draws: int = 10,
                    seed: int = 0) -> list[Circuit]:
    """Circuits with the same groups, positions and number of heads per group, each group's heads
    drawn without replacement from all heads; draw ``i`` uses ``default_rng([seed, i])``."""
    every = [(l, h) for l in range(n_layers) for h in range(n_heads)]
    out = []
    for i in range(n_draws):
        rng = np.random.default_rng([seed, i])
        groups = []
        for g in circuit.groups:
            if len(g.heads) > len(every):
                raise ValueError(f"group {g.name!r} has {len(g.heads)} heads; the model has {len(every)}")
            pick = rng.choice(len(every), size=len(g.heads), replace=False)
            groups.append(Group(g.name, g.position, frozenset(every[j] for j in pick)))
        out.append(Circuit(groups))
    return out


# ---- means -----------------------------------------------------------------------------------

@dataclass
class CircuitMeans:
    """Mean ``z`` of every head over reference prompts: per absolute position (``by_pos[l]``:
    ``(pos, n_heads, d_head)``, over the prompts that reach the position; ``count[t]`` of them)
    and per role (``by_role[role][l]``: ``(n_heads, d_head)``, at each prompt's role position)."""
    by_pos: list[torch.Tensor]
    count: torch.Tensor
    by_role: dict[str, list[torch.Tensor]] = field(default_factory=dict)


ABLATIONS = ("mean", "zero")


def ablated_means(means: CircuitMeans, ablation: str = "mean") -> CircuitMeans:
    """What the heads outside a circuit are replaced by: their mean over reference prompts
    (``"mean"``, the book's choice, as Prakash et al.) or zero (``"zero"``, the alternative the
    verdicts' robustness is checked against: Miller et al. 2024; Zhang & Nanda 2024)."""
    if ablation == "mean":
        return means
    if ablation == "zero":
        return CircuitMeans([torch.zeros_like(t) for t in means.by_pos], means.count,
                            {r: [torch.zeros_like(t) for t in ts] for r, ts in means.by_role.items()})
    raise ParameterError(f"ablation={ablation!r} is not accepted: accepted values are {list(ABLATIONS)}")


def _as_arch(model) -> Arch:
    return model if isinstance(model, Arch) else Arch(model)


def _last_of(ids: torch.Tensor, last) -> torch.Tensor:
    if last is None:
        return torch.full((ids.shape[0],), ids.shape[1] - 1, dtype=torch.long, device=ids.device)
    return torch.as_tensor(last, dtype=torch.long, device=ids.device)


def _positions_of(positions: Mapping[str, Sequence[int]] | None, ids: torch.Tensor,
                  last: torch.Tensor) -> dict[str, torch.Tensor]:
    out = {}
    for role, pos in (positions or {}).items():
        if role == ALL:
            raise ValueError(f"{ALL!r} is reserved for groups kept at every position; it cannot name a position role")
        p = torch.as_tensor(pos, dtype=torch.long, device=ids.device)
        if p.shape != (ids.shape[0],):
            raise ValueError(f"positions[{role!r}] has shape {tuple(p.shape)}; expected one position per prompt ({ids.shape[0]},)")
        if (p < 0).any() or (p > last).any():
            raise ValueError(f"positions[{role!r}] lie outside their prompts (0..last)")
        out[role] = p
    return out


@torch.no_grad()
def circuit_means(model, ids: torch.Tensor, last=None, positions: Mapping[str, Sequence[int]] | None = None,
                  batch_size: int = 64) -> CircuitMeans:
    """Means of every head's ``z`` over the reference prompts `ids` (right-padded, ``last`` the
    index of each prompt's last token; default: all of ``ids``' length), per position and per role
    of `positions` (``role -> (batch,)`` token indices)."""
    arch = _as_arch(model)
    last = _last_of(ids, last)
    pos = _positions_of(positions, ids, last)
    B, T = ids.shape
    L, H, D = arch.n_layers, arch.n_heads, arch.d_head
    sums = [torch.zeros(T, H, D, dtype=torch.float64, device=ids.device) for _ in range(L)]
    role_sums = {r: [torch.zeros(H, D, dtype=torch.float64, device=ids.device) for _ in range(L)] for r in pos}
    count = torch.zeros(T, dtype=torch.float64, device=ids.device)
    for start in range(0, B, batch_size):
        rows = slice(start, start + batch_size)
        lst = last[rows]
        valid = (torch.arange(T, device=ids.device)[None, :] <= lst[:, None]).to(torch.float64)   # (b, T)
        count += valid.sum(0)
        r_idx = torch.arange(lst.shape[0], device=ids.device)

        def grab(layer):
            def fn(z):
                z = z.to(torch.float64)
                sums[layer] += torch.einsum("bt,bthd->thd", valid, z)
                for r, p in pos.items():
                    role_sums[r][layer] += z[r_idx, p[rows]].sum(0)
            return fn
        with arch.hooks({("z", l): grab(l) for l in range(L)}):
            arch.base(input_ids=ids[rows])
    dtype = next(arch.model.parameters()).dtype
    by_pos = [(s / count.clamp(min=1)[:, None, None]).to(dtype) for s in sums]
    by_role = {r: [(s / B).to(dtype) for s in ls] for r, ls in role_sums.items()}
    return CircuitMeans(by_pos, count.to(torch.long), by_role)


def _replacement(means: CircuitMeans, layer: int, last: torch.Tensor, pos: dict[str, torch.Tensor],
                 T: int) -> torch.Tensor:
    """The mean-ablated ``z`` of one layer for a batch: ``(batch, T, n_heads, d_head)``."""
    B = last.shape[0]
    m = means.by_pos[layer]
    if m.shape[0] < T:
        m = torch.cat([m, m.new_zeros((T - m.shape[0],) + tuple(m.shape[1:]))])
    rep = m[:T].unsqueeze(0).expand(B, -1, -1, -1).clone()
    rows = torch.arange(B, device=last.device)
    for role, p in pos.items():
        if role in means.by_role:
            rep[rows, p] = means.by_role[role][layer].to(rep.dtype)
    return rep


def _check_means_cover(means: CircuitMeans, last: torch.Tensor, pos: dict[str, torch.Tensor]) -> None:
    T_ref = means.count.shape[0]
    covered = torch.zeros(int(last.max()) + 1, dtype=torch.bool, device=last.device)
    n = min(T_ref, covered.shape[0])
    covered[:n] = means.count[:n].to(last.device) > 0
    # a position needs a per-position mean unless it is a role position with a role mean
    T = covered.shape[0]
    need = torch.arange(T, device=last.device)[None, :] <= last[:, None]          # (B, T)
    rows = torch.arange(last.shape[0], device=last.device)
    for role, p in pos.items():
        if role in means.by_role:
            need[rows, p] = False
    bad = need & ~covered[None, :]
    if bad.any():
        t = int(bad.nonzero()[0, 1])
        raise ValueError(f"no reference prompt reaches position {t}: mean-ablation needs reference prompts at least as long as these")
    roles = list(pos.values())
    for i in range(len(roles)):
        for j in range(i + 1, len(roles)):
            if (roles[i] == roles[j]).any():
                names = list(pos)
                raise ValueError(f"roles {names[i]!r} and {names[j]!r} share a position in some prompt; give each prompt distinct role positions")


def _kept(circuit: Circuit, layer: int, B: int, T: int, H: int, pos: dict[str, torch.Tensor],
          device) -> torch.Tensor:
    """(B, T, H) bool: where the circuit keeps a head of `layer`."""
    kept = torch.zeros(B, T, H, dtype=torch.bool, device=device)
    rows = torch.arange(B, device=device)
    for g in circuit.groups:
        hs = [h for (l, h) in g.heads if l == layer]
        if not hs:
            continue
        if g.position == ALL:
            kept[:, :, hs] = True
        else:
            if g.position not in pos:
                raise ValueError(f"group {g.name!r} is kept at position role {g.position!r}, which `positions` does not give; given roles: {sorted(pos)}")
            for h in hs:
                kept[rows, pos[g.position], h] = True
    return kept


# ---- running circuits --------------------------------------------------------------------------

def _metric(arch: Arch, hidden: torch.Tensor, last: torch.Tensor, correct: torch.Tensor,
            wrong: torch.Tensor | None = None):
    h = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    logits = arch.model.get_output_embeddings()(h).float()
    if wrong is None:
        right = logits.argmax(-1) == correct
    else:
        right = (ForcedChoice(correct, wrong)(logits) > 0).to(correct.device)
    p = torch.softmax(logits, -1)[torch.arange(len(correct), device=logits.device), correct]
    return right, p


@torch.no_grad()
def run_circuit(model, ids: torch.Tensor, positions: Mapping[str, Sequence[int]], circuit: Circuit | None,
                means: CircuitMeans | None, correct_ids, last=None,
                batch_size: int = 64, wrong_ids=None) -> tuple[np.ndarray, np.ndarray]:
    """Per prompt: (is the argmax at the last position the correct token, probability of the
    correct token), with every head outside `circuit` mean-ablated.  ``circuit=None``: the full
    model, nothing ablated.  With `wrong_ids` (the other answer of a two-alternative task) a
    prompt is correct when the correct token's logit beats the wrong one's instead."""
    arch = _as_arch(model)
    last = _last_of(ids, last)
    pos = _positions_of(positions, ids, last)
    correct = torch.as_tensor(correct_ids, dtype=torch.long, device=ids.device)
    wrong = None if wrong_ids is None else torch.as_tensor(wrong_ids, dtype=torch.long, device=ids.device)
    if circuit is not None:
        if means is None:
            raise ValueError("evaluating a circuit needs `means` (from circuit_means on reference prompts)")
        _check_means_cover(means, last, pos)
    B, T = ids.shape
    rights, ps = [], []
    for start in range(0, B, batch_size):
        rows = slice(start, start + batch_size)
        b_last, b_pos = last[rows], {r: p[rows] for r, p in pos.items()}
        b = b_last.shape[0]
        fns = {}
        if circuit is not None:
            for l in range(arch.n_layers):
                rep = _replacement(means, l, b_last, b_pos, T)
                kept = _kept(circuit, l, b, T, arch.n_heads, b_pos, ids.device)

                def fn(z, rep=rep, kept=kept):
                    return torch.where(kept[..., None], z, rep.to(z.dtype))
                fns[("z", l)] = fn
        with arch.hooks(fns):
            hidden = arch.base(input_ids=ids[rows]).last_hidden_state
        r, p = _metric(arch, hidden, b_last, correct[rows], None if wrong is None else wrong[rows])
        rights.append(r.cpu())
        ps.append(p.cpu())
    return torch.cat(rights).numpy(), torch.cat(ps).double().numpy()


# ---- evaluation --------------------------------------------------------------------------------

def _ratio(pairs: np.ndarray, floor: float = 0.0) -> float:
    den = pairs[:, 1].mean() - floor
    return float((pairs[:, 0].mean() - floor) / den) if den > 0 else float("nan")


def faithfulness_ci(circuit_correct, model_correct, n_boot: int = 2000, seed: int = 0,
                    level: float = 0.95, floor: float = 0.0) -> tuple[float, float, float]:
    """Faithfulness ``(mean(circuit_correct) - floor) / (mean(model_correct) - floor)`` with a BCa
    bootstrap interval over prompts (each prompt's two outcomes resampled together): ``(ratio, lo,
    hi)``; nan when the full model is not above the floor.  With ``floor = 0`` it is the circuit's
    accuracy over the model's (Prakash et al.'s ratio); with the accuracy that a circuit blind to
    the task's input reaches (Wang et al. 2023's normalisation; Miller et al. 2024), it is the share
    of the model's performance *above what blindness gets* that the circuit recovers."""
    from helpers.stats.bootstrap import bootstrap_ci
    pairs = np.stack([np.asarray(circuit_correct, float), np.asarray(model_correct, float)], axis=1)
    est = _ratio(pairs, floor)
    if not np.isfinite(est):
        return est, float("nan"), float("nan")
    lo, hi = bootstrap_ci(pairs, lambda p: _ratio(p, floor), n_boot=n_boot, seed=seed, level=level)
    return est, lo, hi


@dataclass
class RandomBaseline:
    """Faithfulness of random circuits of the circuit's group sizes."""
    circuits: list[Circuit]
    faithfulness: np.ndarray
    accuracy: np.ndarray

    @property
    def mean(self) -> float:
        return float(np.mean(self.faithfulness))

    @property
    def sd(self) -> float:
        return float(np.std(self.faithfulness, ddof=1)) if len(self.faithfulness) > 1 else float("nan")

    @property
    def range(self) -> tuple[float, float]:
        return float(np.min(self.faithfulness)), float(np.max(self.faithfulness))


@dataclass
class CircuitEvaluation:
    circuit: Circuit
    n: int
    accuracy: float
    accuracy_ci: tuple[float, float]
    model_accuracy: float
    model_accuracy_ci: tuple[float, float]
    faithfulness: float
    faithfulness_ci: tuple[float, float]
    correct: np.ndarray            # (n,) circuit: argmax == correct token
    model_correct: np.ndarray      # (n,) full model
    p_correct: np.ndarray          # (n,) circuit: probability of the correct token
    model_p_correct: np.ndarray
    random: RandomBaseline | None = None
    minimality: object = None      # pandas.DataFrame, one row per (group, head) entry

    def summary(self) -> dict:
        out = {"n": self.n, "accuracy": self.accuracy, "accuracy_lo": self.accuracy_ci[0],
               "accuracy_hi": self.accuracy_ci[1], "model_accuracy": self.model_accuracy,
               "model_accuracy_lo": self.model_accuracy_ci[0], "model_accuracy_hi": self.model_accuracy_ci[1],
               "faithfulness": self.faithfulness, "faithfulness_lo": self.faithfulness_ci[0],
               "faithfulness_hi": self.faithfulness_ci[1], "heads": len(self.circuit.heads)}
        if self.random is not None:
            out.update(random_mean=self.random.mean, random_sd=self.random.sd,
                       random_min=self.random.range[0], random_max=self.random.range[1])
        return out


def evaluate_circuit(model, ids: torch.Tensor, positions: Mapping[str, Sequence[int]], circuit: Circuit,
                     mean_acts: CircuitMeans, correct_ids, last=None, *, n_random: int = 10, seed: int = 0,
                     minimality: bool = True, level: float = 0.95, n_boot: int = 2000,
                     batch_size: int = 64, wrong_ids=None, model_outcomes=None) -> CircuitEvaluation:
    """Accuracy of `circuit` (every other head mean-ablated at every position, its heads kept at
    their groups' positions) and of the full model on the prompts `ids` (right-padded; `last` the
    index of each prompt's last token), faithfulness with its interval, `n_random` random circuits
    of the same group sizes, and the minimality check (module docstring).  `wrong_ids`: see
    :func:`run_circuit` (two-alternative accuracy).  `model_outcomes`: the full model's
    ``run_circuit(..., circuit=None)`` on the same prompts, when it was already computed (several
    circuits evaluated on one set of prompts)."""
    from helpers.stats.intervals import wilson_ci, z_for
    arch = _as_arch(model)
    args = dict(last=last, batch_size=batch_size, wrong_ids=wrong_ids)
    model_correct, model_p = (run_circuit(arch, ids, positions, None, None, correct_ids, **args)
                              if model_outcomes is None else model_outcomes)
    correct, p = run_circuit(arch, ids, positions, circuit, mean_acts, correct_ids, **args)
    n = len(correct)
    z = z_for(level)
    f, f_lo, f_hi = faithfulness_ci(correct, model_correct, n_boot=n_boot, seed=seed, level=level)
    ev = CircuitEvaluation(circuit, n, float(correct.mean()), wilson_ci(int(correct.sum()), n, z),
                           float(model_correct.mean()), wilson_ci(int(model_correct.sum()), n, z),
                           f, (f_lo, f_hi), correct, model_correct, p, model_p)
    model_acc = model_correct.mean()
    if n_random:
        rcs = random_circuits(circuit, arch.n_layers, arch.n_heads, n_random, seed)
        accs = np.array([run_circuit(arch, ids, positions, rc, mean_acts, correct_ids, **args)[0].mean()
                         for rc in rcs])
        ev.random = RandomBaseline(rcs, accs / model_acc if model_acc > 0 else np.full(len(accs), np.nan), accs)
    if minimality and circuit.size:
        ev.minimality = minimality_table(arch, ids, positions, circuit, mean_acts, correct_ids, correct,
                                         model_acc, level=level, **args)
    return ev


def minimality_table(model, ids, positions, circuit: Circuit, mean_acts: CircuitMeans, correct_ids,
                     circuit_correct: np.ndarray, model_accuracy: float, last=None, level: float = 0.95,
                     batch_size: int = 64, wrong_ids=None):
    """One row per (group, head) entry: accuracy and faithfulness of the circuit without it, the
    accuracy drop with Newcombe's paired interval at the Bonferroni level over the entries, and
    its status (``needed`` / ``no effect`` / ``harmful``; ``flagged`` = not needed)."""
    import pandas as pd

    from helpers.stats.intervals import paired_diff_ci
    from helpers.stats.multiplicity import bonferroni_level
    entries = circuit.entries()
    lvl = bonferroni_level(level, len(entries))
    rows = []
    for group, (l, h) in entries:
        c, _ = run_circuit(model, ids, positions, circuit.without(group, (l, h)), mean_acts, correct_ids,
                           last=last, batch_size=batch_size, wrong_ids=wrong_ids)
        drop, lo, hi = paired_diff_ci(circuit_correct, c, level=lvl)
        status = "needed" if lo > 0 else ("harmful" if hi < 0 else "no effect")
        rows.append({"group": group, "layer": l, "head": h, "accuracy_without": float(c.mean()),
                     "faithfulness_without": float(c.mean() / model_accuracy) if model_accuracy > 0 else float("nan"),
                     "accuracy_drop": drop, "drop_lo": lo, "drop_hi": hi, "level": lvl, "status": status,
                     "flagged": status != "needed"})
    return pd.DataFrame(rows)
