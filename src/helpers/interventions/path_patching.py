"""Path patching (Wang et al. 2023), as Prakash et al. (2024) use it, exact and batched.

**Definition** (for one sender head ``(l_s, h_s)`` at the sender position ``p_s`` of each prompt):

1. Record every head's output ``z`` on the clean and on the counterfactual prompts.
2. Run the clean prompts with **every head of every layer frozen to its clean output** at every
   position, except the sender head at ``p_s``, which takes its counterfactual output.  **MLPs are
   not frozen** (they recompute from the patched residual stream), as in Prakash et al.'s code.
3. Receivers = the logits: the metric of run 2.  Receivers = the ``q``, ``k`` or ``v`` input of
   some heads (:class:`~helpers.models.arch.Arch`'s per-query-head hook points, so a receiver's
   k/v is patched in its own copy even when its key/value head is shared): run the clean prompts
   again, normally (nothing frozen), with only the receivers' ``q``/``k``/``v`` replaced by their
   values in run 2 at ``receiver_positions`` (default every position), and read the metric.

Score (Prakash et al.): ``(p_patched - p_clean) / p_clean`` of the correct token per prompt,
averaged over the prompts; negative: the path carries what the clean answer needs.

**Why it is cheap, and still exact.**  With every head frozen in run 2, the sender's change stays
at ``p_s``: attention, the only thing that moves information between positions, is frozen, and MLPs
act position by position.  So run 2 is computed on one position only: the sender's layer's
attention output at ``p_s`` with the sender's ``z`` swapped, then the MLPs of the following layers
with the clean attention outputs added.  In run 3 the receivers' ``q``/``k``/``v`` differ from
their clean values only at ``p_s``, so run 3 starts from the cached clean stream at the first
receiver layer.  Senders of one layer run together, stacked in the batch dimension, and only the
last position's logits are computed.  Receivers = the logits: a sender at a position other than the
last has no path (its patched metric is the clean one).  Receivers = heads: a sender at or above
every receiver's layer has no path either; neither is run.  :func:`path_patch_naive` is the
reference written the way ARENA's exercises do it (two full forward passes per sender with hooks).

**Circuit search** (:func:`iterate_groups`): group 1's receivers are the logits, group ``i``'s are
the heads kept in group ``i - 1`` (through group ``i``'s ``receiver_point``); each group keeps its
heads by :func:`select_heads`: the ``keep`` most negative scores (Prakash et al.: a fixed count per
group, no threshold), optionally only those with score ``<= threshold``.  A search may score
paths another way (``score``): :func:`flip_share` is the share of the counterfactual's change of a
non-saturating metric (a logit difference or :class:`~.metrics.ChoiceMargin`) that the path alone
makes, which the book uses where a model is so sure that the probability no longer moves.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from helpers.core.errors import ParameterError
from helpers.interventions.metrics import Prob
from helpers.interventions.patching import _last, last_logits, position_mask, record
from helpers.models.arch import QKV_POINTS, Arch

RECEIVER_POINTS = ("logits",) + QKV_POINTS


@dataclass
class PathPatchResult:
    scores: np.ndarray        # (n_layers, n_heads): mean (m_patched - m_clean) / m_clean; NaN: not a sender
    patched: np.ndarray       # (n_layers, n_heads, batch): the metric per prompt; NaN: not a sender
    clean: np.ndarray         # (batch,)
    receivers: object         # "logits" or a list of (layer, head)
    receiver_point: str

    def ranked(self) -> list[tuple[int, int, float]]:
        """Senders by score, most negative first: ``[(layer, head, score), ...]``."""
        L, H = np.nonzero(~np.isnan(self.scores))
        order = np.argsort(self.scores[L, H], kind="stable")
        return [(int(L[i]), int(H[i]), float(self.scores[L[i], H[i]])) for i in order]


def _check(arch: Arch, ids, cf_ids, sender_positions, receivers, receiver_point, senders):
    if cf_ids.shape != ids.shape:
        raise ParameterError(f"counterfactual prompts of shape {tuple(cf_ids.shape)} do not align with the "
                             f"clean prompts {tuple(ids.shape)}")
    B, T = ids.shape
    p = torch.as_tensor(sender_positions, device=ids.device).long()
    if p.dim() == 0:
        p = p.expand(B)
    if p.shape != (B,) or (p < 0).any() or (p >= T).any():
        raise ParameterError(f"sender_positions must be one position per prompt in 0..{T - 1}, shape ({B},)")
    if isinstance(receivers, str):
        if receivers != "logits":
            raise ParameterError(f"receivers={receivers!r}: accepted are 'logits' or a list of (layer, head)")
        receiver_point = "logits"
        receivers_l: list = []
    else:
        receivers_l = [(int(l), int(h)) for l, h in receivers]
        if not receivers_l:
            raise ParameterError("receivers is empty: give 'logits' or at least one (layer, head)")
        if receiver_point not in QKV_POINTS:
            raise ParameterError(f"receiver_point={receiver_point!r}: a receiver head is patched through one of "
                                 f"{QKV_POINTS}")
    for l, h in receivers_l + list(senders or []):
        if not (0 <= l < arch.n_layers and 0 <= h < arch.n_heads):
            raise ParameterError(f"head ({l}, {h}) is out of range: layers 0..{arch.n_layers - 1}, "
                                 f"heads 0..{arch.n_heads - 1}")
    if senders is None:
        senders = [(l, h) for l in range(arch.n_layers) for h in range(arch.n_heads)]
    return p, receivers_l, receiver_point, [(int(l), int(h)) for l, h in senders]


def _result(arch, senders, patched_of, clean, receivers, receiver_point) -> PathPatchResult:
    B = clean.shape[0]
    patched = np.full((arch.n_layers, arch.n_heads, B), np.nan)
    for (l, h), v in patched_of.items():
        patched[l, h] = v
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = ((patched - clean) / clean).mean(-1)
    return PathPatchResult(scores, patched, clean, receivers or "logits", receiver_point)


@torch.no_grad()
def path_patch(arch: Arch, ids: torch.Tensor, cf_ids: torch.Tensor, correct, sender_positions,
               receivers="logits", receiver_point: str = "q", receiver_positions=None,
               senders: Sequence[tuple[int, int]] | None = None, last=None, metric: Callable | None = None,
               max_rows: int = 128) -> PathPatchResult:
    """Path patching of every sender (default: every head) into `receivers` (see the module
    docstring): `ids`/`cf_ids` clean and counterfactual prompts (same shape), `correct` the correct
    token per prompt (the default metric is its probability, :class:`~.metrics.Prob`),
    `sender_positions` one position per prompt, `receivers` ``"logits"`` or ``[(layer, head), ...]``
    patched through `receiver_point` (``q``, ``k`` or ``v``) at `receiver_positions` (any form
    :func:`~.patching.position_mask` accepts; default every position)."""
    p, receivers_l, receiver_point, senders = _check(arch, ids, cf_ids, sender_positions, receivers,
                                                     receiver_point, senders)
    metric = Prob(correct) if metric is None else metric
    B, T = ids.shape
    L, H = arch.n_layers, arch.n_heads
    last = _last(ids, last)
    rows = torch.arange(B, device=ids.device)
    send_layers = sorted({l for l, _ in senders})

    # clean: the stream entering every layer, every head's z and every attention output
    zs, attn = {}, {}

    def keep(store, l):
        def fn(x):
            store[l] = x
        return fn
    fns = {("z", l): keep(zs, l) for l in range(L)}
    fns.update({("attn_out", l): keep(attn, l) for l in range(L)})
    with arch.hooks(fns):
        streams = arch.residual_streams(ids)
    z_cf = record(arch, cf_ids, [("z", l) for l in send_layers])
    clean = metric(last_logits(arch, streams[-1], last)).float().cpu().numpy()
    final_clean = streams[-1][rows, last]

    by_layer: dict[int, list[int]] = {}
    for l, h in receivers_l:
        by_layer.setdefault(l, []).append(h)
    top = max(by_layer, default=L)
    include = (position_mask(receiver_positions, B, T, ids.device)[rows, p] if receivers_l
               else torch.ones(B, dtype=torch.bool, device=ids.device))
    patched_of: dict[tuple[int, int], np.ndarray] = {}
    per_pass = max(1, max_rows // B)
    for ls in send_layers:
        heads_all = [h for l, h in senders if l == ls]
        if receivers_l and ls >= top:                      # no path: the patched run is the clean one
            for h in heads_all:
                patched_of[(ls, h)] = clean.copy()
            continue
        for c0 in range(0, len(heads_all), per_pass):
            heads = heads_all[c0:c0 + per_pass]
            S = len(heads)
            pr = p.repeat(S)
            # run 2 at the sender position only
            z = zs[ls][rows, p].repeat(S, 1, 1)                                    # (S*B, H, d_head)
            for k, h in enumerate(heads):
                z[k * B:(k + 1) * B, h] = z_cf[("z", ls)][rows, p, h]
            a = arch.out_proj(ls)(z.reshape(S * B, 1, H * arch.d_head))[:, 0]
            if arch.family == "gpt2":
                a = arch.attention(ls).resid_dropout(a)
            x = arch.mlp_block(ls, streams[ls][rows, p].repeat(S, 1) + a)           # entering ls + 1
            stage = {ls + 1: x}
            for l in range(ls + 1, L):
                x = arch.mlp_block(l, x + attn[l][rows, p].repeat(S, 1))
                stage[l + 1] = x
            if not receivers_l:
                at_last = (p == last).repeat(S)
                final = torch.where(at_last[:, None], stage[L], final_clean.repeat(S, 1))
                values = metric(arch.unembed(final).reshape(S, B, -1))
            else:
                values = _run3(arch, streams, stage, by_layer, receiver_point, ls, pr,
                               include.repeat(S), last.repeat(S), metric, S, B)
            for k, h in enumerate(heads):
                patched_of[(ls, h)] = values[k].float().cpu().numpy()
    return _result(arch, senders, patched_of, clean, receivers_l, receiver_point)


def _run3(arch: Arch, streams, stage, by_layer, point, ls, pr, include, last, metric, S, B):
    """The clean run with the receivers' q/k/v at each row's sender position set to run 2's."""
    L = arch.n_layers
    idx = QKV_POINTS.index(point)
    targets = {l: hs for l, hs in by_layer.items() if l > ls}
    start = min(targets)
    n = S * B
    rws = torch.arange(n, device=pr.device)[include]
    pos = pr[include]
    fns = {}
    for l, hs in targets.items():
        vals = arch.qkv(l, stage[l][:, None, :], pr[:, None])[idx][:, 0]        # (S*B, H, d_head)
        heads = torch.tensor(hs, device=pr.device)

        def edit(x, vals=vals, heads=heads):
            x = x.clone()
            x[rws[:, None], pos[:, None], heads[None, :]] = vals[rws][:, heads]
            return x
        fns[(point, l)] = edit
    hidden = streams[start].repeat(S, 1, 1)
    with arch.hooks(fns):
        if max(targets) < L - 1:
            hidden = arch.run_layers(hidden, start, L - 1)
            logits = arch.unembed(arch.last_layer_at(hidden, last))
        else:
            logits = last_logits(arch, arch.run_layers(hidden, start), last)
    return metric(logits.reshape(S, B, -1))


@torch.no_grad()
def path_patch_naive(arch: Arch, ids: torch.Tensor, cf_ids: torch.Tensor, correct, sender_positions,
                     receivers="logits", receiver_point: str = "q", receiver_positions=None,
                     senders: Sequence[tuple[int, int]] | None = None, last=None,
                     metric: Callable | None = None) -> PathPatchResult:
    """The reference, as ARENA's exercises write path patching: per sender, a full forward with
    every head's ``z`` frozen to its clean value (the sender's swapped at its position), recording
    the receivers' q/k/v; then a full forward patching them in.  Same arguments as
    :func:`path_patch`."""
    p, receivers_l, receiver_point, senders = _check(arch, ids, cf_ids, sender_positions, receivers,
                                                     receiver_point, senders)
    metric = Prob(correct) if metric is None else metric
    B, T = ids.shape
    L = arch.n_layers
    last = _last(ids, last)
    rows = torch.arange(B, device=ids.device)
    z_clean = record(arch, ids, [("z", l) for l in range(L)])
    z_cf = record(arch, cf_ids, [("z", l) for l in range(L)])

    def logits_of():
        return arch.model(input_ids=ids).logits[rows, last]
    clean = metric(logits_of()).float().cpu().numpy()
    rmask = position_mask(receiver_positions, B, T, ids.device)
    patched_of = {}
    for ls, hs in senders:
        def freeze(l):
            def fn(z):
                new = z_clean[("z", l)].clone()
                if l == ls:
                    new[rows, p, hs] = z_cf[("z", l)][rows, p, hs]
                return new
            return fn
        fns = {("z", l): freeze(l) for l in range(L)}
        captured = {}
        for l, _ in receivers_l:
            def grab(x, l=l):
                captured[l] = x.clone()
            fns[(receiver_point, l)] = grab
        with arch.hooks(fns):
            logits = logits_of()
        if receivers_l:
            def put(l, heads):
                def fn(x):
                    m = rmask[:, :, None].clone().expand(-1, -1, arch.n_heads).clone()
                    keep = torch.zeros(arch.n_heads, dtype=torch.bool, device=x.device)
                    keep[heads] = True
                    return torch.where((m & keep)[..., None], captured[l], x)
                return fn
            heads_of: dict[int, list[int]] = {}
            for l, h in receivers_l:
                heads_of.setdefault(l, []).append(h)
            with arch.hooks({(receiver_point, l): put(l, hh) for l, hh in heads_of.items()}):
                logits = logits_of()
        patched_of[(ls, hs)] = metric(logits).float().cpu().numpy()
    return _result(arch, senders, patched_of, clean, receivers_l, receiver_point)


# ---- circuit search, group by group ------------------------------------------------------------

def select_heads(scores: np.ndarray, keep: int | None = None, threshold: float | None = None) -> list[tuple[int, int]]:
    """The heads to keep from a group's scores ``(n_layers, n_heads)`` (NaN: not a sender): sorted
    by score, most negative first; with `threshold`, only heads with score ``<= threshold``; with
    `keep`, at most the first `keep` of those (Prakash et al.: a fixed count, no threshold)."""
    if keep is None and threshold is None:
        raise ParameterError("select_heads needs keep (a count), threshold (a score), or both")
    if keep is not None and keep < 1:
        raise ParameterError(f"keep={keep!r} is out of range: accepted values are integers >= 1")
    L, H = np.nonzero(~np.isnan(scores))
    order = np.argsort(scores[L, H], kind="stable")
    heads = [(int(L[i]), int(H[i])) for i in order
             if threshold is None or scores[L[i], H[i]] <= threshold]
    return heads[:keep] if keep is not None else heads


def flip_share(patched: np.ndarray, clean: np.ndarray, cf: np.ndarray) -> np.ndarray:
    """``mean(patched - clean) / mean(clean - cf)`` over the last axis (prompts): the share of the
    counterfactual's change of the metric that a patch makes, negative when it moves toward the
    counterfactual (-1: all the way).  All NaN when the counterfactuals do not lower the metric on
    average: a model that does not tell the pairs apart has no flip to share (no head is then
    selected)."""
    gap = float(np.mean(clean - cf))
    if not gap > 0:
        return np.full(np.shape(patched)[:-1], np.nan)
    return (patched - clean).mean(-1) / gap


@dataclass
class Group:
    """One step of the circuit search: senders at `sender_positions` (one per prompt); receivers the
    previous group's heads through `receiver_point` (the first group: ``"logits"``)."""
    name: str
    sender_positions: object
    receiver_point: str = "logits"
    keep: int | None = None
    threshold: float | None = None
    receiver_positions: object = None
    senders: Sequence[tuple[int, int]] | None = None


@dataclass
class GroupResult:
    group: Group
    heads: list[tuple[int, int]]
    result: PathPatchResult = field(repr=False)


def iterate_groups(arch: Arch, ids: torch.Tensor, cf_ids: torch.Tensor, correct, groups: Sequence[Group],
                   last=None, metric: Callable | None = None, max_rows: int = 128,
                   score: Callable[[PathPatchResult], np.ndarray] | None = None) -> list[GroupResult]:
    """Path patching group by group (module docstring): the first group's receivers are the
    logits, each later group's the heads the previous group kept.  Stops early, with the groups
    done so far, when a group keeps no head.  `score` (default Prakash et al.'s relative change of
    the metric) maps a group's :class:`PathPatchResult` to the ``(n_layers, n_heads)`` scores its
    heads are selected by; the results carry those scores."""
    if not groups:
        raise ParameterError("iterate_groups needs at least one Group")
    if groups[0].receiver_point != "logits":
        raise ParameterError(f"the first group's receivers are the logits; got receiver_point="
                             f"{groups[0].receiver_point!r}")
    out: list[GroupResult] = []
    receivers = "logits"
    for g in groups:
        if out and g.receiver_point not in QKV_POINTS:
            raise ParameterError(f"group {g.name!r}: receiver_point={g.receiver_point!r}; groups after the first "
                                 f"read the previous group's heads through one of {QKV_POINTS}")
        res = path_patch(arch, ids, cf_ids, correct, g.sender_positions, receivers,
                         g.receiver_point if out else "q", g.receiver_positions, g.senders, last, metric, max_rows)
        if score is not None:
            res = dataclasses.replace(res, scores=np.asarray(score(res), dtype=float))
        heads = select_heads(res.scores, g.keep, g.threshold)
        out.append(GroupResult(g, heads, res))
        if not heads:
            break
        receivers = heads
    return out
