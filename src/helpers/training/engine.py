"""The training engine: one optimiser step (answer-position loss, bf16 autocast, fused AdamW,
clipping), the schedule, the order of batches, all shared by :mod:`.runs` and the benchmark."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from helpers.core.device import autocast
from helpers.models.scoring import last_position_logits

if TYPE_CHECKING:
    from helpers.training.runs import RunConfig


def _lr_lambda(total: int, warmup: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))
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
    """AdamW (no weight decay on biases and norms) with linear warm-up and linear decay over the
    run's `cfg.total_steps`."""
    total_steps = cfg.total_steps
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        (no_decay if p.ndim < 2 else decay).append(p)
    # fused AdamW: one kernel over all parameters (about 3x faster optimiser step on CPU)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr,
                            fused=device.type in ("cpu", "cuda"))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(total_steps, int(cfg.warmup_frac * total_steps)))
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
