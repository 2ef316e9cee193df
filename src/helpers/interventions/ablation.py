"""Ablating attention heads: the exact sweep, its naive reference, and an attribution screen.

Zero-ablation sets one head's output ``z`` (before the output projection) to 0; mean-ablation
replaces it with its mean over a reference set of prompts, position by position (the task's
prompts all have the same token length within a tokenizer, so positions align).

The exact sweep (:func:`sweep_heads`) gives the same numbers as running the whole model once per
ablated head (:func:`sweep_heads_naive`) but skips what the metric does not need:

* the clean residual stream entering each layer is computed once and reused, so ablating a head
  of layer ``l`` only runs layers ``l..L-1``;
* all heads of a layer are ablated in one batched pass (one copy of the prompts per head);
* only the logit *difference* ``' right' - ' left'`` at the last position is computed (two rows of
  the unembedding), never the full vocabulary at every position;
* the last layer runs at the last position only (its attention still reads every position),
  since nothing else of it reaches the metric (:meth:`Arch.last_layer_at`).

:func:`attribution_scores` is a first-pass *screen* (attribution patching): a linear estimate of
every head's effect from one forward and one backward pass.  It is never the reported result.
Summaries with intervals (per-head effects, depth profiles) are in :mod:`.effects`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from helpers.models.arch import Arch
from helpers.models.scoring import encode_prompts, pad_batch
from helpers.core.progress import bar as progress_bar
from helpers.tasks.decision import Trial, check_answer_tokens

KINDS = ("zero", "mean")


@dataclass
class Prompts:
    """Tokenised trials, ready for the sweeps."""
    ids: torch.Tensor          # (batch, pos), right-padded
    last: torch.Tensor         # (batch,) index of the last prompt token
    choice: np.ndarray         # (+1 right, -1 left)
    answer_ids: tuple[int, int]  # token ids of ' right' and ' left'
    direction: torch.Tensor    # (d_model,) unembedding(' right') - unembedding(' left')


def prepare(model, tokenizer, trials: Sequence[Trial], device=None) -> Prompts:
    """Tokenise `trials` for the sweeps, on `device` (default: the model's)."""
    from helpers.core.device import model_device
    device = model_device(model) if device is None else device
    ids_of = check_answer_tokens(tokenizer)
    seqs = encode_prompts(tokenizer, [t.prompt for t in trials])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids, last = pad_batch(seqs, pad)
    W = model.get_output_embeddings().weight
    direction = (W[ids_of[+1]] - W[ids_of[-1]]).detach()
    if model.get_output_embeddings().bias is not None:
        raise ValueError("the logit-difference shortcut assumes an unembedding without bias")
    return Prompts(ids.to(device), last.to(device), np.array([t.choice for t in trials]),
                   (ids_of[+1], ids_of[-1]), direction.to(device))


def _logit_diff(arch: Arch, final_stream: torch.Tensor, last: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """logit(' right') - logit(' left') at each row's last position: the final norm, then two
    rows of the unembedding (the model's unembedding has no bias)."""
    h = final_stream[torch.arange(final_stream.shape[0]), last]
    return arch.final_norm()(h) @ direction


@torch.no_grad()
def clean_logit_diff(arch: Arch, p: Prompts) -> np.ndarray:
    streams = arch.residual_streams(p.ids)
    return _logit_diff(arch, streams[-1], p.last, p.direction).float().cpu().numpy()


@torch.no_grad()
def head_means(arch: Arch, reference: Prompts) -> list[torch.Tensor]:
    """Per layer: the mean of each head's z over the reference prompts, per position
    (n_layers tensors of shape (pos, n_heads, d_head))."""
    means: dict[int, torch.Tensor] = {}

    def grab(layer):
        def fn(z):
            means[layer] = z.mean(0)
        return fn
    with arch.hooks({("z", l): grab(l) for l in range(arch.n_layers)}):
        arch.model.base_model(input_ids=reference.ids)
    lengths = set((reference.last + 1).tolist())
    if len(lengths) != 1:
        raise ValueError(f"mean-ablation needs reference prompts of one token length; got lengths {sorted(lengths)}")
    return [means[l] for l in range(arch.n_layers)]


def _replacement(kind: str, means, layer: int, T: int):
    if kind not in KINDS:
        raise ValueError(f"unknown ablation kind {kind!r}: accepted kinds are {KINDS}")
    if kind == "zero":
        return None
    if means is None:
        raise ValueError("mean-ablation needs `means` (from head_means on a reference set)")
    m = means[layer]
    if m.shape[0] < T:
        raise ValueError(f"reference prompts have {m.shape[0]} positions; these prompts need {T}")
    return m[:T]


def _final_at_last(arch: Arch, hidden: torch.Tensor, start: int, last: torch.Tensor,
                   z_edit_last=None) -> torch.Tensor:
    """Final residual stream at the `last` positions, running layers ``start..`` from `hidden`;
    the last layer runs at the last positions only (:meth:`Arch.last_layer_at`)."""
    if start < arch.n_layers - 1:
        hidden = arch.run_layers(hidden, start, arch.n_layers - 1)
    return arch.last_layer_at(hidden, last, z_edit_last)


def _logit_diff_at(arch: Arch, final_last: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    return arch.final_norm()(final_last) @ direction


@torch.no_grad()
def sweep_heads(arch: Arch, p: Prompts, kind: str = "zero", means=None, layers: Sequence[int] | None = None,
                progress: bool = True) -> np.ndarray:
    """Logit difference of every prompt with each head ablated: array (n_layers, n_heads, batch)."""
    B, T = p.ids.shape
    H = arch.n_heads
    layers = list(range(arch.n_layers)) if layers is None else list(layers)
    streams = arch.residual_streams(p.ids)
    out = np.full((arch.n_layers, H, B), np.nan)
    last = p.last.repeat(H)
    for layer in progress_bar(layers, show=progress, desc=f"{kind}-ablate heads", leave=False):
        rep = _replacement(kind, means, layer, T)
        hidden = streams[layer].repeat(H, 1, 1)                  # copy h ablates head h

        def ablate(z, rep=rep):
            """z: (H*B, pos, H, d_head) at every position, or (H*B, 1, ...) at the last ones."""
            z = z.clone()
            for h in range(H):
                block = slice(h * B, (h + 1) * B)
                if rep is None:
                    z[block, :, h] = 0
                elif z.shape[1] == T:
                    z[block, :, h] = rep[:, h]
                else:
                    z[block, 0, h] = rep[last[block], h]
            return z
        if layer == arch.n_layers - 1:
            final = _final_at_last(arch, hidden, layer, last, z_edit_last=ablate)
        else:
            with arch.hooks({("z", layer): ablate}):
                final = _final_at_last(arch, hidden, layer, last)
        ld = _logit_diff_at(arch, final, p.direction)
        out[layer] = ld.reshape(H, B).float().cpu().numpy()
    return out


@torch.no_grad()
def sweep_layers(arch: Arch, p: Prompts, kind: str = "zero", means=None) -> np.ndarray:
    """Logit difference with every head of one layer ablated at once: (n_layers, batch)."""
    B, T = p.ids.shape
    streams = arch.residual_streams(p.ids)
    out = np.zeros((arch.n_layers, B))
    for layer in range(arch.n_layers):
        rep = _replacement(kind, means, layer, T)

        def ablate(z, rep=rep):
            return torch.zeros_like(z) if rep is None else rep.expand_as(z).clone()
        with arch.hooks({("z", layer): ablate}):
            final = arch.run_layers(streams[layer], layer)
        out[layer] = _logit_diff(arch, final, p.last, p.direction).float().cpu().numpy()
    return out


@torch.no_grad()
def sweep_heads_naive(arch: Arch, p: Prompts, kind: str = "zero", means=None, progress: bool = False) -> np.ndarray:
    """The reference: one full forward (all-position, full-vocabulary logits) per ablated head."""
    B, T = p.ids.shape
    out = np.zeros((arch.n_layers, arch.n_heads, B))
    right, left = p.answer_ids
    for layer in progress_bar(range(arch.n_layers), show=progress, desc="naive sweep", leave=False):
        rep = _replacement(kind, means, layer, T)
        for h in range(arch.n_heads):
            def ablate(z, h=h, rep=rep):
                z = z.clone()
                z[:, :, h] = 0 if rep is None else rep[:, h]
                return z
            with arch.hooks({("z", layer): ablate}):
                logits = arch.model(input_ids=p.ids).logits
            last = logits[torch.arange(B), p.last]
            out[layer, h] = (last[:, right] - last[:, left]).float().cpu().numpy()
    return out


def attribution_scores(arch: Arch, p: Prompts, kind: str = "zero", means=None, chunk: int = 32) -> np.ndarray:
    """Attribution patching: estimated change of the mean logit difference toward the correct
    answer when each head is ablated, ``(z_ablated - z) . d metric / d z``: (n_layers, n_heads).

    The estimate is a sum over prompts, so it is computed `chunk` prompts at a time: the backward
    pass keeps every layer's activations, about 64 MB per prompt on SmolLM2-135M, which for the
    `full` profile's 200 prompts in one batch would be 13 GB."""
    if chunk < 1:
        raise ValueError(f"chunk={chunk!r} is not accepted: expected a positive number of prompts")
    B, T = p.ids.shape
    sign = torch.tensor(p.choice, dtype=torch.float32, device=p.ids.device)
    out = np.zeros((arch.n_layers, arch.n_heads))
    for start in range(0, B, chunk):
        rows = slice(start, start + chunk)
        zs = {}                          # layer -> its z, with gradients

        def keep(layer):
            def fn(z):
                z = z.detach().requires_grad_(True)
                zs[layer] = z
                return z
            return fn
        with torch.enable_grad(), arch.hooks({("z", l): keep(l) for l in range(arch.n_layers)}):
            final = arch.base(input_ids=p.ids[rows]).last_hidden_state
            h = final[torch.arange(final.shape[0]), p.last[rows]]
            metric = ((h @ p.direction) * sign[rows]).sum() / B       # this chunk's share of the mean
            grads = torch.autograd.grad(metric, [zs[l] for l in range(arch.n_layers)])
        for l, g in enumerate(grads):
            z = zs[l].detach()
            rep = _replacement(kind, means, l, T)
            target = torch.zeros_like(z) if rep is None else rep.expand_as(z)
            out[l] += ((target - z) * g).sum(dim=(0, 1, 3)).float().cpu().numpy()
        zs.clear()
        del grads, final, h, metric
    return out


# ---- where in depth does a model rely on its heads? ---------------------------------------------


def ablation_results(model, tokenizer, trials: Sequence[Trial], reference: Sequence[Trial],
                     kinds: Sequence[str] = KINDS, bf16: bool = False) -> dict:
    """Everything chapter 3 measures on one model, on the model's device: the clean logit
    difference on `trials`, and per ablation kind the head sweep (``results[kind]``, (L, H, n)),
    the whole-layer sweep (``results[kind + '_layers']``, (L, n)) and the attribution estimate of
    every head's drop (``results['attribution'][kind]``, (L, H)); mean-ablation replaces a head's
    output by its mean over the `reference` trials, position by position."""
    from helpers.core.device import autocast, model_device
    bad = set(kinds) - set(KINDS)
    if bad:
        raise ValueError(f"ablation kinds {sorted(bad)} are not accepted: accepted values are {list(KINDS)}")
    arch = Arch(model)
    p, ref = prepare(model, tokenizer, trials), prepare(model, tokenizer, reference)
    with autocast(model_device(model), bf16):
        clean = clean_logit_diff(arch, p)
        means = head_means(arch, ref)
        res = {"clean": clean, "arch": (arch.n_layers, arch.n_heads), "family": arch.family}
        for kind in kinds:
            res[kind] = sweep_heads(arch, p, kind, means)
            res[kind + "_layers"] = sweep_layers(arch, p, kind, means)
        res["attribution"] = {kind: -attribution_scores(arch, p, kind, means) for kind in kinds}
    return res


ABLATION_VERSION = 1


def cached_ablation_results(run, load, trials: Sequence[Trial], reference: Sequence[Trial],
                            kinds: Sequence[str] = KINDS, bf16: bool = False) -> dict:
    """:func:`ablation_results` of a training `run`, computed once per run, prompts, reference
    prompts, kinds and precision and then read from disk (:func:`helpers.core.cache.cached`):
    chapter 3 computes it, chapter 7 reads the fine-tuned model's sweep again.  `load()` returns
    ``(model, tokenizer)`` and is called only when the result is not cached."""
    from helpers.core.cache import cached
    config = {"version": ABLATION_VERSION, "run": run.config.key(), "kinds": sorted(kinds), "bf16": bool(bf16),
              "trials": [t.prompt for t in trials], "reference": [t.prompt for t in reference]}

    def compute():
        model, tokenizer = load()
        return ablation_results(model, tokenizer, trials, reference, kinds, bf16=bf16)
    res = cached("ablation", config, compute)
    res["arch"] = tuple(int(x) for x in res["arch"])
    return res


def layer_ablation_table(results: dict, choice: np.ndarray, kinds: Sequence[str] = KINDS):
    """Drop of the mean logit difference toward the correct answer when a whole layer's attention
    is ablated: one column per (model, kind), one row per layer.  `results` maps a model name to
    :func:`ablation_results`."""
    import pandas as pd
    whole = pd.DataFrame({f"{arm}, {kind}": (r["clean"] * choice)[None, :].mean() -
                          (r[kind + "_layers"] * choice[None, :]).mean(axis=1)
                          for arm, r in results.items() for kind in kinds})
    whole.index.name = "layer (whole attention ablated)"
    return whole
