"""Rough training times from measured rates, for ``--dry-run``.

The rates are training tokens per second measured on this project's machine (2 CPU cores, no
GPU; docs/measured.md): SmolLM2-135M with the book's engine in bf16
about 290 tokens/s on the machines with fast bf16 kernels (on 2026-12-07's machines, whose bf16
kernels were four times slower than fp32, about 60), in fp32 about 155 (8 prompts of 30 tokens, 1.55
s per step, 2026-12-07); GPT-2-124M has about as many parameters and is budgeted the same.  A run also scores its validation and test sets
(a forward pass, about a third of a training step's cost per token).  On a GPU or another machine
the estimate says so and gives the CPU figure: we have no measured rate there.

A run trains until its validation loss stops improving, which is not known before it trains: the
estimate is for a run that goes to its step cap (``max_steps``), an upper bound
(:data:`UPPER_BOUND_NOTE`).
"""
from __future__ import annotations

import math

from helpers.models.sources import GPT2_SIZES, SMOLLM2, TINY, base_of
from helpers.training.runs import RunConfig

TOKENS_PER_PROMPT = 52            # the decision task's prompts with 4 samples per stream (SmolLM2)
RATES = {                          # training tokens/s on 2 CPU cores: (bf16, fp32)
    SMOLLM2: (290.0, 155.0),
    "gpt2": (290.0, 155.0),
}
TINY_RATE = 50_000.0


def _rate(cfg: RunConfig) -> float | None:
    base = base_of(cfg.source)
    if base in TINY:
        return TINY_RATE
    if base == SMOLLM2 or base == "gpt2":
        return RATES[base][0 if cfg.bf16 else 1]
    if base in GPT2_SIZES:         # larger GPT-2s: scale by parameter count (layers x width^2)
        n_layer, _, width = GPT2_SIZES[base]
        return RATES["gpt2"][0 if cfg.bf16 else 1] * (12 * 768 ** 2) / (n_layer * width ** 2)
    return None


def estimate_run_seconds(cfg: RunConfig) -> float | None:
    """Seconds to train and score one run on 2 CPU cores **if it runs to its step cap**, or None
    without a measured rate.  An upper bound: a run stops when its validation loss stops
    improving, usually well before ``max_steps``, and how soon is not known before it trains.
    Counts the training steps, the evaluations of the validation loss on the way (one every
    ``eval_every`` steps) and the final scoring of the validation and test sets."""
    rate = _rate(cfg)
    if rate is None:
        return None
    per_prompt = TOKENS_PER_PROMPT * cfg.task.n_samples / 4
    tokens = cfg.max_steps * cfg.batch_size * per_prompt
    n_evals = math.ceil(cfg.max_steps / cfg.eval_every)
    scored = (n_evals * cfg.n_val + cfg.n_val + cfg.n_test) * per_prompt
    return (tokens + scored / 3) / rate


UPPER_BOUND_NOTE = ("an upper bound: every run trained to its step cap (max_steps); a run stops "
                    "earlier when its validation loss stops improving")


def format_seconds(s: float | None) -> str:
    if s is None:
        return "unknown (no measured rate for this source)"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"
