"""Scoring a model on trials: logit difference at the answer position, accuracy, and CIs.

A model's choice on a trial is the sign of the *logit difference* ``logit(' right') -
logit(' left')`` at the last prompt position (a two-alternative forced choice, like the monkey's
saccade).  We also record whether the answer is the top-1 token over the whole vocabulary.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .hardware import autocast, model_device
from .progress import bar as progress_bar
from .task import ANSWERS, Trial, check_answer_tokens


def encode_prompts(tokenizer, prompts: Sequence[str]) -> list[list[int]]:
    return [tokenizer.encode(p) for p in prompts]


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and the index of each sequence's last real token.

    Right padding needs no attention mask here: attention is causal, so real tokens never see
    the pads that follow them, and we only read the last real position.
    """
    lengths = torch.tensor([len(s) for s in seqs])
    ids = torch.full((len(seqs), int(lengths.max())), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
    return ids, lengths - 1


def last_position_logits(model, ids: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """Full-vocabulary logits at each row's last real token, without computing the others."""
    hidden = model.base_model(input_ids=ids).last_hidden_state
    h = hidden[torch.arange(ids.shape[0]), last]
    return model.get_output_embeddings()(h).float()


@torch.no_grad()
def score_trials(model, tokenizer, trials: Sequence[Trial], batch_size: int = 32,
                 bf16: bool = False, progress: bool = False, desc: str = "evaluate") -> dict[str, np.ndarray]:
    """Per-trial logit difference (right - left) and whether the answer is the top-1 token."""
    ids_of = check_answer_tokens(tokenizer)
    right, left = ids_of[+1], ids_of[-1]
    seqs = encode_prompts(tokenizer, [t.prompt for t in trials])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    was_training = model.training
    model.eval()
    order = np.argsort([len(s) for s in seqs], kind="stable")   # less padding
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    out_diff = np.zeros(len(trials))
    out_top1 = np.zeros(len(trials), dtype=bool)
    device = model_device(model)
    for b in progress_bar(batches, show=progress, desc=desc, leave=False):
        ids, last = pad_batch([seqs[i] for i in b], pad)
        with autocast(device, bf16):
            logits = last_position_logits(model, ids.to(device), last.to(device)).cpu()
        out_diff[b] = (logits[:, right] - logits[:, left]).numpy()
        target = torch.tensor([ids_of[trials[i].choice] for i in b])
        out_top1[b] = (logits.argmax(-1) == target).numpy()
    model.train(was_training)
    return {"logit_diff": out_diff, "top1": out_top1}


# ---- uncertainty ----------------------------------------------------------------------------

def wilson_ci(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # clamp rounding: the interval always contains p (exactly 0 or 1 at k = 0 or k = n)
    return (float(min(centre - half, p)), float(max(centre + half, p)))


def bootstrap_ci(values: np.ndarray, stat=np.mean, n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of `stat` over the rows of `values`."""
    values = np.asarray(values)
    if len(values) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    stats = np.array([stat(values[i]) for i in idx])
    a = (1 - level) / 2
    return (float(np.quantile(stats, a)), float(np.quantile(stats, 1 - a)))


def summarize(trials: Sequence[Trial], logit_diff: np.ndarray, top1: np.ndarray | None = None) -> dict:
    """Accuracy (Wilson CI), mean logit difference toward the correct answer (bootstrap CI),
    and accuracy per relevant coherence level and per congruency."""
    choice = np.array([t.choice for t in trials])
    correct = np.sign(logit_diff) == choice
    signed = logit_diff * choice          # positive = toward the correct answer
    k, n = int(correct.sum()), len(trials)
    out = {
        "n": n,
        "accuracy": k / n if n else float("nan"),
        "accuracy_ci": wilson_ci(k, n),
        "logit_diff": float(signed.mean()) if n else float("nan"),
        "logit_diff_ci": bootstrap_ci(signed),
    }
    if top1 is not None:
        out["top1_accuracy"] = float(np.mean(top1)) if n else float("nan")
    rel = np.array([abs(t.relevant_coh) for t in trials])
    out["by_relevant_level"] = {}
    for level in sorted(set(rel.tolist())):
        m = rel == level
        out["by_relevant_level"][f"{level:.2f}"] = _acc(correct[m])
    cong = np.array([t.congruent for t in trials])
    out["by_congruency"] = {"congruent": _acc(correct[cong]), "incongruent": _acc(correct[~cong])}
    ctx = np.array([t.context for t in trials])
    out["by_context"] = {c: _acc(correct[ctx == c]) for c in ("motion", "color")}
    return out


def _acc(correct: np.ndarray) -> dict:
    k, n = int(correct.sum()), len(correct)
    return {"n": n, "accuracy": k / n if n else float("nan"), "ci": wilson_ci(k, n)}


def predictions_frame(trials: Sequence[Trial], scores: dict[str, np.ndarray]):
    """One row per trial: latent variables, logit difference, choice and correctness."""
    import pandas as pd
    df = pd.DataFrame([t.to_dict() for t in trials]).drop(columns=["motion_samples", "color_samples"])
    df["logit_diff"] = scores["logit_diff"]
    df["model_choice"] = np.where(scores["logit_diff"] > 0, 1, -1)
    df["correct"] = df["model_choice"] == df["choice"]
    df["top1"] = scores["top1"]
    return df
