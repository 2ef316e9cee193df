"""Attention patterns: where the answer position looks, by token type, layer and head.

* :func:`attention_patterns` returns the attention probabilities of every layer and head (eager
  attention is switched on for the call and the original implementation always restored);
* :func:`attention_stats` runs a set of trials batch by batch and keeps only aggregates (the mass
  the answer position puts on each token type, per prompt, layer and head; the mean mass per query
  type and key type), never all patterns at once;
* :func:`first_layer_number_attention`, :func:`paired_difference`, :func:`number_profile` and
  :func:`relevance_table` are the tables the claims are judged on (bootstrap intervals over prompts;
  for relevance a max-T permutation test of the context labels, :mod:`helpers.stats`); the verdicts are in :mod:`helpers.claims.attention`;
* :class:`PatternSource` computes single patterns on demand for the ipywidgets explorer
  (:mod:`helpers.figures.explorer`); :func:`explorer_patterns` computes every head of a few prompts
  at once (:class:`ExplorerPatterns`) for the kernel-free explorer embedded in the page.

Tokens are typed by :func:`helpers.tasks.tokens.token_types`.  The *answer position* is the last
prompt token (the ``:`` after ``Answer``), where the model's choice is read.  Attention masses at
that position sum to 1 over the keys (all earlier tokens and itself), so the mass on a token type
is directly comparable with the share of that type among the keys: the mass that *uniform*
attention would give it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from helpers.core.device import autocast, model_device
from helpers.core.progress import bar as progress_bar
from helpers.models.arch import Arch, eager_attention
from helpers.models.scoring import encode_prompts, pad_batch
from helpers.stats.bootstrap import bootstrap_means, max_t_bootstrap_two_groups
from helpers.stats.permutation import max_t_two_groups
from helpers.tasks.decision import Trial
from helpers.tasks.tokens import NUMBER_TYPES, TOKEN_TYPES, token_labels, token_types


# ---- attention probabilities --------------------------------------------------------------------

@torch.no_grad()
def attention_patterns(model, ids, bf16: bool = False) -> torch.Tensor:
    """Attention probabilities of every layer and head: (n_layers, batch, n_heads, q_pos, k_pos).

    `ids` is (batch, pos) or (pos,).  Rows are right-padded sequences (causal attention: a real
    token never sees the pads after it).  With grouped key/value heads (Llama) every query head
    still has its own pattern, so the output has ``n_heads`` heads.  Returned as fp32 on the CPU
    (under `bf16` autocast the probabilities themselves are computed in bf16).
    """
    ids = torch.as_tensor(ids)
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        with eager_attention(model), autocast(device, bf16):
            out = model.base_model(input_ids=ids.to(device), output_attentions=True)
    finally:
        model.train(was_training)
    att = out.attentions
    if not att:
        raise RuntimeError(f"{type(model).__name__} returned no attention weights with eager attention")
    return torch.stack([a.float().cpu() for a in att])


def _type_onehot(types: Sequence[Sequence[str]], n_pos: int) -> torch.Tensor:
    """(batch, n_pos, n_types) one-hot of each position's type (zeros at padding)."""
    out = torch.zeros(len(types), n_pos, len(TOKEN_TYPES))
    for b, ts in enumerate(types):
        for p, t in enumerate(ts):
            out[b, p, TOKEN_TYPES.index(t)] = 1.0
    return out


def _as_per_prompt(types, batch: int) -> list[list[str]]:
    if len(types) and isinstance(types[0], str):
        return [list(types)] * batch
    if len(types) != batch:
        raise ValueError(f"got types for {len(types)} prompts and patterns for {batch}")
    return [list(t) for t in types]


def answer_mass(patterns: torch.Tensor, types) -> np.ndarray:
    """Mass that each prompt's answer position (its last typed token) puts on each token type:
    array (batch, n_layers, n_heads, n_types), types in the order of :data:`TOKEN_TYPES`."""
    L, B, H, Q, K = patterns.shape
    types = _as_per_prompt(types, B)
    last = torch.tensor([len(t) - 1 for t in types])
    rows = patterns[:, torch.arange(B), :, last, :]              # (B, L, H, K)
    onehot = _type_onehot(types, K)
    return torch.einsum("blhk,bkt->blht", rows.float(), onehot).numpy()


def query_type_mass(patterns: torch.Tensor, types) -> tuple[np.ndarray, np.ndarray]:
    """Summed mass from each query type to each key type, and the number of queries of each type:
    (n_layers, n_heads, n_types_query, n_types_key) sums and (n_types,) counts; divide for means."""
    L, B, H, Q, K = patterns.shape
    types = _as_per_prompt(types, B)
    q1 = _type_onehot(types, Q)
    k1 = _type_onehot(types, K)
    per_key = torch.einsum("lbhqk,bkt->lbhqt", patterns.float(), k1)
    sums = torch.einsum("lbhqt,bqs->lhst", per_key, q1).numpy()
    return sums, q1.sum((0, 1)).numpy()


def attention_by_type(patterns: torch.Tensor, types, query: str = "answer") -> pd.DataFrame:
    """Tidy mean attention mass per layer, head and key type.

    ``query="answer"``: mass of the answer position (each prompt's last typed token), mean over
    prompts: columns layer, head, type, mass.  ``query="all"``: mass from every query position,
    mean over the queries of each type: columns layer, head, query_type, type, mass.
    `types` is one list for all prompts or one list per prompt (see :func:`token_types`).
    """
    if query == "answer":
        return _tidy(answer_mass(patterns, types).mean(0))
    if query == "all":
        sums, counts = query_type_mass(patterns, types)
        return _tidy_query(sums, counts)
    raise ValueError(f"query={query!r} is not accepted: accepted values are 'answer', 'all'")


def _tidy(mass: np.ndarray) -> pd.DataFrame:
    L, H, T = mass.shape
    li, hi, ti = np.meshgrid(np.arange(L), np.arange(H), np.arange(T), indexing="ij")
    return pd.DataFrame({"layer": li.ravel(), "head": hi.ravel(),
                         "type": np.array(TOKEN_TYPES)[ti.ravel()], "mass": mass.ravel()})


def _tidy_query(sums: np.ndarray, counts: np.ndarray) -> pd.DataFrame:
    L, H, S, T = sums.shape
    rows = []
    for s in range(S):
        if counts[s] == 0:
            continue
        d = _tidy(sums[:, :, s, :] / counts[s])
        d.insert(2, "query_type", TOKEN_TYPES[s])
        rows.append(d)
    return pd.concat(rows, ignore_index=True)


# ---- many prompts, aggregated batch by batch ------------------------------------------------------

@dataclass
class AttentionStats:
    """What :func:`attention_stats` keeps of the patterns of a set of trials."""
    answer: np.ndarray          # (n_prompts, n_layers, n_heads, n_types): answer position's mass per type
    key_share: np.ndarray       # (n_prompts, n_types): share of each type among the answer's keys
    contexts: np.ndarray        # (n_prompts,) "motion" / "color"
    query_sums: np.ndarray      # (n_layers, n_heads, n_types, n_types) summed mass query type -> key type
    query_counts: np.ndarray    # (n_types,) queries of each type
    meta: dict = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return self.answer.shape[1]

    @property
    def n_heads(self) -> int:
        return self.answer.shape[2]

    def mass(self, kinds: Sequence[str]) -> np.ndarray:
        """(n_prompts, n_layers, n_heads) mass of the answer position on the given types."""
        return self.answer[..., [TOKEN_TYPES.index(k) for k in kinds]].sum(-1)

    def share(self, kinds: Sequence[str]) -> np.ndarray:
        """(n_prompts,) share of the given types among the answer position's keys."""
        return self.key_share[:, [TOKEN_TYPES.index(k) for k in kinds]].sum(-1)

    def relevance(self) -> np.ndarray:
        """(n_prompts, n_layers, n_heads): mass on the relevant stream's numbers minus mass on
        the irrelevant stream's (the relevant stream is the one the context names)."""
        motion = self.mass(["motion numbers"])
        color = self.mass(["color numbers"])
        sign = np.where(self.contexts == "motion", 1.0, -1.0)[:, None, None]
        return sign * (motion - color)

    def table(self) -> pd.DataFrame:
        """Mean over prompts of the answer position's mass per layer, head and type."""
        return _tidy(self.answer.mean(0))

    def query_table(self) -> pd.DataFrame:
        """Mean mass from every query position, per query type and key type."""
        return _tidy_query(self.query_sums, self.query_counts)


def stats_from_patterns(patterns: torch.Tensor, types, contexts: Sequence[str]) -> AttentionStats:
    """:class:`AttentionStats` of one batch of patterns (n_layers, batch, n_heads, q, k), with each
    prompt's token types (see :func:`token_types`) and context."""
    L, B, H, Q, K = patterns.shape
    types = _as_per_prompt(types, B)
    if len(contexts) != B:
        raise ValueError(f"got {len(contexts)} contexts for {B} prompts")
    sums, counts = query_type_mass(patterns, types)
    share = np.stack([_type_onehot([t], len(t))[0].mean(0).numpy() for t in types])
    return AttentionStats(answer=answer_mass(patterns, types).astype(np.float32), key_share=share,
                          contexts=np.asarray(contexts), query_sums=sums, query_counts=counts,
                          meta={"n_prompts": B, "n_layers": L, "n_heads": H,
                                "tokens_per_prompt": sorted({len(t) for t in types})})


def concat_stats(parts: Sequence[AttentionStats]) -> AttentionStats:
    """Stats of several batches of the same model as one."""
    if not parts:
        raise ValueError("concat_stats needs at least one batch")
    meta = dict(parts[0].meta)
    meta["n_prompts"] = sum(p.answer.shape[0] for p in parts)
    meta["tokens_per_prompt"] = sorted(set().union(*(p.meta.get("tokens_per_prompt", []) for p in parts)))
    return AttentionStats(answer=np.concatenate([p.answer for p in parts]),
                          key_share=np.concatenate([p.key_share for p in parts]),
                          contexts=np.concatenate([p.contexts for p in parts]),
                          query_sums=sum(p.query_sums for p in parts),
                          query_counts=sum(p.query_counts for p in parts), meta=meta)


def attention_stats(model, tokenizer, trials: Sequence[Trial], batch_size: int = 16, bf16: bool = False,
                    progress: bool = False, desc: str = "attention") -> AttentionStats:
    """Patterns of all `trials`, computed a batch at a time and reduced to :class:`AttentionStats`
    (memory: one batch of patterns, never all of them)."""
    if not trials:
        raise ValueError("attention_stats needs at least one trial")
    prompts = [t.prompt for t in trials]
    seqs = encode_prompts(tokenizer, prompts)
    types = [token_types(tokenizer, p) for p in prompts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    parts = []
    for s in progress_bar(range(0, len(trials), batch_size), show=progress, desc=desc, leave=False):
        idx = range(s, min(s + batch_size, len(trials)))
        ids, _ = pad_batch([seqs[i] for i in idx], pad)
        pats = attention_patterns(model, ids, bf16=bf16)
        parts.append(stats_from_patterns(pats, [types[i] for i in idx], [trials[i].context for i in idx]))
        del pats
    out = concat_stats(parts)
    out.meta["bf16"] = bf16
    return out


# ---- statistics ---------------------------------------------------------------------------------


def first_layer_number_attention(stats: Mapping[str, AttentionStats], layer: int = 0, n_boot: int = 2000,
                                 seed: int = 0) -> pd.DataFrame:
    """Claim (a): share of the answer position's attention on number tokens (motion + color) in
    layer `layer`, per model, against the share of number tokens among the keys (what uniform
    attention would give).  ``mass`` is the mean over the layer's heads; ``excess`` = mass minus
    the uniform share, per prompt; intervals are percentile bootstraps over prompts.  ``best_head``
    is the layer's head with the most mass on numbers."""
    rows = []
    for name, s in stats.items():
        per_head = s.mass(NUMBER_TYPES)[:, layer, :]          # (n, heads)
        base = s.share(NUMBER_TYPES)                          # (n,)
        mass = per_head.mean(1)
        m, lo, hi = bootstrap_means(mass[:, None], n_boot, seed)
        e, elo, ehi = bootstrap_means((mass - base)[:, None], n_boot, seed)
        hm = per_head.mean(0)
        best = int(np.argmax(hm))
        bm, blo, bhi = bootstrap_means(per_head[:, best:best + 1], n_boot, seed)
        rows.append({"model": name, "layer": layer, "n_prompts": len(mass), "mass": m[0], "mass_lo": lo[0],
                     "mass_hi": hi[0], "uniform": float(base.mean()), "excess": e[0], "excess_lo": elo[0],
                     "excess_hi": ehi[0], "best_head": best, "best_head_mass": bm[0],
                     "best_head_lo": blo[0], "best_head_hi": bhi[0]})
    return pd.DataFrame(rows)


def paired_difference(a: AttentionStats, b: AttentionStats, layer: int = 0, n_boot: int = 2000,
                      seed: int = 0) -> tuple[float, float, float]:
    """Mean over prompts of (a's minus b's) layer-`layer` head-mean mass on numbers, with a paired
    bootstrap interval; the two must have analysed the same prompts with the same tokenizer."""
    if a.answer.shape[0] != b.answer.shape[0] or not np.allclose(a.key_share, b.key_share):
        raise ValueError("paired_difference needs the same prompts, tokenised the same way, for both models")
    d = a.mass(NUMBER_TYPES)[:, layer].mean(1) - b.mass(NUMBER_TYPES)[:, layer].mean(1)
    m, lo, hi = bootstrap_means(d[:, None], n_boot, seed)
    return float(m[0]), float(lo[0]), float(hi[0])


def number_profile(s: AttentionStats, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per layer: mean over heads of the answer position's mass on numbers minus the uniform share,
    with a bootstrap interval over prompts (columns layer, excess, lo, hi)."""
    ex = s.mass(NUMBER_TYPES).mean(2) - s.share(NUMBER_TYPES)[:, None]     # (n, layers)
    m, lo, hi = bootstrap_means(ex, n_boot, seed)
    return pd.DataFrame({"layer": np.arange(s.n_layers), "excess": m, "lo": lo, "hi": hi})


def relevance_table(s: AttentionStats, n_perm: int = 1000, seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """Claim (b), per head: the relevance of its attention at the answer position, balanced over
    the two contexts: the mean over motion prompts of (mass on the relevant stream's numbers - mass
    on the irrelevant stream's) and the same mean over colour prompts, averaged with equal weights.
    That is half the difference, between motion and colour prompts, of (motion numbers - colour
    numbers): a head that prefers one stream whatever the context scores 0 however unbalanced the
    test set is in contexts (a plain mean over prompts would credit it with the imbalance).

    Its test permutes the context labels across prompts (the same permutation for every head, so
    what a prompt does to every head is kept), studentized per head (Welch), with the family-wise
    error over all heads controlled by the maximum over heads
    (:func:`helpers.stats.permutation.max_t_two_groups`): exact when attention does not depend on
    the context, whatever its distribution.  The permutation symmetrises skewed values, so the
    interval is also computed by the studentized bootstrap of the maximum over heads
    (:func:`helpers.stats.bootstrap.max_t_bootstrap_two_groups`, resampling prompts within each
    context), and the table gives the union of the two: a head is above zero only when both say so.
    Columns: ``relevance``; ``lo``, ``hi`` (each head's own 95% interval); ``lo_sim``, ``hi_sim``
    (simultaneous over the heads at ``1 - alpha``); ``p_adj`` (one-sided max-T adjusted p-value of
    the permutation test); ``significant`` (``p_adj <= alpha`` and ``lo_sim > 0``); ``n_prompts``,
    ``n_perm`` (permutations, and bootstrap resamples).  (Before: a percentile bootstrap per head with normal intervals at the Bonferroni
    level, which said 'replicated' in 14-95% of null data with skewed values, few prompts or an
    unbalanced test set.)"""
    d = s.mass(["motion numbers"]) - s.mass(["color numbers"])            # (n, L, H)
    n, L, H = d.shape
    motion = s.contexts == "motion"
    perm = max_t_two_groups(d.reshape(n, -1), motion, n_perm=n_perm, seed=seed, level=1 - alpha)
    boot = max_t_bootstrap_two_groups(d.reshape(n, -1), motion, n_boot=n_perm, seed=seed, level=1 - alpha)
    # the union of the two intervals: above zero only when both methods say so (each guards the
    # other's weak side: exchangeability for the permutation, skewness for the bootstrap-t)
    lo, hi = np.fmin(perm["lo"], boot["lo"]) / 2, np.fmax(perm["hi"], boot["hi"]) / 2
    lo_one, hi_one = np.fmin(perm["lo_one"], boot["lo_one"]) / 2, np.fmax(perm["hi_one"], boot["hi_one"]) / 2
    li, hi_ = np.meshgrid(np.arange(L), np.arange(H), indexing="ij")
    return pd.DataFrame({"layer": li.ravel(), "head": hi_.ravel(), "relevance": np.asarray(perm["diff"]) / 2,
                         "lo": lo_one, "hi": hi_one, "lo_sim": lo, "hi_sim": hi,
                         "p_adj": perm["p_adj"], "significant": (perm["p_adj"] <= alpha) & (lo > 0), "n_prompts": n,
                         "n_perm": n_perm})


# ---- figures ------------------------------------------------------------------------------------


def single_pattern(model, tokenizer, trial: Trial, layer: int, head: int, bf16: bool = False):
    """One head's pattern on one trial with its token labels and types: ``(pattern, labels, types)``
    (pattern: query x key, fp32 NumPy), ready for :func:`helpers.figures.attention.pattern_figure`."""
    ids = tokenizer.encode(trial.prompt)
    pat = attention_patterns(model, torch.tensor([ids]), bf16=bf16)[layer, 0, head].numpy()
    return pat, token_labels(tokenizer, trial.prompt), token_types(tokenizer, trial.prompt)


class PatternSource:
    """Single attention patterns of several models on a list of trials, computed on demand (all
    layers of one prompt at a time, cached): what the explorer browses.  `models` maps a name to
    ``(model, tokenizer)``."""

    def __init__(self, models: Mapping[str, tuple], trials: Sequence[Trial], bf16: bool = False):
        if not models or not trials:
            raise ValueError("PatternSource needs at least one model and one trial")
        self.models, self.trials, self.bf16 = dict(models), list(trials), bf16
        self.names = list(models)
        self.dims = {k: (Arch(m).n_layers, Arch(m).n_heads) for k, (m, _) in models.items()}
        self._cache: dict[tuple[str, int], np.ndarray] = {}

    @property
    def n_prompts(self) -> int:
        return len(self.trials)

    def get(self, name: str, i: int, layer: int, head: int):
        """``(pattern, labels, types, title)`` of one head of model `name` on prompt `i`."""
        if name not in self.models:
            raise ValueError(f"model={name!r} is not accepted: accepted values are {self.names}")
        m, tok = self.models[name]
        t = self.trials[i]
        if (name, i) not in self._cache:
            ids = torch.tensor([tok.encode(t.prompt)])
            self._cache[(name, i)] = attention_patterns(m, ids, bf16=self.bf16)[:, 0].numpy()
        title = (f"{name}, layer {layer}, head {head}; prompt {i} "
                 f"({t.context} context, answer{t.answer!r})")
        return (self._cache[(name, i)][layer, head], token_labels(tok, t.prompt),
                token_types(tok, t.prompt), title)


def explorer_trials(trials: Sequence[Trial], n: int) -> list[Trial]:
    """The first `n` trials with the contexts alternating (motion, color, motion, ...) as far as the
    list allows: the prompts the kernel-free explorer embeds.  Order within a context is kept."""
    if n < 1:
        raise ValueError(f"n={n} is not accepted: the explorer needs at least one prompt")
    by_context: dict[str, list[Trial]] = {}
    for t in trials:
        by_context.setdefault(t.context, []).append(t)
    queues = [by_context[c] for c in sorted(by_context)]
    out: list[Trial] = []
    while len(out) < min(n, len(trials)):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


@dataclass
class ExplorerPatterns:
    """Every head's whole pattern of several models on a few prompts: what the kernel-free
    explorer (:func:`helpers.figures.explorer.web_explorer`) embeds in the page.

    ``patterns[(name, i)]`` is model `name`'s (n_layers, n_heads, n_tokens, n_tokens) fp32 array
    on prompt `i`; ``labels[(name, i)]`` and ``types[(name, i)]`` are its tokens (each model's own
    tokenizer).  It also has the pattern-source interface of :class:`PatternSource` (``names``,
    ``dims``, ``n_prompts``, ``get``), so the ipywidgets explorer can browse it too."""
    names: list[str]
    dims: dict[str, tuple[int, int]]
    trials: list[Trial]
    patterns: dict[tuple[str, int], np.ndarray]
    labels: dict[tuple[str, int], list[str]]
    types: dict[tuple[str, int], list[str]]
    bf16: bool = False

    @property
    def n_prompts(self) -> int:
        return len(self.trials)

    def prompt_label(self, i: int) -> str:
        """A short description of prompt `i` (its context and answer)."""
        t = self.trials[i]
        return f"{i}: {t.context} context, answer {t.answer.strip()}"

    def get(self, name: str, i: int, layer: int, head: int):
        """``(pattern, labels, types, title)`` of one head of model `name` on prompt `i`."""
        if name not in self.dims:
            raise ValueError(f"model={name!r} is not accepted: accepted values are {self.names}")
        t = self.trials[i]
        title = (f"{name}, layer {layer}, head {head}; prompt {i} "
                 f"({t.context} context, answer{t.answer!r})")
        return (self.patterns[(name, i)][layer, head], self.labels[(name, i)], self.types[(name, i)], title)


def explorer_patterns(models: Mapping[str, tuple], trials: Sequence[Trial], n_prompts: int,
                      bf16: bool = False, progress: bool = False) -> ExplorerPatterns:
    """All layers and heads of every model in `models` (name -> ``(model, tokenizer)``) on
    `n_prompts` of `trials` chosen by :func:`explorer_trials` (contexts alternating): one forward
    pass per model and prompt returns every head at once.  Memory: ``n_models x n_prompts x
    n_layers x n_heads x n_tokens^2`` floats (about 9 MB per model and prompt for SmolLM2-135M)."""
    if not models:
        raise ValueError("explorer_patterns needs at least one model")
    chosen = explorer_trials(trials, n_prompts)
    names = list(models)
    dims = {k: (Arch(m).n_layers, Arch(m).n_heads) for k, (m, _) in models.items()}
    patterns, labels, types = {}, {}, {}
    for name, (m, tok) in models.items():
        for i, t in enumerate(progress_bar(chosen, show=progress, desc=f"explorer {name}", leave=False)):
            ids = torch.tensor([tok.encode(t.prompt)])
            patterns[(name, i)] = attention_patterns(m, ids, bf16=bf16)[:, 0].numpy()
            labels[(name, i)] = token_labels(tok, t.prompt)
            types[(name, i)] = token_types(tok, t.prompt)
    return ExplorerPatterns(names, dims, chosen, patterns, labels, types, bf16)


def query_type_table(stats: Mapping[str, AttentionStats]) -> pd.DataFrame:
    """Mean mass from each query type (rows) to each key type (columns) in the first and the last
    layer of each model, mean over heads; rows indexed by (model, layer, query type)."""
    rows = []
    for name, s in stats.items():
        q = s.query_table()
        for layer in sorted({0, s.n_layers - 1}):
            t = (q[q["layer"] == layer].groupby(["query_type", "type"])["mass"].mean()
                 .unstack()[list(TOKEN_TYPES)])
            t.index = pd.MultiIndex.from_product([[name], [layer], t.index], names=["model", "layer", "query"])
            rows.append(t)
    return pd.concat(rows)
