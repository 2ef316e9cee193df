"""The training engine: one optimiser step (answer-position loss, bf16 autocast, fused AdamW,
clipping), the schedule, the order of batches and the validation loss that early stopping watches,
all shared by :mod:`.runs` and the benchmark."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from helpers.core.device import autocast
from helpers.models.scoring import last_position_logits, pad_batch

if TYPE_CHECKING:
    from helpers.training.runs import RunConfig


def _lr_lambda(warmup: int):
    """Linear warm-up over `warmup` steps, then constant.

    Constant, not decaying: a run stops when its validation loss stops improving, and a schedule
    that decays over the step cap would make where it stops depend on the cap."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 1.0
    return f


def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, 7919, epoch]).permutation(n)


def answer_loss(model, ids: torch.Tensor, last: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the vocabulary at the answer position only."""
    logits = last_position_logits(model, ids, last)
    return torch.nn.functional.cross_entropy(logits, targets)


def batch_at(cfg: RunConfig, step: int) -> tuple[int, np.ndarray]:
    """(epoch, indices into the training set) of optimiser step `step`: a pure function of the
    config, so a resumed run (and the benchmark) takes exactly the same batches."""
    epoch, b = divmod(step, cfg.steps_per_epoch)
    return epoch, _epoch_order(cfg.seed, epoch, cfg.n_train)[b * cfg.batch_size:(b + 1) * cfg.batch_size]


def make_optimizer(model, cfg: RunConfig, device: torch.device):
    """AdamW (no weight decay on biases and norms) with linear warm-up over `cfg.warmup_steps`,
    then a constant learning rate."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:                 # LoRA runs freeze every weight but the adapters'
            (no_decay if p.ndim < 2 else decay).append(p)
    # fused AdamW: one kernel over all parameters (about 3x faster optimiser step on CPU)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr,
                            fused=device.type in ("cpu", "cuda"))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg.warmup_steps))
    return opt, sched


def train_step(model, opt, sched, ids: torch.Tensor, last: torch.Tensor, targets: torch.Tensor,
               bf16: bool, max_grad_norm: float) -> tuple[float, float]:
    """One optimiser step on the answer-position loss; returns (loss, gradient norm).

    The engine's whole step, shared by :func:`train_run` and ``benchmarks/bench_training.py``.
    Call it inside :func:`helpers.models.arch.eager_attention` as :func:`train_run` does.
    """
    device = ids.device
    with autocast(device, bf16):
        loss = answer_loss(model, ids, last, targets)
    loss.backward()
    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    return loss.item(), gnorm.item()


class ValidationSet:
    """The validation trials, tokenised and padded once, in batches of similar length.

    :meth:`evaluate` gives the loss the training step minimises (cross-entropy over the full
    vocabulary at the answer position, mean over trials) and the accuracy of the forced choice
    among each trial's candidate answers (``candidates``: ``(n, k)`` token ids, ``correct``: the
    index of the answer among them; correct when the answer's logit is strictly the largest, so a
    tie is not correct; for the decision task the candidates are `` right`` and `` left`` and this
    is the sign of their logit difference); no gradients, bf16 autocast when asked, one forward
    pass per batch, logits of the answer position only.
    """

    def __init__(self, seqs: Sequence[Sequence[int]], targets: torch.Tensor, candidates, correct,
                 pad_id: int, device: torch.device, batch_size: int = 64):
        candidates = torch.as_tensor(np.asarray(candidates), dtype=torch.long)
        correct = torch.as_tensor(np.asarray(correct), dtype=torch.long)
        if candidates.ndim != 2 or len(candidates) != len(seqs) or len(correct) != len(seqs):
            raise ValueError(f"{len(seqs)} validation trials need (n, k) candidates and n correct indices: got "
                             f"{tuple(candidates.shape)} and {tuple(correct.shape)}")
        order = np.argsort([len(s) for s in seqs], kind="stable")      # less padding
        self.batches = []
        for i in range(0, len(order), batch_size):
            b = order[i:i + batch_size]
            ids, last = pad_batch([seqs[j] for j in b], pad_id)
            self.batches.append((ids.to(device), last.to(device), targets[b].to(device),
                                 candidates[b].to(device), correct[b].to(device)))
        self.n = len(seqs)
        self.device = device

    @torch.no_grad()
    def evaluate(self, model, bf16: bool) -> tuple[float, float]:
        """(mean answer-position loss, forced-choice accuracy) of `model` on the validation trials."""
        was_training = model.training
        model.eval()
        total, correct = 0.0, 0
        for ids, last, targets, cand, right in self.batches:
            with autocast(self.device, bf16):
                logits = last_position_logits(model, ids, last)
            total += float(torch.nn.functional.cross_entropy(logits, targets, reduction="sum"))
            c = logits.gather(1, cand)
            answer = c.gather(1, right[:, None])[:, 0]
            others = c.scatter(1, right[:, None], float("-inf")).max(1).values
            correct += int((answer > others).sum())
        model.train(was_training)
        return total / self.n, correct / self.n
