"""Desiderata-based component masking (DCM; Davies et al. 2023, as Prakash et al. 2024 use it).

Which heads of a group carry a variable?  Each head ``k`` of the group gets one mask value
``m_k`` in [0, 1].  On a pair of prompts (base, source) the head's output ``z`` at the group's
position of the base prompt becomes

    z_k = m_k * z_k(base) + (1 - m_k) * z_k(source at the source's position)

so ``m_k = 1`` leaves the base run alone and ``m_k = 0`` writes the source's value.  A *desideratum*
names a target token per pair (e.g. the source's answer, if the heads carry the object's value).
The masks are trained, with the model's weights frozen, to minimise

    loss = -mean over the batch of logit(target at the base's last position) + lam * sum_k (1 - m_k)

(Prakash et al.'s objective; ``objective="logprob"`` uses the target's log-probability instead of
its raw logit, which a shift of every logit cannot raise).  Settings as theirs: masks start at 1,
Adam with lr 0.1, 2 epochs, batches of 32, lam = 0.01.  Parametrisation: the mask values
themselves, projected back onto [0, 1] after every Adam step (their clamp; a sigmoid could never
reach 0 or 1 and would slow the masks where they saturate).  Every `eval_every` steps (and before
the first) the masks are rounded and the rounded masks' accuracy (argmax at the last position ==
target) on the evaluation pairs is measured; the rounded masks with the best evaluation accuracy
are kept, the earliest at ties (so with no improvement over the untouched model no head is
selected).  The answer: the heads whose kept rounded mask is 0.

Fixed pitfalls of their code (the note): positions are given per pair, for the base and the
source separately, and the evaluation pairs use their own positions (their evaluation located
positions from the training batch's tokens).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from helpers.models.arch import Arch

Head = tuple[int, int]
OBJECTIVES = ("logit", "logprob")


@dataclass
class Pairs:
    """Base and source prompts (right-padded ids), the group's position in each, the base's last
    token (default: the last column) and the desideratum's target token, one per pair."""
    base_ids: torch.Tensor
    source_ids: torch.Tensor
    base_pos: torch.Tensor
    source_pos: torch.Tensor
    target: torch.Tensor
    base_last: torch.Tensor | None = None

    def __post_init__(self):
        n = self.base_ids.shape[0]
        dev = self.base_ids.device
        if self.base_last is None:
            self.base_last = torch.full((n,), self.base_ids.shape[1] - 1, dtype=torch.long)
        for name in ("base_pos", "source_pos", "target", "base_last"):
            v = torch.as_tensor(getattr(self, name), dtype=torch.long, device=dev)
            if v.shape != (n,):
                raise ValueError(f"{name} has shape {tuple(v.shape)}; expected one value per pair ({n},)")
            setattr(self, name, v)
        if self.source_ids.shape[0] != n:
            raise ValueError(f"{self.source_ids.shape[0]} source prompts for {n} base prompts")
        if (self.base_pos > self.base_last).any() or (self.base_pos < 0).any():
            raise ValueError("base_pos lies outside the base prompts (0..base_last)")
        if (self.source_pos >= self.source_ids.shape[1]).any() or (self.source_pos < 0).any():
            raise ValueError("source_pos lies outside the source prompts")

    def __len__(self):
        return self.base_ids.shape[0]

    def subset(self, idx) -> "Pairs":
        idx = torch.as_tensor(idx, dtype=torch.long)
        return Pairs(self.base_ids[idx], self.source_ids[idx], self.base_pos[idx], self.source_pos[idx],
                     self.target[idx], self.base_last[idx])


def split_pairs(pairs: Pairs, fractions: Sequence[float] = (0.5, 0.25, 0.25), seed: int = 0) -> list[Pairs]:
    """Random train / evaluation / test split (Prakash et al.: 50 / 25 / 25)."""
    n = len(pairs)
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.round(np.cumsum([0, *fractions]) / sum(fractions) * n).astype(int)
    return [pairs.subset(order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


@dataclass
class DCMResult:
    heads: list[Head]                    # the group's heads whose kept rounded mask is 0
    group: list[Head]                    # the group, in mask order
    mask: np.ndarray                     # final continuous masks
    kept_mask: np.ndarray                # the rounded masks kept (best evaluation accuracy)
    best_step: int
    eval_accuracy: float                 # of the kept rounded masks
    curve: object = None                 # pandas.DataFrame: step, epoch, loss, target, penalty, selected
    evals: object = None                 # pandas.DataFrame: step, eval_accuracy, selected
    test_accuracy: float | None = None
    test_accuracy_ci: tuple[float, float] | None = None
    settings: dict = field(default_factory=dict)


def _as_arch(model) -> Arch:
    return model if isinstance(model, Arch) else Arch(model)


@torch.no_grad()
def _source_z(arch: Arch, pairs: Pairs, group: list[Head], batch_size: int) -> torch.Tensor:
    """The group's heads' z in the source prompts at the source positions: (n, len(group), d_head)."""
    layers = sorted({l for l, _ in group})
    out = []
    for start in range(0, len(pairs), batch_size):
        rows = slice(start, start + batch_size)
        cap = {}

        def grab(layer):
            def fn(z):
                cap[layer] = z
            return fn
        with arch.hooks({("z", l): grab(l) for l in layers}):
            arch.base(input_ids=pairs.source_ids[rows])
        r = torch.arange(cap[layers[0]].shape[0], device=pairs.source_ids.device)
        sp = pairs.source_pos[rows]
        out.append(torch.stack([cap[l][r, sp, h] for l, h in group], dim=1))
    return torch.cat(out)


def mask_mix(z_base: torch.Tensor, z_source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """DCM's intervention on the group's heads: ``m * z(base) + (1 - m) * z(source)``, `z_*`
    ``(batch, k, d_head)`` for the group's `k` heads, `mask` ``(k,)`` (1: the base's own output)."""
    m = mask.to(z_base.dtype)[None, :, None]
    return m * z_base + (1 - m) * z_source.to(z_base.dtype)


def dcm_loss(target_logits: torch.Tensor, mask: torch.Tensor, lam: float) -> torch.Tensor:
    """DCM's objective: minus the mean target logit over the batch, plus `lam` times the number of
    heads switched towards the source, ``sum(1 - m)`` (the sparsity penalty)."""
    return -target_logits.mean() + lam * (1 - mask).sum()


def _masked_logits(arch: Arch, pairs: Pairs, rows, src: torch.Tensor, group: list[Head],
                   mask: torch.Tensor) -> torch.Tensor:
    """Logits at the base prompts' last positions with the group's heads mixed by `mask`."""
    ids = pairs.base_ids[rows]
    bp = pairs.base_pos[rows]
    r = torch.arange(ids.shape[0], device=ids.device)
    by_layer: dict[int, list[int]] = {}
    for k, (l, _) in enumerate(group):
        by_layer.setdefault(l, []).append(k)

    def mix(layer):
        ks = by_layer[layer]
        hs = [group[k][1] for k in ks]

        def fn(z):
            idx = (r[:, None], bp[:, None], torch.tensor(hs, device=z.device)[None, :])
            z = z.clone()
            z[idx] = mask_mix(z[idx], src[:, ks], mask[ks])             # (batch, k, d_head)
            return z
        return fn
    with arch.hooks({("z", l): mix(l) for l in by_layer}):
        hidden = arch.base(input_ids=ids).last_hidden_state
    h = hidden[r, pairs.base_last[rows]]
    return arch.model.get_output_embeddings()(h).float()


@torch.no_grad()
def _accuracy(arch: Arch, pairs: Pairs, src: torch.Tensor, group: list[Head], mask: torch.Tensor,
              batch_size: int) -> np.ndarray:
    out = []
    for start in range(0, len(pairs), batch_size):
        rows = slice(start, start + batch_size)
        logits = _masked_logits(arch, pairs, rows, src[rows], group, mask)
        out.append((logits.argmax(-1) == pairs.target[rows]).cpu())
    return torch.cat(out).numpy()


def train_dcm(model, group: Sequence[Head], train: Pairs, eval_pairs: Pairs | None = None,
              test: Pairs | None = None, *, lam: float = 0.01, lr: float = 0.1, epochs: int = 2,
              batch_size: int = 32, eval_every: int = 4, objective: str = "logit", seed: int = 0,
              progress: bool = False) -> DCMResult:
    """Train one mask per head of `group` ((layer, head) pairs) on the `train` pairs (module
    docstring); `eval_pairs` (default: `train`) choose the rounded masks kept, `test` (optional)
    measures them with a Wilson interval.  The model's weights are frozen during training and
    their ``requires_grad`` flags and train/eval mode restored afterwards."""
    from helpers.core.progress import bar as progress_bar
    from helpers.stats.intervals import wilson_ci
    import pandas as pd
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}: accepted values are {OBJECTIVES}")
    if eval_every < 1 or epochs < 1 or batch_size < 1:
        raise ValueError("eval_every, epochs and batch_size must be positive")
    arch = _as_arch(model)
    group = [(int(l), int(h)) for l, h in group]
    if len(set(group)) != len(group) or not group:
        raise ValueError(f"the group must be a non-empty list of distinct heads: got {group}")
    for l, h in group:
        if not (0 <= l < arch.n_layers and 0 <= h < arch.n_heads):
            raise ValueError(f"head {(l, h)} is not in the model ({arch.n_layers} layers x {arch.n_heads} heads)")
    eval_pairs = train if eval_pairs is None else eval_pairs
    params = list(arch.model.parameters())
    flags = [p.requires_grad for p in params]
    was_training = arch.model.training
    device = train.base_ids.device
    try:
        for p in params:
            p.requires_grad_(False)
        arch.model.eval()
        src_train = _source_z(arch, train, group, batch_size)
        src_eval = _source_z(arch, eval_pairs, group, batch_size)
        mask = torch.ones(len(group), device=device, requires_grad=True)
        opt = torch.optim.Adam([mask], lr=lr)
        gen = torch.Generator().manual_seed(seed)
        curve, evals = [], []

        def evaluate(step):
            rounded = mask.detach().round()
            acc = float(_accuracy(arch, eval_pairs, src_eval, group, rounded, batch_size).mean())
            evals.append({"step": step, "eval_accuracy": acc, "selected": int((rounded == 0).sum())})
            return rounded, acc
        best_mask, best_acc = evaluate(0)
        best_step, step = 0, 0
        n = len(train)
        for epoch in progress_bar(range(epochs), show=progress, desc="DCM", leave=False):
            order = torch.randperm(n, generator=gen)
            for start in range(0, n, batch_size):
                rows = order[start:start + batch_size].to(device)
                with torch.enable_grad():
                    logits = _masked_logits(arch, train, rows, src_train[rows], group, mask)
                    if objective == "logprob":
                        logits = torch.log_softmax(logits, -1)
                    target_logits = logits[torch.arange(len(rows), device=device), train.target[rows]]
                    loss = dcm_loss(target_logits, mask, lam)
                    target, penalty = target_logits.mean(), (1 - mask).sum()
                    opt.zero_grad()
                    loss.backward()
                opt.step()
                with torch.no_grad():
                    mask.clamp_(0.0, 1.0)
                step += 1
                curve.append({"step": step, "epoch": epoch, "loss": float(loss.detach()), "target": float(target.detach()),
                              "penalty": float(penalty.detach()), "selected": int((mask.detach() < 0.5).sum())})
                if step % eval_every == 0:
                    rounded, acc = evaluate(step)
                    if acc > best_acc:
                        best_mask, best_acc, best_step = rounded, acc, step
        if step % eval_every:
            rounded, acc = evaluate(step)
            if acc > best_acc:
                best_mask, best_acc, best_step = rounded, acc, step
        res = DCMResult(heads=[g for g, m in zip(group, best_mask.tolist()) if m == 0], group=group,
                        mask=mask.detach().cpu().numpy(), kept_mask=best_mask.cpu().numpy(),
                        best_step=best_step, eval_accuracy=best_acc, curve=pd.DataFrame(curve),
                        evals=pd.DataFrame(evals),
                        settings=dict(lam=lam, lr=lr, epochs=epochs, batch_size=batch_size,
                                      eval_every=eval_every, objective=objective, seed=seed))
        if test is not None:
            src_test = _source_z(arch, test, group, batch_size)
            right = _accuracy(arch, test, src_test, group, best_mask, batch_size)
            res.test_accuracy = float(right.mean())
            res.test_accuracy_ci = wilson_ci(int(right.sum()), len(right))
        return res
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
        arch.model.train(was_training)
