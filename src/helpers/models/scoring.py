"""Scoring a model on trials: the logit difference at the answer position, batch by batch.

A model's choice on a trial is the sign of the *logit difference* ``logit(' right') -
logit(' left')`` at the last prompt position (a two-alternative forced choice, like the monkey's
saccade).  We also record whether the answer is the top-1 token over the whole vocabulary.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from helpers.core.device import autocast, model_device
from helpers.core.progress import bar as progress_bar
from helpers.tasks.decision import Trial, check_answer_tokens


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


@torch.no_grad()
def score_candidates(model, tokenizer, prompts: Sequence[str], answer_ids: Sequence[int],
                     candidate_ids: Sequence[Sequence[int]], batch_size: int = 32, bf16: bool = False,
                     progress: bool = False, desc: str = "evaluate") -> dict[str, np.ndarray]:
    """Per prompt, at its last token: the logits of its candidate answers ``(n, k)``, whether the
    answer is the top-1 token over the whole vocabulary (``top1``), the answer's probability over
    the vocabulary (``p_answer``) and which candidate has the largest logit (``pick``, an index
    into the prompt's candidates).  A task whose prompts offer different answers (entity tracking:
    the context's objects) scores through this; the decision task's :func:`score_trials` is the
    same readout with two fixed candidates."""
    cand = np.asarray(candidate_ids, dtype=np.int64)
    answers = np.asarray(answer_ids, dtype=np.int64)
    if cand.ndim != 2 or len(cand) != len(prompts) or len(answers) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts need {len(prompts)} answer ids and a (n, k) array of candidate "
                         f"ids: got {answers.shape} and {cand.shape}")
    seqs = encode_prompts(tokenizer, prompts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    was_training = model.training
    model.eval()
    order = np.argsort([len(s) for s in seqs], kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    out = {"candidate_logits": np.zeros(cand.shape), "top1": np.zeros(len(prompts), dtype=bool),
           "p_answer": np.zeros(len(prompts))}
    device = model_device(model)
    for b in progress_bar(batches, show=progress, desc=desc, leave=False):
        ids, last = pad_batch([seqs[i] for i in b], pad)
        with autocast(device, bf16):
            logits = last_position_logits(model, ids.to(device), last.to(device)).cpu()
        target = torch.as_tensor(answers[b])
        out["candidate_logits"][b] = logits.gather(1, torch.as_tensor(cand[b])).numpy()
        out["top1"][b] = (logits.argmax(-1) == target).numpy()
        out["p_answer"][b] = logits.softmax(-1).gather(1, target[:, None])[:, 0].numpy()
    model.train(was_training)
    out["pick"] = out["candidate_logits"].argmax(1)
    return out
