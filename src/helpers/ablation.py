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
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .arch import Arch
from .evaluation import encode_prompts, pad_batch
from .progress import bar as progress_bar
from .task import Trial, check_answer_tokens

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
    from .hardware import model_device
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
        zs: dict[int, torch.Tensor] = {}

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
        del zs, grads, final, h, metric
    return out


# ---- summaries ---------------------------------------------------------------------------------

def effects_table(clean: np.ndarray, ablated: np.ndarray, choice: np.ndarray, n_boot: int = 1000,
                  seed: int = 0) -> pd.DataFrame:
    """Per head: drop in accuracy and in mean logit difference toward the correct answer, with
    paired bootstrap 95% CIs over prompts.  `ablated` is (n_layers, n_heads, batch)."""
    L, H, B = ablated.shape
    rng = np.random.default_rng(seed)
    boot = rng.integers(0, B, size=(n_boot, B))
    clean_correct = (np.sign(clean) == choice).astype(float)
    clean_signed = clean * choice
    rows = []
    for l in range(L):
        for h in range(H):
            a = ablated[l, h]
            if np.isnan(a).any():
                continue
            d_acc = clean_correct - (np.sign(a) == choice)
            d_ld = clean_signed - a * choice
            acc_b = d_acc[boot].mean(1)
            ld_b = d_ld[boot].mean(1)
            rows.append({"layer": l, "head": h, "acc_drop": d_acc.mean(),
                         "acc_drop_lo": np.quantile(acc_b, 0.025), "acc_drop_hi": np.quantile(acc_b, 0.975),
                         "ld_drop": d_ld.mean(),
                         "ld_drop_lo": np.quantile(ld_b, 0.025), "ld_drop_hi": np.quantile(ld_b, 0.975)})
    df = pd.DataFrame(rows)
    df["significant"] = (df["ld_drop_lo"] > 0) | (df["ld_drop_hi"] < 0)
    return df


# ---- where in depth does a model rely on its heads? ---------------------------------------------

PAPER_HEADS_GPT2 = ((5, 7), (8, 3), (9, 3), (11, 8))   # named by Lin (2024) for fine-tuned GPT-2


def named_heads_table(effects: pd.DataFrame, heads=PAPER_HEADS_GPT2) -> pd.DataFrame:
    """The rows of an :func:`effects_table` for the named `heads`, with the rank of each head's
    drop of logit difference among all heads (1 = the largest drop) and the number of heads."""
    missing = [(l, h) for l, h in heads if not ((effects["layer"] == l) & (effects["head"] == h)).any()]
    if missing:
        raise ValueError(f"heads {missing} are not in this model's table: it has layers "
                         f"0..{effects['layer'].max()} and heads 0..{effects['head'].max()}")
    ranked = effects.assign(rank=effects["ld_drop"].rank(ascending=False, method="min").astype(int),
                            of=len(effects))
    out = ranked.set_index(["layer", "head"]).loc[list(heads)].reset_index()
    return out[["layer", "head", "ld_drop", "ld_drop_lo", "ld_drop_hi", "significant", "rank", "of"]]


def per_prompt_drops(clean: np.ndarray, ablated: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """Drop of the logit difference toward the correct answer, per head and prompt: (L, H, B)."""
    return clean[None, None, :] * choice - ablated * choice[None, None, :]


def _layer_weights(drops_mean: np.ndarray) -> np.ndarray:
    """Per layer: the summed positive drop of its heads (harmful-to-remove mass)."""
    return np.clip(drops_mean, 0, None).sum(axis=1)


def depth_profile(drops: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    """Where the model's reliance on heads sits in depth, with bootstrap CIs over prompts.

    * ``centre``: the mean layer weighted by each layer's summed positive drop, scaled to [0, 1]
      (0 = first layer, 1 = last layer);
    * ``first_layer_share``: the share of that mass in layer 0 (uniform would be 1/n_layers).
    """
    L, H, B = drops.shape
    rng = np.random.default_rng(seed)

    def stats(idx):
        w = _layer_weights(drops[:, :, idx].mean(axis=2))
        total = w.sum()
        if total <= 0:
            return np.nan, np.nan
        return float((w * np.arange(L)).sum() / total / max(L - 1, 1)), float(w[0] / total)
    centre, first = stats(np.arange(B))
    boots = np.array([stats(rng.integers(0, B, B)) for _ in range(n_boot)])
    return {"centre": centre, "centre_ci": tuple(np.nanquantile(boots[:, 0], [0.025, 0.975])),
            "first_layer_share": first, "first_ci": tuple(np.nanquantile(boots[:, 1], [0.025, 0.975])),
            "uniform_share": 1 / L, "boot": boots}


def depth_verdicts(ft: dict, sc: dict, ft_correct: np.ndarray, sc_correct: np.ndarray) -> dict[str, tuple[str, str]]:
    """Verdicts on Lin's two ablation claims from the two models' depth profiles.

    A claim about a model is only judged if that model solves the task on the analysed prompts
    (the lower end of the Wilson 95% interval of its accuracy is above chance); otherwise ablating
    its heads cannot show what it relies on, and the verdict is inconclusive.
    """
    from .evaluation import wilson_ci

    def solves(correct):
        lo, _ = wilson_ci(int(np.sum(correct)), len(correct))
        return lo > 0.5, f"{np.mean(correct):.0%} correct, 95% CI from {lo:.0%}"
    ft_ok, ft_acc = solves(ft_correct)
    sc_ok, sc_acc = solves(sc_correct)
    ev_a = (f"Centre of the ablation drop in depth (0 = first layer, 1 = last): fine-tuned "
            f"{ft['centre']:.2f} (95% CI {ft['centre_ci'][0]:.2f}-{ft['centre_ci'][1]:.2f}; the model is "
            f"{ft_acc}), scratch {sc['centre']:.2f} ({sc['centre_ci'][0]:.2f}-{sc['centre_ci'][1]:.2f}).")
    if not ft_ok:
        a = "inconclusive"
        ev_a += " The fine-tuned model does not solve the task on these prompts."
    elif ft["centre_ci"][0] > 0.5:
        a = "replicated"
    elif ft["centre_ci"][1] < 0.5:
        a = "not replicated"
    else:
        a = "inconclusive"
    sdiff = sc["boot"][:, 1] - ft["boot"][:, 1]
    s_lo, s_hi = np.nanquantile(sdiff, [0.025, 0.975])
    ev_b = (f"Share of the drop in layer 0: scratch {sc['first_layer_share']:.2f} (95% CI "
            f"{sc['first_ci'][0]:.2f}-{sc['first_ci'][1]:.2f}; the model is {sc_acc}), fine-tuned "
            f"{ft['first_layer_share']:.2f} ({ft['first_ci'][0]:.2f}-{ft['first_ci'][1]:.2f}); uniform "
            f"would be {sc['uniform_share']:.2f}; scratch minus fine-tuned CI {s_lo:+.2f} to {s_hi:+.2f}.")
    if not sc_ok:
        b = "inconclusive"
        ev_b += " The scratch model does not solve the task on these prompts."
    elif sc["first_ci"][0] > sc["uniform_share"] and s_lo > 0:
        b = "replicated"
    elif sc["first_ci"][1] < sc["uniform_share"] or s_hi < 0:
        b = "not replicated"
    else:
        b = "inconclusive"
    return {"fine-tuned relies on later-layer heads": (a, ev_a),
            "scratch relies on first-layer heads": (b, ev_b)}


def screen_quality(estimate: np.ndarray, exact: np.ndarray, k: int = 10) -> dict:
    """How well attribution patching ranks heads against the exact sweep."""
    from scipy.stats import spearmanr
    e, x = estimate.ravel(), exact.ravel()
    k = min(k, len(x))
    top_est = set(np.argsort(-e)[:k].tolist())
    top_exact = set(np.argsort(-x)[:k].tolist())
    rho = spearmanr(e, x).statistic
    return {"spearman": float(rho), "top_k_overlap": len(top_est & top_exact) / k, "k": k}
