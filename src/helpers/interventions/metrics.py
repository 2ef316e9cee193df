"""Metrics of a patched run, read from the logits at each prompt's last position.

A metric is a callable ``metric(logits) -> values``: `logits` has shape ``(..., batch, vocab)``
(the patching functions stack several patched copies of the prompts in front of the batch axis)
and the values have shape ``(..., batch)``, one per prompt.  The token ids a metric reads are one
per prompt (``(batch,)``), since the correct answer differs between prompts.

* :class:`LogitDiff`: ``logit(a) - logit(b)``, e.g. the correct minus the wrong answer;
* :class:`Prob`: the probability of the correct token (softmax over the whole vocabulary);
* :class:`Accuracy`: 1.0 where the argmax over the vocabulary is the correct token, else 0.0;
* :class:`ForcedChoice`: 1.0 where the correct token's logit beats the other answer's (the
  decision task's two-alternative accuracy: the sign of the logit difference), else 0.0;
* :class:`ChoiceMargin`: the correct token's logit minus the mean logit of the other candidates
  of its prompt (entity tracking: the context's other objects); the logit difference generalised
  to several alternatives, which does not saturate when the model is sure.
"""
from __future__ import annotations

from typing import Sequence

import torch


def _ids(tokens: int | Sequence[int] | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(tokens, dtype=torch.long)
    if t.dim() > 1:
        raise ValueError(f"token ids must be one per prompt, shape (batch,); got shape {tuple(t.shape)}")
    return t.reshape(-1)


def _pick(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``logits[..., b, ids[b]]`` for every prompt b: shape ``(..., batch)``."""
    ids = ids.to(logits.device)
    if ids.numel() not in (1, logits.shape[-2]):
        raise ValueError(f"{ids.numel()} token ids for {logits.shape[-2]} prompts: give one id per prompt "
                         "(or a single id for all)")
    index = ids.expand(logits.shape[-2]).expand(*logits.shape[:-1]).unsqueeze(-1)
    return logits.gather(-1, index).squeeze(-1)


class Metric:
    name = "metric"

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:      # pragma: no cover - interface
        raise NotImplementedError


class LogitDiff(Metric):
    """``logit(a) - logit(b)`` per prompt (a: e.g. the correct answer, b: the wrong one)."""
    name = "logit_diff"

    def __init__(self, a, b):
        self.a, self.b = _ids(a), _ids(b)

    def __call__(self, logits):
        return (_pick(logits, self.a) - _pick(logits, self.b)).float()


class Prob(Metric):
    """The probability of the correct token per prompt."""
    name = "prob"

    def __init__(self, correct):
        self.correct = _ids(correct)

    def __call__(self, logits):
        logp = torch.log_softmax(logits.float(), dim=-1)
        return _pick(logp, self.correct).exp()


class Accuracy(Metric):
    """1.0 where the correct token has the largest logit, else 0.0, per prompt."""
    name = "accuracy"

    def __init__(self, correct):
        self.correct = _ids(correct)

    def __call__(self, logits):
        return (logits.argmax(-1) == self.correct.to(logits.device)).float()


class ForcedChoice(LogitDiff):
    """1.0 where ``logit(a) > logit(b)`` (a: the correct answer, b: the other one), else 0.0: the
    accuracy of a two-alternative forced choice, which the decision task's chapters use."""
    name = "forced_choice"

    def __call__(self, logits):
        return (super().__call__(logits) > 0).float()


class Stacked(Metric):
    """Several metrics of the same logits in one pass, stacked on a last axis ``(..., k)``:
    :func:`~.patching.generic_patch` keeps trailing axes, so a patch is run once for all of them."""
    name = "stacked"

    def __init__(self, *metrics: Metric):
        self.metrics = metrics

    def __call__(self, logits):
        return torch.stack([m(logits).float() for m in self.metrics], dim=-1)


class ChoiceMargin(Metric):
    """``logit(correct) - mean(logit(o) for o in others)`` per prompt: `correct` is ``(batch,)``,
    `others` ``(batch, k)`` token ids (the prompt's other candidates).  Linear in the logits, so it
    keeps moving where the probability of a confident model no longer does."""
    name = "choice_margin"

    def __init__(self, correct, others):
        self.correct = _ids(correct)
        o = torch.as_tensor(others, dtype=torch.long)
        if o.dim() != 2 or o.shape[0] != self.correct.numel() or o.shape[1] < 1:
            raise ValueError(f"others must have shape (batch, k >= 1) with batch = {self.correct.numel()} "
                             f"(one row of other candidates per prompt); got shape {tuple(o.shape)}")
        self.others = o

    def __call__(self, logits):
        o = self.others.to(logits.device)
        picked = logits.gather(-1, o.expand(*logits.shape[:-1], o.shape[1]))
        return (_pick(logits, self.correct) - picked.float().mean(-1)).float()
